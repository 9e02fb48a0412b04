// Implementation of the CLI's output helpers.
#include "client/cli/format.h"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <iostream>

#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "google/protobuf/util/json_util.h"

namespace surge::cli {

std::string ToJson(const google::protobuf::Message& message, bool compact) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = !compact;
  options.always_print_primitive_fields = true;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(message, &out, options);
  if (!compact && !out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

void PrintTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (const auto& row : rows) {
    widths.resize(std::max(widths.size(), row.size()), 0);
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(widths[i] - row[i].size() + 2, ' ');
    }
    std::cout << line << "\n";
  }
}

void AppendDouble(std::string& out, double value) {
  char buf[32];
  auto [ptr, ec] = std::to_chars(buf, buf + sizeof(buf), value);
  out.append(buf, ptr);
}

void AppendInt(std::string& out, int64_t value) {
  char buf[24];
  auto [ptr, ec] = std::to_chars(buf, buf + sizeof(buf), value);
  out.append(buf, ptr);
}

std::string FormatTimeUs(int64_t unix_us) {
  if (unix_us == 0) return "-";
  return absl::FormatTime("%Y-%m-%d %H:%M:%S", absl::FromUnixMicros(unix_us), absl::UTCTimeZone());
}

ProgressBar::ProgressBar(std::string label)
    : label_(std::move(label)),
      enabled_(isatty(STDERR_FILENO) != 0),
      start_(absl::Now()),
      last_draw_(absl::InfinitePast()) {}

void ProgressBar::Update(double done, double total, int64_t count, const char* unit, bool force) {
  if (!enabled_) return;
  absl::Time now = absl::Now();
  if (!force && now - last_draw_ < absl::Milliseconds(100)) return;
  last_draw_ = now;
  double elapsed = absl::ToDoubleSeconds(now - start_);
  double rate = elapsed > 0 ? static_cast<double>(count) / elapsed : 0;
  std::string bar;
  if (total > 0) {
    double frac = std::clamp(done / total, 0.0, 1.0);
    int filled = static_cast<int>(frac * 30);
    double eta = frac > 0 ? elapsed * (1 - frac) / frac : 0;
    bar = absl::StrFormat("[%s%s] %3.0f%%  ETA %.0fs", std::string(static_cast<size_t>(filled), '#'),
                          std::string(static_cast<size_t>(30 - filled), '.'), frac * 100, eta);
  }
  std::fprintf(stderr, "\r%s %s  %lld %s  %.0f %s/s   ", label_.c_str(), bar.c_str(),
               static_cast<long long>(count), unit, rate, unit);
  std::fflush(stderr);
}

void ProgressBar::Finish() {
  if (enabled_) std::fprintf(stderr, "\n");
}

}  // namespace surge::cli
