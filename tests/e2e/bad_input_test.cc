// Bad input at volume (issue 11): one table of malformed inputs over gRPC
// (the C++ client and raw streams), the HTTP API and `surge import` CSVs,
// against an in-process app::Server on 127.0.0.1:0 (gRPC and HTTP) with a
// real SQLite file and the real CLI binary. Each case names the exact status
// (gRPC code, HTTP status, or the CLI's "CODE: " prefix and exit 1) and a
// part of the message that names the field, so a user can act on it.
// Before httplib.h: it pulls in <resolv.h>, whose `_res` macro breaks Eigen's headers.
#include "server/app/server.h"

#include <httplib.h>

#include <cmath>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "client/cpp/surge_client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"

namespace surge {
namespace {

// What came back: a code name ("INVALID_ARGUMENT", or "HTTP 400") and the message.
struct Outcome {
  std::string code;
  std::string message;
};

struct Case {
  std::string name;
  std::function<Outcome()> run;
  std::string code;      // exact
  std::string contains;  // names the field or the cause
};

Outcome FromStatus(const absl::Status& s) {
  return {std::string(absl::StatusCodeToString(s.code())), std::string(s.message())};
}
template <typename T>
Outcome FromStatus(const absl::StatusOr<T>& s) {
  return FromStatus(s.status());
}

class BadInputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    app::ServerOptions options;
    options.listen = "127.0.0.1:0";
    options.http_listen = "127.0.0.1:0";
    options.http_listen_required = true;
    options.core.db_path = dir_.File("bad.db");
    auto server = app::Server::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    address_ = absl::StrCat("127.0.0.1:", server_->port());
    client::ClientOptions client_options;
    client_options.target = address_;
    client_options.call_timeout = absl::Seconds(10);
    client_ = std::make_unique<client::SurgeClient>(client_options);
    surge::v1::Job job;
    job.set_name("j");
    job.set_batch_unit(surge::v1::BATCH_UNIT_EXAMPLES);
    ASSERT_TRUE(client_->CreateJob(job).ok());
    ASSERT_TRUE(client_->CreateRun("j", Run("r", 64)).ok());
  }

  static surge::v1::Job Job(const std::string& name) {
    surge::v1::Job job;
    job.set_name(name);
    job.set_batch_unit(surge::v1::BATCH_UNIT_EXAMPLES);
    return job;
  }
  static surge::v1::Run Run(const std::string& name, int64_t batch,
                            surge::v1::Protocol protocol = surge::v1::PROTOCOL_PLAIN) {
    surge::v1::Run run;
    run.set_name(name);
    run.set_batch_size(batch);
    run.set_protocol(protocol);
    return run;
  }
  static surge::v1::Record Rec(int64_t step) {
    surge::v1::Record r;
    r.set_run("r");
    r.set_step(step);
    r.set_examples(64 * step);
    r.set_lr(1e-3);
    r.set_loss(1.0);
    return r;
  }

  // One Ingest stream with these batches (seq 1, 2, ...); the stream's end.
  Outcome Ingest(const std::vector<std::vector<surge::v1::Record>>& batches) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    auto stream = client_->stub().Ingest(&context);
    uint64_t seq = 0;
    for (const auto& records : batches) {
      surge::v1::IngestRequest request;
      request.set_job("j");
      request.set_seq(++seq);
      for (const auto& r : records) *request.add_records() = r;
      if (!stream->Write(request)) break;
    }
    stream->WritesDone();
    surge::v1::IngestResponse ack;
    while (stream->Read(&ack)) {
    }
    grpc::Status s = stream->Finish();
    return {std::string(absl::StatusCodeToString(static_cast<absl::StatusCode>(s.error_code()))),
            s.error_message()};
  }

  Outcome Http(const std::string& path) {
    httplib::Client http("127.0.0.1", server_->http_port());
    auto res = http.Get(path.c_str());
    if (!res) return {"no answer", httplib::to_string(res.error())};
    return {absl::StrCat("HTTP ", res->status), res->body};
  }

  // `surge import --job J FILE` with `text` as FILE (or the path itself when
  // `is_path`); the code is the CLI's "CODE:" prefix (exit 1 required).
  Outcome Import(const std::string& text, bool is_path = false) {
    std::string path = text;
    if (!is_path) {
      path = dir_.File(absl::StrCat("in-", ++files_, ".csv"));
      std::ofstream(path, std::ios::binary) << text;
    }
    auto r = testing::RunCommand({SURGE_CLI_BIN, "--server", address_, "import", "--job", "csv",
                                  path});
    if (r.exit_code != 1) return {absl::StrCat("exit ", r.exit_code), r.err + r.out};
    const size_t colon = r.err.find(':');
    return {r.err.substr(0, colon), r.err};
  }

  testing::TempDir dir_;
  std::unique_ptr<app::Server> server_;
  std::unique_ptr<client::SurgeClient> client_;
  std::string address_;
  int files_ = 0;
};

TEST_F(BadInputTest, EveryMalformedInputGetsItsCodeAndNamesTheField) {
  const std::string kHeader = "run,step,examples,batch_size,lr,loss\n";
  auto job_with = [](std::function<void(surge::v1::Job&)> f) {
    surge::v1::Job job = Job("new-job");
    f(job);
    return job;
  };
  auto run_with = [](std::function<void(surge::v1::Run&)> f) {
    surge::v1::Run run = Run("new-run", 32);
    f(run);
    return run;
  };
  auto advice = [](std::function<void(surge::v1::GetAdviceRequest&)> f) {
    surge::v1::GetAdviceRequest r;
    r.set_job("j");
    r.set_batch_size(64);
    f(r);
    return r;
  };
  auto c = [this] { return client_.get(); };
  const std::vector<Case> cases = {
      // ---- gRPC: jobs
      {"job name empty", [&] { return FromStatus(c()->CreateJob(job_with([](auto& j) { j.set_name(""); }))); },
       "INVALID_ARGUMENT", "job.name"},
      {"job name with a space", [&] { return FromStatus(c()->CreateJob(Job("a b"))); },
       "INVALID_ARGUMENT", "job.name"},
      {"job name 129 characters", [&] { return FromStatus(c()->CreateJob(Job(std::string(129, 'n')))); },
       "INVALID_ARGUMENT", "job.name"},
      {"job batch unit unspecified",
       [&] { return FromStatus(c()->CreateJob(job_with([](auto& j) { j.set_batch_unit(surge::v1::BATCH_UNIT_UNSPECIFIED); }))); },
       "INVALID_ARGUMENT", "batch_unit"},
      {"job description 4097 characters",
       [&] { return FromStatus(c()->CreateJob(job_with([](auto& j) { j.set_description(std::string(4097, 'd')); }))); },
       "INVALID_ARGUMENT", "job.description"},
      {"job target loss negative",
       [&] { return FromStatus(c()->CreateJob(job_with([](auto& j) { j.add_target_losses(-1); }))); },
       "INVALID_ARGUMENT", "target_losses"},
      {"job k negative", [&] { return FromStatus(c()->CreateJob(job_with([](auto& j) { j.set_k_steps(-1); }))); },
       "INVALID_ARGUMENT", "k_steps"},
      {"job exists", [&] { return FromStatus(c()->CreateJob(Job("j"))); }, "ALREADY_EXISTS", "'j'"},
      {"job missing", [&] { return FromStatus(c()->GetJob("nope")); }, "NOT_FOUND", "job 'nope'"},
      {"delete job missing", [&] { return FromStatus(c()->DeleteJob("nope")); }, "NOT_FOUND", "nope"},
      // ---- gRPC: runs
      {"run batch size 0", [&] { return FromStatus(c()->CreateRun("j", run_with([](auto& r) { r.set_batch_size(0); }))); },
       "INVALID_ARGUMENT", "run.batch_size"},
      {"run base lr negative", [&] { return FromStatus(c()->CreateRun("j", run_with([](auto& r) { r.set_base_lr(-1); }))); },
       "INVALID_ARGUMENT", "run.base_lr"},
      {"run beta1 1.5",
       [&] { return FromStatus(c()->CreateRun("j", run_with([](auto& r) { r.mutable_optimizer()->set_beta1(1.5); }))); },
       "INVALID_ARGUMENT", "run.optimizer.beta1"},
      {"probe run without parent",
       [&] { return FromStatus(c()->CreateRun("j", run_with([](auto& r) { r.set_protocol(surge::v1::PROTOCOL_PROBE); }))); },
       "INVALID_ARGUMENT", "run.parent"},
      {"probe parent loss -5",
       [&] {
         return FromStatus(c()->CreateRun("j", run_with([](auto& r) {
           r.set_protocol(surge::v1::PROTOCOL_PROBE);
           r.mutable_parent()->set_checkpoint_step(10);
           r.mutable_parent()->set_loss(-5);
         })));
       },
       "INVALID_ARGUMENT", "run.parent.loss"},
      {"full run target loss -3",
       [&] {
         return FromStatus(c()->CreateRun("j", run_with([](auto& r) {
           r.set_protocol(surge::v1::PROTOCOL_FULL_RUN);
           r.set_target_loss(-3);
         })));
       },
       "INVALID_ARGUMENT", "run.target_loss"},
      {"run label key empty",
       [&] { return FromStatus(c()->CreateRun("j", run_with([](auto& r) { (*r.mutable_labels())[""] = "v"; }))); },
       "INVALID_ARGUMENT", "run.labels"},
      {"run in a missing job", [&] { return FromStatus(c()->CreateRun("nope", Run("x", 8))); }, "NOT_FOUND", "nope"},
      {"run exists with another batch size", [&] { return FromStatus(c()->CreateRun("j", Run("r", 128))); },
       "ALREADY_EXISTS", "batch_size 64"},
      {"delete run missing", [&] { return FromStatus(c()->DeleteRun("j", "ghost")); }, "NOT_FOUND", "ghost"},
      // ---- gRPC: lists
      {"records page size -1",
       [&] {
         surge::v1::ListRecordsRequest r;
         r.set_job("j");
         r.set_page_size(-1);
         return FromStatus(c()->ListRecords(r));
       },
       "INVALID_ARGUMENT", "page_size"},
      {"records page token garbage",
       [&] {
         surge::v1::ListRecordsRequest r;
         r.set_job("j");
         r.set_page_token("zz");
         return FromStatus(c()->ListRecords(r));
       },
       "INVALID_ARGUMENT", "page_token"},
      {"jobs page size 20000",
       [&] {
         surge::v1::ListJobsRequest r;
         r.set_page_size(20000);
         return FromStatus(c()->ListJobsPage(r));
       },
       "INVALID_ARGUMENT", "page_size"},
      {"runs page token garbage",
       [&] {
         surge::v1::ListRunsRequest r;
         r.set_job("j");
         r.set_page_token("u1:x:y");
         return FromStatus(c()->ListRunsPage(r));
       },
       "INVALID_ARGUMENT", "page_token"},
      // ---- gRPC: optima, fits, advice
      {"optimum lr NaN",
       [&] {
         surge::v1::MeasuredOptimum o;
         o.set_stage(1);
         o.set_stage_loss(0.5);
         o.set_batch_size(64);
         o.set_lr_opt(std::nan(""));
         return FromStatus(c()->AddOptima("j", {o}));
       },
       "INVALID_ARGUMENT", "optima[0].lr_opt"},
      {"ad hoc target loss NaN",
       [&] {
         surge::v1::GetFitRequest r;
         r.set_job("j");
         r.add_target_losses(std::nan(""));
         return FromStatus(c()->GetFit(r));
       },
       "INVALID_ARGUMENT", "target_losses"},
      {"advice batch size 0", [&] { return FromStatus(c()->GetAdvice(advice([](auto& r) { r.set_batch_size(0); }))); },
       "INVALID_ARGUMENT", "batch_size"},
      {"advice step -1", [&] { return FromStatus(c()->GetAdvice(advice([](auto& r) { r.set_step(-1); }))); },
       "INVALID_ARGUMENT", "step"},
      {"advice criterion 7",
       [&] { return FromStatus(c()->GetAdvice(advice([](auto& r) { r.set_criterion(static_cast<surge::v1::Criterion>(7)); }))); },
       "INVALID_ARGUMENT", "criterion"},
      {"advice reference lr 0",
       [&] {
         return FromStatus(c()->GetAdvice(advice([](auto& r) {
           r.mutable_reference()->set_batch_size(64);
           r.mutable_reference()->set_lr(0);
         })));
       },
       "INVALID_ARGUMENT", "reference.lr"},
      {"advice reference batch size -1",
       [&] {
         return FromStatus(c()->GetAdvice(advice([](auto& r) {
           r.mutable_reference()->set_batch_size(-1);
           r.mutable_reference()->set_lr(1e-3);
         })));
       },
       "INVALID_ARGUMENT", "reference.batch_size"},
      {"advice for a job without evidence", [&] { return FromStatus(c()->GetAdvice("j", 64, std::nullopt)); },
       "FAILED_PRECONDITION", "no usable fit"},
      // ---- gRPC: ingest
      {"record lr NaN",
       [&] {
         surge::v1::Record r = Rec(0);
         r.set_lr(std::nan(""));
         return Ingest({{r}});
       },
       "INVALID_ARGUMENT", "records[0].lr"},
      {"record step -1",
       [&] {
         surge::v1::Record r = Rec(0);
         r.set_step(-1);
         return Ingest({{r}});
       },
       "INVALID_ARGUMENT", "records[0].step"},
      {"record of an unknown run",
       [&] {
         surge::v1::Record r = Rec(0);
         r.set_run("ghost");
         return Ingest({{r}});
       },
       "NOT_FOUND", "records[0].run"},
      {"record re-sent with another loss",
       [&] {
         surge::v1::Record changed = Rec(5);
         changed.set_loss(0.5);
         return Ingest({{Rec(5)}, {changed}});
       },
       "ALREADY_EXISTS", "records[0] (run 'r', step 5): already stored with other values (loss"},
      {"job name with invalid UTF-8",
       [&] {
         surge::v1::CreateJobRequest request;
         request.GetReflection()->MutableUnknownFields(&request)->AddLengthDelimited(
             1, std::string("\x0a\x03", 2) + "x\xff\xfe");
         grpc::ClientContext context;
         surge::v1::Job response;
         grpc::Status s = c()->stub().CreateJob(&context, request, &response);
         return Outcome{std::string(absl::StatusCodeToString(static_cast<absl::StatusCode>(s.error_code()))),
                        s.error_message()};
       },
       "INVALID_ARGUMENT", "surge.v1.Job.name"},
      // ---- HTTP API
      {"http job missing", [&] { return Http("/api/v1/jobs/nope"); }, "HTTP 404", "nope"},
      {"http job name with a space", [&] { return Http("/api/v1/jobs/a%20b"); }, "HTTP 400",
       "name: only letters"},
      {"http advice without batch size", [&] { return Http("/api/v1/jobs/j/advice"); }, "HTTP 400", "batch_size"},
      {"http advice batch size not a number", [&] { return Http("/api/v1/jobs/j/advice?batch_size=abc"); },
       "HTTP 400", "batch_size"},
      {"http advice unknown criterion", [&] { return Http("/api/v1/jobs/j/advice?batch_size=64&criterion=zzz"); },
       "HTTP 400", "criterion"},
      {"http advice lr without its batch size", [&] { return Http("/api/v1/jobs/j/advice?batch_size=64&ref_lr=1e-3"); },
       "HTTP 400", "ref_batch_size"},
      {"http advice reference lr 0",
       [&] { return Http("/api/v1/jobs/j/advice?batch_size=64&ref_batch_size=32&ref_lr=0"); }, "HTTP 400",
       "reference.lr"},
      {"http jobs unknown parameter", [&] { return Http("/api/v1/jobs?colour=red"); }, "HTTP 400", "colour"},
      {"http jobs page size not a number", [&] { return Http("/api/v1/jobs?page_size=x"); }, "HTTP 400", "page_size"},
      {"http runs page token garbage", [&] { return Http("/api/v1/jobs/j/runs?page_token=zz"); }, "HTTP 400",
       "page_token"},
      {"http records page size 0", [&] { return Http("/api/v1/jobs/j/records?page_size=-5"); }, "HTTP 400",
       "page_size"},
      // ---- CSV (surge import)
      {"csv lr nan", [&] { return Import(kHeader + "r,0,8,8,nan,2\n"); }, "INVALID_ARGUMENT", "column 'lr'"},
      {"csv step negative", [&] { return Import(kHeader + "r,-1,8,8,0.1,2\n"); }, "INVALID_ARGUMENT", "column 'step'"},
      {"csv loss not a number", [&] { return Import(kHeader + "r,0,8,8,0.1,abc\n"); }, "INVALID_ARGUMENT",
       "column 'loss'"},
      {"csv missing column", [&] { return Import("run,step,examples,lr,loss\nr,0,8,0.1,2\n"); }, "INVALID_ARGUMENT",
       "batch_size"},
      {"csv run name with a space", [&] { return Import(kHeader + "a b,0,8,8,0.1,2\n"); }, "INVALID_ARGUMENT", "run"},
      {"csv run with two batch sizes", [&] { return Import(kHeader + "r,0,8,8,0.1,2\nr,1,16,16,0.1,2\n"); },
       "INVALID_ARGUMENT", ":3: run 'r'"},
      {"csv quote never closed", [&] { return Import(kHeader + "\"r,0,8,8,0.1,2\n"); }, "INVALID_ARGUMENT", "quote"},
      {"csv a directory", [&] { return Import(dir_.path(), /*is_path=*/true); }, "INVALID_ARGUMENT", "directory"},
  };
  ASSERT_GE(cases.size(), 40u);
  for (const Case& t : cases) {
    SCOPED_TRACE(t.name);
    const Outcome got = t.run();
    EXPECT_EQ(got.code, t.code) << got.message;
    EXPECT_THAT(got.message, ::testing::HasSubstr(t.contains));
    EXPECT_FALSE(got.message.empty());
  }
  // Nothing of the refused inputs was stored: job j still has its one run
  // and the one record of the re-send case.
  auto runs = c()->ListRuns("j");
  ASSERT_TRUE(runs.ok());
  ASSERT_EQ(runs->runs_size(), 1);
  EXPECT_EQ(runs->runs(0).record_count(), 1);
}

}  // namespace
}  // namespace surge
