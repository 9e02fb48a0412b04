// Shared by the ingest fault tests (crash, kill loop, full disk): a job with
// one plain run "r1" at batch size 32, and the record of that run at a step.
#ifndef SURGE_TESTS_SUPPORT_STREAMING_JOB_H_
#define SURGE_TESTS_SUPPORT_STREAMING_JOB_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "client/cpp/surge_client.h"

namespace surge::testing {

// Creates job `job` (examples) and its plain run "r1" (batch size 32).
inline absl::Status CreateJobWithRun(client::SurgeClient& client, const std::string& job) {
  surge::v1::Job j;
  j.set_name(job);
  j.set_batch_unit(surge::v1::BATCH_UNIT_EXAMPLES);
  if (auto created = client.CreateJob(j); !created.ok()) return created.status();
  surge::v1::Run run;
  run.set_name("r1");
  run.set_batch_size(32);
  run.set_protocol(surge::v1::PROTOCOL_PLAIN);
  return client.CreateRun(job, run).status();
}

// Run r1's record at `step`: a falling loss, 32 examples a step.
inline surge::v1::Record StepRecord(int64_t step) {
  surge::v1::Record r;
  r.set_run("r1");
  r.set_step(step);
  r.set_examples(step * 32);
  r.set_lr(1e-3);
  r.set_loss(2.0 / (1.0 + 0.001 * static_cast<double>(step)));
  return r;
}

}  // namespace surge::testing

#endif  // SURGE_TESTS_SUPPORT_STREAMING_JOB_H_
