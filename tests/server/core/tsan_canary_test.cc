// The ThreadSanitizer canary of scripts/sanitize.sh tsan: a data race planted
// on purpose, which TSan must report. Built only when the build's flags hold
// -fsanitize=thread; the script runs it first and fails unless the report
// names this file, so a clean run of the real concurrency tests means
// something. Registered in ctest to pass only when the report appears.
#include <chrono>
#include <thread>

#include "gtest/gtest.h"

namespace surge::core {
namespace {

// Written by two threads with no lock, no atomic and no join between the
// writes: the race TSan must see. volatile keeps both stores in the code.
volatile int planted_race_counter = 0;

TEST(TsanCanaryTest, PlantedRaceIsReported) {
  std::thread writer([] {
    planted_race_counter = 1;
    // Keep the thread alive past the main thread's write, so the join below
    // cannot order the two writes.
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  planted_race_counter = 2;
  writer.join();
  EXPECT_EQ(planted_race_counter, 2);
}

}  // namespace
}  // namespace surge::core
