// Helpers shared by the SurgeCore and IngestStream tests: a SurgeCore on a
// database file in a TempDir with one job and two runs, and builders.
#ifndef SURGE_TESTS_SERVER_CORE_CORE_TEST_UTIL_H_
#define SURGE_TESTS_SERVER_CORE_CORE_TEST_UTIL_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/core/ingest_stream.h"
#include "server/core/surge_core.h"
#include "tests/support/temp_dir.h"

namespace surge::core::test_util {

inline std::string Msg(const absl::Status& s) { return std::string(s.message()); }

inline surge::v1::Record MakeRecord(const std::string& run, int64_t step) {
  surge::v1::Record r;
  r.set_run(run);
  r.set_step(step);
  r.set_examples(step * 32);
  r.set_lr(1e-3);
  r.set_loss(4.0 / static_cast<double>(step + 1));
  return r;
}

// A batch for `job` with records of `run`, steps [first, first + n).
inline std::unique_ptr<surge::v1::IngestRequest> MakeBatch(const std::string& job, uint64_t seq,
                                                           const std::string& run, int64_t first,
                                                           int n) {
  auto request = std::make_unique<surge::v1::IngestRequest>();
  request->set_job(job);
  request->set_seq(seq);
  for (int i = 0; i < n; ++i) *request->add_records() = MakeRecord(run, first + i);
  return request;
}

inline surge::v1::CreateJobRequest JobRequest(const std::string& name,
                                              surge::v1::BatchUnit unit =
                                                  surge::v1::BATCH_UNIT_EXAMPLES) {
  surge::v1::CreateJobRequest request;
  request.mutable_job()->set_name(name);
  request.mutable_job()->set_batch_unit(unit);
  return request;
}

inline surge::v1::CreateRunRequest RunRequest(const std::string& job, const std::string& name,
                                              int64_t batch_size,
                                              surge::v1::Protocol protocol =
                                                  surge::v1::PROTOCOL_PLAIN) {
  surge::v1::CreateRunRequest request;
  request.set_job(job);
  request.mutable_run()->set_name(name);
  request.mutable_run()->set_batch_size(batch_size);
  request.mutable_run()->set_protocol(protocol);
  request.mutable_run()->set_base_lr(1e-3);
  return request;
}

// Everything the acks of one stream said, read after Close().
struct Acks {
  std::vector<surge::v1::IngestResponse> acks;
  std::optional<surge::v1::IngestResponse> last() const {
    if (acks.empty()) return std::nullopt;
    return acks.back();
  }
};

inline Acks DrainAcks(IngestStream& stream) {
  Acks out;
  while (std::optional<surge::v1::IngestResponse> ack = stream.NextAck()) {
    out.acks.push_back(*ack);
  }
  return out;
}

class CoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_.File("surge.db");
    ASSERT_NO_FATAL_FAILURE(Reopen());
    ASSERT_TRUE(core_->CreateJob(JobRequest("job")).ok());
    ASSERT_TRUE(core_->CreateRun(RunRequest("job", "r1", 32)).ok());
    ASSERT_TRUE(core_->CreateRun(RunRequest("job", "r2", 64)).ok());
  }

  // Closes the core (if open) and opens a fresh one on the same file.
  void Reopen(const CoreOptions& base = {}) {
    core_.reset();
    CoreOptions options = base;
    options.db_path = path_;
    absl::StatusOr<std::unique_ptr<SurgeCore>> core = SurgeCore::Open(options);
    ASSERT_TRUE(core.ok()) << core.status();
    core_ = std::move(*core);
  }

  // All records of a job (optionally one run), following page tokens.
  std::vector<surge::v1::Record> ListAll(const std::string& job, const std::string& run = "",
                                         int page_size = 0) {
    std::vector<surge::v1::Record> all;
    surge::v1::ListRecordsRequest request;
    request.set_job(job);
    request.set_run(run);
    request.set_page_size(page_size);
    for (int pages = 0; pages < 100000; ++pages) {
      absl::StatusOr<surge::v1::ListRecordsResponse> page = core_->ListRecords(request);
      if (!page.ok()) {
        ADD_FAILURE() << "ListRecords: " << page.status();
        return all;
      }
      for (const auto& r : page->records()) all.push_back(r);
      if (page->next_page_token().empty()) return all;
      request.set_page_token(page->next_page_token());
    }
    ADD_FAILURE() << "ListRecords never ended";
    return all;
  }

  int64_t RecordCount(const std::string& job) {
    surge::v1::GetJobRequest request;
    request.set_name(job);
    absl::StatusOr<surge::v1::Job> got = core_->GetJob(request);
    EXPECT_TRUE(got.ok()) << got.status();
    return got.ok() ? got->record_count() : -1;
  }

  surge::testing::TempDir dir_;
  std::string path_;
  std::unique_ptr<SurgeCore> core_;
};

}  // namespace surge::core::test_util

#endif  // SURGE_TESTS_SERVER_CORE_CORE_TEST_UTIL_H_
