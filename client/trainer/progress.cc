// ProgressBar drawing.
#include "client/trainer/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>

namespace surge::trainer {

std::string FormatDuration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  char buf[32];
  const long t = std::lround(s);
  if (t >= 3600) {
    std::snprintf(buf, sizeof(buf), "%ldh%02ldm", t / 3600, (t / 60) % 60);
  } else if (t >= 60) {
    std::snprintf(buf, sizeof(buf), "%ldm%02lds", t / 60, t % 60);
  } else {
    std::snprintf(buf, sizeof(buf), "%lds", t);
  }
  return buf;
}

ProgressBar::ProgressBar(std::string label, bool enabled)
    : label_(std::move(label)),
      enabled_(enabled),
      tty_(isatty(STDERR_FILENO) != 0),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

double ProgressBar::elapsed_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void ProgressBar::AddTotal(double units) {
  std::lock_guard<std::mutex> lock(mu_);
  total_ += units;
}

void ProgressBar::Advance(double units, const std::string& note) {
  std::lock_guard<std::mutex> lock(mu_);
  done_ += units;
  if (!note.empty()) note_ = note;
  DrawLocked(false);
}

void ProgressBar::Finish() {
  std::lock_guard<std::mutex> lock(mu_);
  total_ = std::max(total_, done_);
  DrawLocked(true);
  if (enabled_ && tty_) std::fputc('\n', stderr);
}

void ProgressBar::DrawLocked(bool force) {
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  const double since = std::chrono::duration<double>(now - last_draw_).count();
  if (!force && since < (tty_ ? 0.25 : 15.0)) return;
  last_draw_ = now;
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const double frac = total_ > 0 ? std::min(1.0, done_ / total_) : 0.0;
  const double eta = done_ > 0 ? elapsed * (std::max(0.0, total_ - done_)) / done_ : NAN;
  constexpr int kWidth = 30;
  std::string bar(kWidth, ' ');
  for (int i = 0; i < static_cast<int>(frac * kWidth); ++i) bar[i] = '#';
  std::fprintf(stderr, "%s%s [%s] %3.0f%%  %s elapsed, ETA %s  %s%s", tty_ ? "\r\033[K" : "",
               label_.c_str(), bar.c_str(), 100 * frac, FormatDuration(elapsed).c_str(),
               FormatDuration(eta).c_str(), note_.c_str(), tty_ ? "" : "\n");
  std::fflush(stderr);
}

}  // namespace surge::trainer
