// One end-to-end test per RPC over real gRPC on 127.0.0.1:0 against an
// in-process app::Server on a real SQLite file: status codes and messages
// cross the wire as documented in surge.proto; health checking answers.
#include <grpcpp/create_channel.h>

#include <cmath>
#include <thread>

#include "client/cpp/ingest_session.h"
#include "client/cpp/surge_client.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "server/app/server.h"
#include "tests/support/temp_dir.h"

namespace surge {
namespace {

using ::testing::HasSubstr;

class RpcE2eTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(rpc::SurgeServiceOptions{}); }

  void Start(const rpc::SurgeServiceOptions& service) {
    server_.reset();
    app::ServerOptions options;
    options.service = service;
    options.listen = "127.0.0.1:0";
  options.http_listen = "127.0.0.1:0";
    options.core.db_path = dir_.File("rpc.db");
    options.shutdown_grace = absl::Seconds(2);
    auto server = app::Server::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    client::ClientOptions client_options;
    client_options.target = "127.0.0.1:" + std::to_string(server_->port());
    client_options.call_timeout = absl::Seconds(10);
    client_ = std::make_unique<client::SurgeClient>(client_options);
  }

  void CreateJobAndRun() {
    surge::v1::Job job;
    job.set_name("j");
    job.set_batch_unit(surge::v1::BATCH_UNIT_TOKENS);
    ASSERT_TRUE(client_->CreateJob(job).ok());
    surge::v1::Run run;
    run.set_name("r");
    run.set_batch_size(64);
    run.set_protocol(surge::v1::PROTOCOL_PLAIN);
    ASSERT_TRUE(client_->CreateRun("j", run).ok());
  }

  static surge::v1::Record Rec(int64_t step, double lr = 1e-3) {
    surge::v1::Record r;
    r.set_run("r");
    r.set_step(step);
    r.set_examples(64 * step);
    r.set_lr(lr);
    r.set_loss(1.0);
    return r;
  }

  testing::TempDir dir_;
  std::unique_ptr<app::Server> server_;
  std::unique_ptr<client::SurgeClient> client_;
};

TEST_F(RpcE2eTest, HealthServiceServes) {
  auto stub = grpc::health::v1::Health::NewStub(client_->channel());
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  grpc::health::v1::HealthCheckRequest request;
  grpc::health::v1::HealthCheckResponse response;
  ASSERT_TRUE(stub->Check(&context, request, &response).ok());
  EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING);
}

TEST_F(RpcE2eTest, JobRpcs) {
  surge::v1::Job job;
  job.set_name("j");
  EXPECT_EQ(client_->CreateJob(job).status().code(), absl::StatusCode::kInvalidArgument);
  job.set_batch_unit(surge::v1::BATCH_UNIT_EXAMPLES);
  auto created = client_->CreateJob(job);
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_GT(created->create_time_us(), 0);
  EXPECT_EQ(client_->CreateJob(job).status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(client_->GetJob("missing").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(client_->GetJob("").status().code(), absl::StatusCode::kInvalidArgument);
  auto list = client_->ListJobs();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->jobs_size(), 1);
  EXPECT_EQ(list->jobs(0).name(), "j");
  auto deleted = client_->DeleteJob("j");
  ASSERT_TRUE(deleted.ok());
  EXPECT_EQ(client_->DeleteJob("j").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(RpcE2eTest, RunRpcs) {
  CreateJobAndRun();
  surge::v1::Run run;
  run.set_name("r");
  run.set_batch_size(64);
  run.set_protocol(surge::v1::PROTOCOL_PLAIN);
  EXPECT_TRUE(client_->CreateRun("j", run).ok()) << "same spec is idempotent";
  run.set_batch_size(128);
  auto conflict = client_->CreateRun("j", run);
  EXPECT_EQ(conflict.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(conflict.status().message(), HasSubstr("batch_size 64"));
  run.set_name("probe");
  run.set_protocol(surge::v1::PROTOCOL_PROBE);
  auto no_parent = client_->CreateRun("j", run);
  EXPECT_EQ(no_parent.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(no_parent.status().message(), HasSubstr("run.parent"));
  EXPECT_EQ(client_->CreateRun("nojob", run).status().code(), absl::StatusCode::kInvalidArgument);
  run.mutable_parent()->set_checkpoint_step(100);
  run.mutable_parent()->set_loss(0.9);
  EXPECT_EQ(client_->CreateRun("nojob", run).status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(client_->CreateRun("j", run).ok());
  auto runs = client_->ListRuns("j");
  ASSERT_TRUE(runs.ok());
  ASSERT_EQ(runs->runs_size(), 2);
  EXPECT_EQ(runs->runs(0).name(), "r") << "ordered by batch size: 64 before 128";
  EXPECT_EQ(runs->runs(1).name(), "probe");
  EXPECT_EQ(runs->runs(1).parent().checkpoint_step(), 100);

  // DeleteRun removes one run with its records; the rest stays.
  {
    client::IngestSession session(client_->channel(), "j");
    for (int64_t step = 0; step < 5; ++step) session.Append(Rec(step));
    ASSERT_TRUE(session.Flush(absl::Seconds(10)).ok());
  }
  auto gone = client_->DeleteRun("j", "r");
  ASSERT_TRUE(gone.ok()) << gone.status();
  EXPECT_EQ(gone->records_deleted(), 5);
  runs = client_->ListRuns("j");
  ASSERT_TRUE(runs.ok());
  ASSERT_EQ(runs->runs_size(), 1);
  EXPECT_EQ(runs->runs(0).name(), "probe");
  auto again = client_->DeleteRun("j", "r");
  EXPECT_EQ(again.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(client_->DeleteRun("ghost", "r").status().code(), absl::StatusCode::kNotFound);
  auto bad = client_->DeleteRun("j", "no/slash");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("run"));
  EXPECT_EQ(client_->ListRuns("nojob").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(RpcE2eTest, IngestAcksThenRejectsBadBatchKeepingEarlierOnes) {
  CreateJobAndRun();
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  auto stream = client_->stub().Ingest(&context);
  surge::v1::IngestRequest good;
  good.set_job("j");
  good.set_seq(1);
  for (int i = 0; i < 10; ++i) *good.add_records() = Rec(i);
  ASSERT_TRUE(stream->Write(good));
  surge::v1::IngestResponse ack;
  ASSERT_TRUE(stream->Read(&ack));
  EXPECT_EQ(ack.acked_seq(), 1u);
  EXPECT_EQ(ack.records_stored(), 10);

  surge::v1::IngestRequest bad;
  bad.set_job("j");
  bad.set_seq(2);
  *bad.add_records() = Rec(10);
  *bad.add_records() = Rec(11, -1.0);
  stream->Write(bad);
  stream->WritesDone();
  while (stream->Read(&ack)) {
  }
  grpc::Status status = stream->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("batch seq 2: records[1].lr"));

  auto job = client_->GetJob("j");
  ASSERT_TRUE(job.ok());
  EXPECT_EQ(job->record_count(), 10) << "batch 1 stays, batch 2 is rejected whole";
}

TEST_F(RpcE2eTest, IngestUnknownRunIsNotFound) {
  CreateJobAndRun();
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  auto stream = client_->stub().Ingest(&context);
  surge::v1::IngestRequest request;
  request.set_job("j");
  request.set_seq(1);
  *request.add_records() = Rec(0);
  surge::v1::Record other = Rec(0);
  other.set_run("ghost");
  *request.add_records() = other;
  stream->Write(request);
  stream->WritesDone();
  surge::v1::IngestResponse ack;
  while (stream->Read(&ack)) {
  }
  grpc::Status status = stream->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(status.error_message(), HasSubstr("records[1].run"));
  EXPECT_THAT(status.error_message(), HasSubstr("ghost"));
}

TEST_F(RpcE2eTest, ListRecordsPagesAndValidates) {
  CreateJobAndRun();
  client::IngestSession session(client_->channel(), "j");
  for (int i = 0; i < 2500; ++i) ASSERT_TRUE(session.Append(Rec(i)).ok());
  ASSERT_TRUE(session.Flush(absl::Seconds(30)).ok());
  int pages = 0;
  int64_t count = 0;
  ASSERT_TRUE(client_
                  ->ForEachRecordPage("j", "r", 1000,
                                      [&](const surge::v1::ListRecordsResponse& page) {
                                        ++pages;
                                        count += page.records_size();
                                        return absl::OkStatus();
                                      })
                  .ok());
  EXPECT_EQ(count, 2500);
  EXPECT_EQ(pages, 3);
  surge::v1::ListRecordsRequest request;
  request.set_job("j");
  request.set_page_token("garbage");
  EXPECT_EQ(client_->ListRecords(request).status().code(), absl::StatusCode::kInvalidArgument);
  request.clear_page_token();
  request.set_page_size(100001);
  EXPECT_EQ(client_->ListRecords(request).status().code(), absl::StatusCode::kInvalidArgument);
  request.set_page_size(10);
  request.set_run("ghost");
  EXPECT_EQ(client_->ListRecords(request).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(RpcE2eTest, GracefulShutdownKeepsAckedAndQueuedRecords) {
  CreateJobAndRun();
  {
    client::IngestSession session(client_->channel(), "j");
    for (int i = 0; i < 20000; ++i) ASSERT_TRUE(session.Append(Rec(i)).ok());
    ASSERT_TRUE(session.Flush(absl::Seconds(30)).ok());
  }
  std::string db = dir_.File("rpc.db");
  server_->Shutdown();
  server_.reset();
  app::ServerOptions options;
  options.listen = "127.0.0.1:0";
  options.http_listen = "127.0.0.1:0";
  options.core.db_path = db;
  auto restarted = app::Server::Start(options);
  ASSERT_TRUE(restarted.ok());
  client::ClientOptions client_options;
  client_options.target = "127.0.0.1:" + std::to_string((*restarted)->port());
  client::SurgeClient client(client_options);
  auto job = client.GetJob("j");
  ASSERT_TRUE(job.ok());
  EXPECT_EQ(job->record_count(), 20000);
}

TEST_F(RpcE2eTest, FitRpcs) {
  CreateJobAndRun();
  // No evidence yet: the fit says what is missing; advice is FAILED_PRECONDITION.
  auto empty = client_->GetFit("j");
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_FALSE(empty->error().empty());
  auto no_advice = client_->GetAdvice("j", 64, std::nullopt);
  EXPECT_EQ(no_advice.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(no_advice.status().message(), HasSubstr("no usable fit yet"));
  EXPECT_EQ(client_->GetAdvice("j", 0, std::nullopt).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(client_->GetAdvice("j", 64, -5).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(client_->GetAdvice("ghost", 64, std::nullopt).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(client_->GetFit("ghost").status().code(), absl::StatusCode::kNotFound);

  // WatchFits sends the current fit, then the one AddOptima triggers.
  std::vector<surge::v1::Fit> seen;
  std::thread watcher([&] {
    absl::Status status = client_->WatchFits("j", absl::Seconds(20), [&](const surge::v1::Fit& f) {
      seen.push_back(f);
      return f.error().size() > 0;  // stop at the first fit without an error
    });
    EXPECT_TRUE(status.ok()) << status;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  std::vector<surge::v1::MeasuredOptimum> optima;
  for (double b : {4.0, 16.0, 64.0, 256.0, 1024.0}) {
    surge::v1::MeasuredOptimum& o = optima.emplace_back();
    o.set_stage(1);
    o.set_stage_loss(0.7);
    o.set_batch_size(b);
    o.set_lr_opt(2e-3 / std::cosh(std::log(b / 64.0) / 2));
    o.set_lr_opt_se(1e-4);
  }
  auto added = client_->AddOptima("j", optima);
  ASSERT_TRUE(added.ok()) << added.status();
  EXPECT_EQ(added->stored(), 5);
  watcher.join();
  ASSERT_GE(seen.size(), 2u);
  EXPECT_FALSE(seen.front().error().empty());
  EXPECT_TRUE(seen.back().error().empty()) << seen.back().error();
  EXPECT_GT(seen.back().version(), seen.front().version());

  auto advice = client_->GetAdvice("j", 64, std::nullopt);
  ASSERT_TRUE(advice.ok()) << advice.status();
  EXPECT_EQ(advice->fit_version(), seen.back().version());
  EXPECT_NEAR(advice->lr(), 2e-3, 2e-4);
  EXPECT_FALSE(advice->has_transfer());

  // The transfer through the C++ client: my LR 1e-3 tuned at B0 = 16, at B = 256.
  surge::v1::GetAdviceRequest transfer;
  transfer.set_job("j");
  transfer.set_batch_size(256);
  transfer.mutable_reference()->set_batch_size(16);
  transfer.mutable_reference()->set_lr(1e-3);
  auto moved = client_->GetAdvice(transfer);
  ASSERT_TRUE(moved.ok()) << moved.status();
  ASSERT_TRUE(moved->has_transfer());
  const double law = std::cosh(std::log(16.0 / 64.0) / 2) / std::cosh(std::log(256.0 / 64.0) / 2);
  EXPECT_NEAR(moved->transfer().ratio(), law, 0.05 * law);  // = 1: the law is symmetric here
  EXPECT_DOUBLE_EQ(moved->transfer().lr(), 1e-3 * moved->transfer().ratio());
  EXPECT_DOUBLE_EQ(moved->transfer().linear_rule_lr(), 1e-3 * 16);
  EXPECT_DOUBLE_EQ(moved->transfer().sqrt_rule_lr(), 1e-3 * 4);
  transfer.mutable_reference()->set_lr(0);
  auto refused = client_->GetAdvice(transfer);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(), HasSubstr("reference.lr"));

  optima[0].set_lr_opt(std::nan(""));
  auto bad = client_->AddOptima("j", optima);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("optima[0].lr_opt"));
}

// Fault 11 of issue 11: 1,500 idle Ingest streams cost 3,046 threads with
// no limit. Over the cap a new stream ends at once with RESOURCE_EXHAUSTED;
// closing one frees its slot.
TEST_F(RpcE2eTest, IngestStreamsAreCapped) {
  rpc::SurgeServiceOptions service;
  service.max_ingest_streams = 2;
  Start(service);
  CreateJobAndRun();
  struct Open {
    grpc::ClientContext context;
    std::unique_ptr<grpc::ClientReaderWriter<surge::v1::IngestRequest, surge::v1::IngestResponse>>
        stream;
  };
  auto open = [&](Open& o, uint64_t seq) {
    o.context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    o.stream = client_->stub().Ingest(&o.context);
    surge::v1::IngestRequest batch;
    batch.set_job("j");
    batch.set_seq(seq);
    *batch.add_records() = Rec(static_cast<int64_t>(seq));
    return o.stream->Write(batch);
  };
  Open a, b, c;
  ASSERT_TRUE(open(a, 1));
  ASSERT_TRUE(open(b, 1));
  surge::v1::IngestResponse ack;
  ASSERT_TRUE(a.stream->Read(&ack));  // both are being served
  ASSERT_TRUE(b.stream->Read(&ack));
  open(c, 1);
  c.stream->WritesDone();
  while (c.stream->Read(&ack)) {
  }
  grpc::Status refused = c.stream->Finish();
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(refused.error_message(), HasSubstr("too many concurrent Ingest streams (at most 2)"));
  // Closing one frees its slot.
  a.stream->WritesDone();
  while (a.stream->Read(&ack)) {
  }
  EXPECT_TRUE(a.stream->Finish().ok());
  Open d;
  ASSERT_TRUE(open(d, 5));
  ASSERT_TRUE(d.stream->Read(&ack));
  EXPECT_EQ(ack.acked_seq(), 5u);
  d.stream->WritesDone();
  while (d.stream->Read(&ack)) {
  }
  EXPECT_TRUE(d.stream->Finish().ok());
  b.stream->WritesDone();
  while (b.stream->Read(&ack)) {
  }
  EXPECT_TRUE(b.stream->Finish().ok());
}

// Fault 10 of issue 11: a string field with invalid UTF-8 made gRPC answer
// INTERNAL with an empty message. The request bytes are built with the
// field as an unknown field (the client does not check those), so the
// server parses a Job.name of "ab\xff\xfe".
TEST_F(RpcE2eTest, InvalidUtf8IsInvalidArgumentWithAMessage) {
  const std::string bad_name = std::string("\x0a\x04", 2) + "ab\xff\xfe";
  surge::v1::CreateJobRequest request;
  request.GetReflection()->MutableUnknownFields(&request)->AddLengthDelimited(1, bad_name);
  grpc::ClientContext context;
  surge::v1::Job response;
  grpc::Status status = client_->stub().CreateJob(&context, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("/surge.v1.Surge/CreateJob could not be parsed"));
  EXPECT_THAT(status.error_message(), HasSubstr("String field 'surge.v1.Job.name' contains invalid UTF-8"));

  // On the Ingest stream: batches before the bad one are acked and stored;
  // the stream ends with INVALID_ARGUMENT, not OK.
  CreateJobAndRun();
  grpc::ClientContext ingest_context;
  ingest_context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  auto stream = client_->stub().Ingest(&ingest_context);
  surge::v1::IngestRequest good;
  good.set_job("j");
  good.set_seq(1);
  *good.add_records() = Rec(0);
  ASSERT_TRUE(stream->Write(good));
  surge::v1::IngestResponse ack;
  ASSERT_TRUE(stream->Read(&ack));
  EXPECT_EQ(ack.acked_seq(), 1u);
  surge::v1::IngestRequest bad;
  bad.set_job("j");
  bad.set_seq(2);
  // records[0] = {run: "r\xff"} as an unknown field 3 (IngestRequest.records).
  const std::string record = std::string("\x0a\x02", 2) + "r\xff";
  bad.GetReflection()->MutableUnknownFields(&bad)->AddLengthDelimited(3, record);
  stream->Write(bad);
  stream->WritesDone();
  while (stream->Read(&ack)) {
  }
  grpc::Status ended = stream->Finish();
  EXPECT_EQ(ended.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << ended.error_message();
  EXPECT_THAT(ended.error_message(),
              HasSubstr("the batch after seq 1 could not be parsed: String field "
                        "'surge.v1.Record.run' contains invalid UTF-8"));
  auto runs = client_->ListRuns("j");
  ASSERT_TRUE(runs.ok());
  EXPECT_EQ(runs->runs(0).record_count(), 1);
}

}  // namespace
}  // namespace surge
