// Table tests of request validation: every bad input gets its status code
// and a message naming the field; valid inputs (including edge values) pass.
#include "server/core/validation.h"

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace surge::core {
namespace {

using ::testing::HasSubstr;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

struct BadCase {
  std::string name;
  std::function<absl::Status()> check;
  absl::StatusCode code;
  std::string field;  // the message must contain "<field>:"
};

struct GoodCase {
  std::string name;
  std::function<absl::Status()> check;
};

void RunBad(const std::vector<BadCase>& cases) {
  for (const BadCase& c : cases) {
    SCOPED_TRACE(c.name);
    absl::Status status = c.check();
    EXPECT_EQ(status.code(), c.code) << c.name << ": " << status;
    EXPECT_THAT(std::string(status.message()), HasSubstr(c.field + ":"))
        << c.name << ": message must name the field";
  }
}

void RunGood(const std::vector<GoodCase>& cases) {
  for (const GoodCase& c : cases) {
    SCOPED_TRACE(c.name);
    absl::Status status = c.check();
    EXPECT_TRUE(status.ok()) << c.name << ": " << status;
  }
}

// ------------------------------------------------------------------ names

TEST(ValidateNameTest, RejectsBadNames) {
  auto name = [](std::string value) {
    return [value] { return ValidateName("job.name", value); };
  };
  const absl::StatusCode kInvalid = absl::StatusCode::kInvalidArgument;
  RunBad({
      {"empty", name(""), kInvalid, "job.name"},
      {"129 characters", name(std::string(129, 'a')), kInvalid, "job.name"},
      {"starts with '-'", name("-abc"), kInvalid, "job.name"},
      {"starts with '.'", name(".abc"), kInvalid, "job.name"},
      {"starts with '_'", name("_abc"), kInvalid, "job.name"},
      {"space", name("a b"), kInvalid, "job.name"},
      {"slash", name("a/b"), kInvalid, "job.name"},
      {"colon", name("a:b"), kInvalid, "job.name"},
      {"NUL byte", name(std::string("a\0b", 3)), kInvalid, "job.name"},
      {"non-ASCII", name("caf\xc3\xa9"), kInvalid, "job.name"},
      {"trailing newline", name("abc\n"), kInvalid, "job.name"},
  });
}

TEST(ValidateNameTest, AcceptsGoodNames) {
  auto name = [](std::string value) {
    return [value] { return ValidateName("run.name", value); };
  };
  RunGood({
      {"one letter", name("a")},
      {"one digit", name("7")},
      {"uppercase", name("ABC")},
      {"all allowed characters", name("a-b.c_d-0.9")},
      {"trailing punctuation", name("run-")},
      {"128 characters", name(std::string(128, 'z'))},
  });
}

// ------------------------------------------------------------------ jobs

surge::v1::Job GoodJob() {
  surge::v1::Job job;
  job.set_name("job-1");
  job.set_batch_unit(surge::v1::BATCH_UNIT_TOKENS);
  job.set_description("a job");
  return job;
}

TEST(ValidateJobTest, Table) {
  auto job = [](std::function<void(surge::v1::Job&)> mutate) {
    return [mutate] {
      surge::v1::Job j = GoodJob();
      mutate(j);
      return ValidateJob(j);
    };
  };
  const absl::StatusCode kInvalid = absl::StatusCode::kInvalidArgument;
  RunBad({
      {"empty name", job([](auto& j) { j.set_name(""); }), kInvalid, "job.name"},
      {"bad name", job([](auto& j) { j.set_name("a b"); }), kInvalid, "job.name"},
      {"unspecified batch unit",
       job([](auto& j) { j.set_batch_unit(surge::v1::BATCH_UNIT_UNSPECIFIED); }), kInvalid,
       "job.batch_unit"},
      {"unknown batch unit",
       job([](auto& j) { j.set_batch_unit(static_cast<surge::v1::BatchUnit>(9)); }), kInvalid,
       "job.batch_unit"},
      {"description too long", job([](auto& j) { j.set_description(std::string(4097, 'x')); }),
       kInvalid, "job.description"},
  });
  RunGood({
      {"good", job([](auto&) {})},
      {"examples unit", job([](auto& j) { j.set_batch_unit(surge::v1::BATCH_UNIT_EXAMPLES); })},
      {"empty description", job([](auto& j) { j.clear_description(); })},
      {"4096-character description",
       job([](auto& j) { j.set_description(std::string(4096, 'x')); })},
  });
}

// ------------------------------------------------------------------ runs

surge::v1::Run GoodRun() {
  surge::v1::Run run;
  run.set_name("run-1");
  run.set_batch_size(256);
  run.set_base_lr(3e-4);
  run.set_protocol(surge::v1::PROTOCOL_PLAIN);
  auto* opt = run.mutable_optimizer();
  opt->set_name("adam");
  opt->set_beta1(0.9);
  opt->set_beta2(0.999);
  opt->set_eps(1e-8);
  opt->set_weight_decay(0.0);
  return run;
}

surge::v1::Run GoodProbe() {
  surge::v1::Run run = GoodRun();
  run.set_protocol(surge::v1::PROTOCOL_PROBE);
  run.mutable_parent()->set_checkpoint_step(100);
  run.mutable_parent()->set_loss(3.0);
  run.mutable_parent()->set_base_run("base-run");
  return run;
}

TEST(ValidateRunTest, Table) {
  auto run = [](std::function<void(surge::v1::Run&)> mutate) {
    return [mutate] {
      surge::v1::Run r = GoodRun();
      mutate(r);
      return ValidateRun(r);
    };
  };
  auto probe = [](std::function<void(surge::v1::Run&)> mutate) {
    return [mutate] {
      surge::v1::Run r = GoodProbe();
      mutate(r);
      return ValidateRun(r);
    };
  };
  const absl::StatusCode kInvalid = absl::StatusCode::kInvalidArgument;
  RunBad({
      {"empty name", run([](auto& r) { r.set_name(""); }), kInvalid, "run.name"},
      {"name with '/'", run([](auto& r) { r.set_name("a/b"); }), kInvalid, "run.name"},
      {"name too long", run([](auto& r) { r.set_name(std::string(129, 'r')); }), kInvalid,
       "run.name"},
      {"batch_size 0", run([](auto& r) { r.set_batch_size(0); }), kInvalid, "run.batch_size"},
      {"batch_size -1", run([](auto& r) { r.set_batch_size(-1); }), kInvalid, "run.batch_size"},
      {"base_lr negative", run([](auto& r) { r.set_base_lr(-1e-6); }), kInvalid, "run.base_lr"},
      {"base_lr NaN", run([](auto& r) { r.set_base_lr(kNaN); }), kInvalid, "run.base_lr"},
      {"base_lr inf", run([](auto& r) { r.set_base_lr(kInf); }), kInvalid, "run.base_lr"},
      {"beta1 = 1", run([](auto& r) { r.mutable_optimizer()->set_beta1(1.0); }), kInvalid,
       "run.optimizer.beta1"},
      {"beta1 < 0", run([](auto& r) { r.mutable_optimizer()->set_beta1(-0.1); }), kInvalid,
       "run.optimizer.beta1"},
      {"beta1 NaN", run([](auto& r) { r.mutable_optimizer()->set_beta1(kNaN); }), kInvalid,
       "run.optimizer.beta1"},
      {"beta2 = 1", run([](auto& r) { r.mutable_optimizer()->set_beta2(1.0); }), kInvalid,
       "run.optimizer.beta2"},
      {"beta2 > 1", run([](auto& r) { r.mutable_optimizer()->set_beta2(1.5); }), kInvalid,
       "run.optimizer.beta2"},
      {"eps negative", run([](auto& r) { r.mutable_optimizer()->set_eps(-1e-8); }), kInvalid,
       "run.optimizer.eps"},
      {"eps inf", run([](auto& r) { r.mutable_optimizer()->set_eps(kInf); }), kInvalid,
       "run.optimizer.eps"},
      {"weight_decay negative", run([](auto& r) { r.mutable_optimizer()->set_weight_decay(-0.1); }),
       kInvalid, "run.optimizer.weight_decay"},
      {"optimizer name too long",
       run([](auto& r) { r.mutable_optimizer()->set_name(std::string(65, 'o')); }), kInvalid,
       "run.optimizer.name"},
      {"unspecified protocol",
       run([](auto& r) { r.set_protocol(surge::v1::PROTOCOL_UNSPECIFIED); }), kInvalid,
       "run.protocol"},
      {"unknown protocol", run([](auto& r) { r.set_protocol(static_cast<surge::v1::Protocol>(42)); }),
       kInvalid, "run.protocol"},
      {"probe without parent", probe([](auto& r) { r.clear_parent(); }), kInvalid, "run.parent"},
      {"plain with parent",
       run([](auto& r) { r.mutable_parent()->set_checkpoint_step(1); }), kInvalid, "run.parent"},
      {"full run with parent",
       run([](auto& r) {
         r.set_protocol(surge::v1::PROTOCOL_FULL_RUN);
         r.mutable_parent()->set_loss(1.0);
       }),
       kInvalid, "run.parent"},
      {"negative checkpoint step", probe([](auto& r) { r.mutable_parent()->set_checkpoint_step(-1); }),
       kInvalid, "run.parent.checkpoint_step"},
      {"parent loss NaN", probe([](auto& r) { r.mutable_parent()->set_loss(kNaN); }), kInvalid,
       "run.parent.loss"},
      {"parent loss -inf", probe([](auto& r) { r.mutable_parent()->set_loss(-kInf); }), kInvalid,
       "run.parent.loss"},
      {"parent loss negative", probe([](auto& r) { r.mutable_parent()->set_loss(-2.0); }),
       kInvalid, "run.parent.loss"},
      {"parent loss zero", probe([](auto& r) { r.mutable_parent()->set_loss(0.0); }), kInvalid,
       "run.parent.loss"},
      {"target_loss negative", run([](auto& r) { r.set_target_loss(-3.0); }), kInvalid,
       "run.target_loss"},
      {"parent base_run bad name", probe([](auto& r) { r.mutable_parent()->set_base_run("-x"); }),
       kInvalid, "run.parent.base_run"},
      {"target_loss NaN", run([](auto& r) { r.set_target_loss(kNaN); }), kInvalid,
       "run.target_loss"},
      {"target_loss inf", run([](auto& r) { r.set_target_loss(kInf); }), kInvalid,
       "run.target_loss"},
      {"label key empty", run([](auto& r) { (*r.mutable_labels())[""] = "v"; }), kInvalid,
       "run.labels"},
      {"label key 65 characters",
       run([](auto& r) { (*r.mutable_labels())[std::string(65, 'k')] = "v"; }), kInvalid,
       "run.labels"},
      {"label value 257 characters",
       run([](auto& r) { (*r.mutable_labels())["k"] = std::string(257, 'v'); }), kInvalid,
       "run.labels[k]"},
      {"65 labels",
       run([](auto& r) {
         for (int i = 0; i < 65; ++i) (*r.mutable_labels())[absl::StrCat("k", i)] = "v";
       }),
       kInvalid, "run.labels"},
  });
  RunGood({
      {"good plain", run([](auto&) {})},
      {"good probe", probe([](auto&) {})},
      {"probe at checkpoint step 0 without base run",
       probe([](auto& r) {
         r.mutable_parent()->set_checkpoint_step(0);
         r.mutable_parent()->clear_base_run();
       })},
      {"full run with target", run([](auto& r) {
         r.set_protocol(surge::v1::PROTOCOL_FULL_RUN);
         r.set_target_loss(2.5);
       })},
      {"no optimizer", run([](auto& r) { r.clear_optimizer(); })},
      {"betas and eps at 0", run([](auto& r) {
         r.mutable_optimizer()->set_beta1(0.0);
         r.mutable_optimizer()->set_beta2(0.0);
         r.mutable_optimizer()->set_eps(0.0);
       })},
      {"beta just below 1", run([](auto& r) { r.mutable_optimizer()->set_beta2(0.9999999); })},
      {"base_lr 0", run([](auto& r) { r.set_base_lr(0.0); })},
      {"batch_size 1", run([](auto& r) { r.set_batch_size(1); })},
      {"64 labels, 64-char key, 256-char value", run([](auto& r) {
         for (int i = 0; i < 63; ++i) (*r.mutable_labels())[absl::StrCat("k", i)] = "v";
         (*r.mutable_labels())[std::string(64, 'k')] = std::string(256, 'v');
       })},
      {"empty label value", run([](auto& r) { (*r.mutable_labels())["k"] = ""; })},
  });
}

// ------------------------------------------------------------------ records

surge::v1::Record GoodRecord(int64_t step) {
  surge::v1::Record r;
  r.set_run("run-1");
  r.set_step(step);
  r.set_examples(step * 256);
  r.set_lr(3e-4);
  r.set_loss(2.5);
  return r;
}

// A batch of three records; the mutation applies to records[2].
surge::v1::IngestRequest BatchWithThird(const std::function<void(surge::v1::Record&)>& mutate) {
  surge::v1::IngestRequest request;
  request.set_job("job-1");
  request.set_seq(1);
  for (int i = 0; i < 3; ++i) *request.add_records() = GoodRecord(i);
  mutate(*request.mutable_records(2));
  return request;
}

void SetGrad(surge::v1::Record& r, double small, double big, int64_t b_small, int64_t b_big) {
  auto* g = r.mutable_grad_stats();
  g->set_grad_sq_small(small);
  g->set_grad_sq_big(big);
  g->set_b_small(b_small);
  g->set_b_big(b_big);
}

TEST(ValidateRecordTest, BadRecordsNameIndexAndField) {
  struct Case {
    std::string name;
    std::function<void(surge::v1::Record&)> mutate;
    std::string field;  // without the "records[i]." prefix
  };
  const std::vector<Case> cases = {
      {"run empty", [](auto& r) { r.clear_run(); }, "run"},
      {"step negative", [](auto& r) { r.set_step(-1); }, "step"},
      {"examples negative", [](auto& r) { r.set_examples(-5); }, "examples"},
      {"lr NaN", [](auto& r) { r.set_lr(kNaN); }, "lr"},
      {"lr inf", [](auto& r) { r.set_lr(kInf); }, "lr"},
      {"lr -inf", [](auto& r) { r.set_lr(-kInf); }, "lr"},
      {"lr negative", [](auto& r) { r.set_lr(-1e-12); }, "lr"},
      {"loss NaN", [](auto& r) { r.set_loss(kNaN); }, "loss"},
      {"loss inf", [](auto& r) { r.set_loss(kInf); }, "loss"},
      {"loss -inf", [](auto& r) { r.set_loss(-kInf); }, "loss"},
      {"eval_loss NaN", [](auto& r) { r.set_eval_loss(kNaN); }, "eval_loss"},
      {"eval_loss inf", [](auto& r) { r.set_eval_loss(kInf); }, "eval_loss"},
      {"grad_sq_small negative", [](auto& r) { SetGrad(r, -1.0, 1.0, 1, 2); },
       "grad_stats.grad_sq_small"},
      {"grad_sq_small NaN", [](auto& r) { SetGrad(r, kNaN, 1.0, 1, 2); },
       "grad_stats.grad_sq_small"},
      {"grad_sq_big negative", [](auto& r) { SetGrad(r, 1.0, -0.5, 1, 2); },
       "grad_stats.grad_sq_big"},
      {"grad_sq_big inf", [](auto& r) { SetGrad(r, 1.0, kInf, 1, 2); }, "grad_stats.grad_sq_big"},
      {"b_small 0", [](auto& r) { SetGrad(r, 1.0, 1.0, 0, 2); }, "grad_stats.b_small"},
      {"b_small negative", [](auto& r) { SetGrad(r, 1.0, 1.0, -4, 2); }, "grad_stats.b_small"},
      {"b_big == b_small", [](auto& r) { SetGrad(r, 1.0, 1.0, 4, 4); }, "grad_stats.b_big"},
      {"b_big < b_small", [](auto& r) { SetGrad(r, 1.0, 1.0, 8, 4); }, "grad_stats.b_big"},
      {"grad stats all zero (b_small 0)", [](auto& r) { r.mutable_grad_stats(); },
       "grad_stats.b_small"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    // Through the batch: records[2].
    absl::Status batch = ValidateIngestBatch(BatchWithThird(c.mutate), 0);
    EXPECT_EQ(batch.code(), absl::StatusCode::kInvalidArgument) << batch;
    EXPECT_THAT(std::string(batch.message()), HasSubstr("records[2]." + c.field + ":"))
        << batch;
    // Directly, with another index.
    surge::v1::Record record = GoodRecord(0);
    c.mutate(record);
    absl::Status direct = ValidateRecord(record, 17);
    EXPECT_EQ(direct.code(), absl::StatusCode::kInvalidArgument) << direct;
    EXPECT_THAT(std::string(direct.message()), HasSubstr("records[17]." + c.field + ":"))
        << direct;
  }
}

TEST(ValidateRecordTest, GoodRecordsPass) {
  struct Case {
    std::string name;
    std::function<void(surge::v1::Record&)> mutate;
  };
  const std::vector<Case> cases = {
      {"plain", [](auto&) {}},
      {"lr 0", [](auto& r) { r.set_lr(0.0); }},
      {"step 0, examples 0", [](auto& r) {
         r.set_step(0);
         r.set_examples(0);
       }},
      {"negative loss", [](auto& r) { r.set_loss(-3.0); }},
      {"eval_loss 0", [](auto& r) { r.set_eval_loss(0.0); }},
      {"eval_loss negative", [](auto& r) { r.set_eval_loss(-1.0); }},
      {"grad stats minimal", [](auto& r) { SetGrad(r, 0.0, 0.0, 1, 2); }},
      {"grad stats large", [](auto& r) { SetGrad(r, 1e30, 1e-30, 1000, 1 << 30); }},
      {"huge step and examples", [](auto& r) {
         r.set_step(std::numeric_limits<int64_t>::max());
         r.set_examples(std::numeric_limits<int64_t>::max());
       }},
      {"large but finite lr", [](auto& r) { r.set_lr(std::numeric_limits<double>::max()); }},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    surge::v1::Record record = GoodRecord(3);
    c.mutate(record);
    absl::Status status = ValidateRecord(record, 0);
    EXPECT_TRUE(status.ok()) << status;
    absl::Status batch = ValidateIngestBatch(BatchWithThird(c.mutate), 0);
    EXPECT_TRUE(batch.ok()) << batch;
  }
}

TEST(ValidateRecordTest, ReportsTheFirstBadRecord) {
  surge::v1::IngestRequest request = BatchWithThird([](auto& r) { r.set_loss(kNaN); });
  request.mutable_records(1)->set_lr(-1);
  absl::Status status = ValidateIngestBatch(request, 0);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("records[1].lr:")) << status;
}

// ------------------------------------------------------------------ batches

TEST(ValidateIngestBatchTest, Envelope) {
  auto batch = [](std::string job, uint64_t seq, uint64_t last_seq) {
    return [job, seq, last_seq] {
      surge::v1::IngestRequest request;
      request.set_job(job);
      request.set_seq(seq);
      *request.add_records() = GoodRecord(0);
      return ValidateIngestBatch(request, last_seq);
    };
  };
  const absl::StatusCode kInvalid = absl::StatusCode::kInvalidArgument;
  RunBad({
      {"job missing", batch("", 1, 0), kInvalid, "job"},
      {"job bad name", batch("a b", 1, 0), kInvalid, "job"},
      {"seq 0 at start", batch("job-1", 0, 0), kInvalid, "seq"},
      {"seq repeated", batch("job-1", 5, 5), kInvalid, "seq"},
      {"seq decreasing", batch("job-1", 4, 5), kInvalid, "seq"},
  });
  RunGood({
      {"first batch", batch("job-1", 1, 0)},
      {"seq with gaps", batch("job-1", 100, 5)},
      {"max seq", batch("job-1", std::numeric_limits<uint64_t>::max(), 5)},
  });
}

TEST(ValidateIngestBatchTest, EmptyBatchIsAHeartbeat) {
  surge::v1::IngestRequest request;
  request.set_job("job-1");
  request.set_seq(3);
  EXPECT_TRUE(ValidateIngestBatch(request, 2).ok());
}

TEST(ValidateIngestBatchTest, RecordLimit) {
  surge::v1::IngestRequest request;
  request.set_job("job-1");
  request.set_seq(1);
  request.mutable_records()->Reserve(kMaxRecordsPerBatch + 1);
  for (int i = 0; i < kMaxRecordsPerBatch; ++i) *request.add_records() = GoodRecord(i);
  absl::Status at_limit = ValidateIngestBatch(request, 0);
  EXPECT_TRUE(at_limit.ok()) << "exactly " << kMaxRecordsPerBatch << " records: " << at_limit;

  *request.add_records() = GoodRecord(kMaxRecordsPerBatch);
  absl::Status over = ValidateIngestBatch(request, 0);
  EXPECT_EQ(over.code(), absl::StatusCode::kResourceExhausted) << over;
  EXPECT_THAT(std::string(over.message()), HasSubstr("100000"));
  EXPECT_THAT(std::string(over.message()), HasSubstr("records"));
}

}  // namespace
}  // namespace surge::core
