// ProgressBar: one status line for long sweeps, with an ETA. Work is counted
// in caller-defined units (surge-train uses example-steps); the total may
// grow while the sweep runs (adaptive LR grids). ETA = elapsed * (total -
// done) / done. On a terminal the line is redrawn in place (at most 4 times
// a second); otherwise a line is printed every 15 s. Thread-safe.
#ifndef SURGE_CLIENT_TRAINER_PROGRESS_H_
#define SURGE_CLIENT_TRAINER_PROGRESS_H_

#include <chrono>
#include <cstdio>
#include <mutex>
#include <string>

namespace surge::trainer {

class ProgressBar {
 public:
  ProgressBar(std::string label, bool enabled);
  void AddTotal(double units);
  // Adds finished work and a note (e.g. "stage 1 B=64").
  void Advance(double units, const std::string& note = "");
  void Finish();
  double elapsed_seconds() const;

 private:
  void DrawLocked(bool force);

  const std::string label_;
  const bool enabled_;
  const bool tty_;
  const std::chrono::steady_clock::time_point start_;
  std::mutex mu_;
  double total_ = 0, done_ = 0;
  std::string note_;
  std::chrono::steady_clock::time_point last_draw_;
};

// "1h02m", "3m05s", "12s".
std::string FormatDuration(double seconds);

}  // namespace surge::trainer

#endif  // SURGE_CLIENT_TRAINER_PROGRESS_H_
