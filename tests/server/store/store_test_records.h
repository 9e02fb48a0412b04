// Runs and records as the store tests make them (sqlite_store_test,
// store_contract_test): a plain run with a base LR, and a record whose
// values follow its step, so a test can tell any two records apart.
#ifndef SURGE_TESTS_SERVER_STORE_STORE_TEST_RECORDS_H_
#define SURGE_TESTS_SERVER_STORE_STORE_TEST_RECORDS_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "server/store/store.h"
#include "surge/v1/surge.pb.h"

namespace surge::store {

inline std::string Msg(const absl::Status& s) { return std::string(s.message()); }

inline surge::v1::Run MakeRun(const std::string& name, int64_t batch_size,
                              surge::v1::Protocol protocol = surge::v1::PROTOCOL_PLAIN) {
  surge::v1::Run run;
  run.set_name(name);
  run.set_batch_size(batch_size);
  run.set_protocol(protocol);
  run.set_base_lr(1e-3);
  return run;
}

// Probe run "probe-1" (batch 512, base LR 3e-4) with every optional field
// set: an AdamW optimizer (0.9, 0.95, eps 1e-8, weight decay 0.1), a parent
// (checkpoint step 1000, loss 2.75, base run "base") and labels model,
// seed and an empty one, for round-trip tests.
inline surge::v1::Run MakeProbeRunWithEverything() {
  surge::v1::Run probe = MakeRun("probe-1", 512, surge::v1::PROTOCOL_PROBE);
  probe.set_base_lr(3e-4);
  auto* opt = probe.mutable_optimizer();
  opt->set_name("adamw");
  opt->set_beta1(0.9);
  opt->set_beta2(0.95);
  opt->set_eps(1e-8);
  opt->set_weight_decay(0.1);
  auto* parent = probe.mutable_parent();
  parent->set_checkpoint_step(1000);
  parent->set_loss(2.75);
  parent->set_base_run("base");
  (*probe.mutable_labels())["model"] = "gpt-small";
  (*probe.mutable_labels())["seed"] = "7";
  (*probe.mutable_labels())["empty"] = "";
  return probe;
}

inline surge::v1::Record MakeRecord(const std::string& run, int64_t step) {
  surge::v1::Record r;
  r.set_run(run);
  r.set_step(step);
  r.set_examples(step * 32);
  r.set_lr(0.001 + 0.0001 * static_cast<double>(step));
  r.set_loss(10.0 / static_cast<double>(step + 1));
  return r;
}

// Creates job `name` (examples) at `now_us` and returns its id (-1 after a
// failed expectation).
inline int64_t CreateTestJob(Store& store, const std::string& name, int64_t now_us) {
  surge::v1::Job job;
  job.set_name(name);
  job.set_batch_unit(surge::v1::BATCH_UNIT_EXAMPLES);
  absl::StatusOr<surge::v1::Job> created = store.CreateJob(job, now_us);
  EXPECT_TRUE(created.ok()) << created.status();
  absl::StatusOr<int64_t> id = store.JobId(name);
  EXPECT_TRUE(id.ok()) << id.status();
  return id.ok() ? *id : -1;
}

// Creates MakeRun(run, batch_size) in `job` and returns the run's id.
inline int64_t CreateTestRun(Store& store, const std::string& job, const std::string& run,
                             int64_t batch_size, int64_t now_us) {
  absl::StatusOr<surge::v1::Run> created = store.CreateRun(job, MakeRun(run, batch_size), now_us);
  EXPECT_TRUE(created.ok()) << created.status();
  absl::StatusOr<RunKey> key = store.LookupRun(job, run);
  EXPECT_TRUE(key.ok()) << key.status();
  return key.ok() ? key->run_id : -1;
}

}  // namespace surge::store

#endif  // SURGE_TESTS_SERVER_STORE_STORE_TEST_RECORDS_H_
