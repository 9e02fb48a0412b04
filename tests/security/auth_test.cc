// Strangers kept out (issue 11, security): a real surge-server on 127.0.0.1
// with a token file, reached over gRPC (the C++ client, the CLI) and HTTP.
//   - every RPC without a token, or with an unknown one, is UNAUTHENTICATED;
//   - a reader may only read, a writer may not delete, an admin may;
//   - another tenant's job is NOT_FOUND with the very message of a job that
//     does not exist, in every RPC and every HTTP route, and absent from lists;
//   - tokens rotate with SIGHUP (new one works, removed one stops; a broken
//     file keeps the old tokens);
//   - HTTP: 401 with WWW-Authenticate without a token, pages and /healthz
//     open, a foreign Host header 421 (DNS rebinding);
//   - per-tenant limits answer RESOURCE_EXHAUSTED naming the limit;
//   - without tokens the server refuses a non-loopback address.
#include <httplib.h>
#include <signal.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "client/cpp/ingest_session.h"
#include "client/cpp/surge_client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/server_child.h"
#include "tests/support/temp_dir.h"

namespace surge {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// A token made by `surge token new` (the real CLI), with its file line.
struct Token {
  std::string token;
  std::string line;
};

Token NewToken(const std::string& tenant, const std::string& role) {
  testing::CommandResult r = testing::RunCommand(
      {SURGE_CLI_BIN, "token", "new", "--tenant", tenant, "--role", role});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  Token t;
  for (absl::string_view line : absl::StrSplit(r.out, '\n')) {
    if (absl::ConsumePrefix(&line, "token: ")) t.token = std::string(line);
    if (absl::ConsumePrefix(&line, "line:  ")) t.line = std::string(line);
  }
  EXPECT_TRUE(absl::StartsWith(t.token, "surge_")) << r.out;
  EXPECT_THAT(t.line, HasSubstr(" sha256:")) << r.out;
  EXPECT_THAT(t.line, Not(HasSubstr(t.token))) << "the file line must not hold the token";
  return t;
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::trunc) << text;
}

surge::v1::Job MakeJob(const std::string& name) {
  surge::v1::Job job;
  job.set_name(name);
  job.set_batch_unit(surge::v1::BATCH_UNIT_EXAMPLES);
  return job;
}

surge::v1::Run MakeRun(const std::string& name) {
  surge::v1::Run run;
  run.set_name(name);
  run.set_batch_size(32);
  run.set_base_lr(1e-3);
  run.set_protocol(surge::v1::PROTOCOL_PLAIN);
  return run;
}

class AuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    a_writer_ = NewToken("team-a", "writer");
    a_reader_ = NewToken("team-a", "reader");
    a_admin_ = NewToken("team-a", "admin");
    b_admin_ = NewToken("team-b", "admin");
    tokens_ = dir_.File("tokens");
    WriteFile(tokens_, absl::StrCat("# test tokens\n", a_writer_.line, "\n", a_reader_.line,
                                    "\n", a_admin_.line, "\n", b_admin_.line, "\n"));
  }

  void Start(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"--listen=127.0.0.1:0", "--http=127.0.0.1:0",
                                      "--db=" + dir_.File("surge.db"),
                                      "--tokens_file=" + tokens_};
    args.insert(args.end(), extra.begin(), extra.end());
    auto server = testing::StartServer(dir_, "server", args);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::make_unique<testing::Server>(std::move(*server));
  }

  void TearDown() override {
    if (server_) {
      server_->process.Kill(SIGTERM);
      server_->process.Wait();
    }
  }

  std::unique_ptr<client::SurgeClient> Client(const std::string& token) {
    client::ClientOptions options;
    options.target = server_->address();
    options.call_timeout = absl::Seconds(10);
    options.token = token;
    return std::make_unique<client::SurgeClient>(options);
  }

  // GET `path` on the dashboard port with `headers`.
  httplib::Result Get(const std::string& path, const httplib::Headers& headers = {}) {
    httplib::Client http("127.0.0.1", server_->http_port);
    http.set_read_timeout(10, 0);
    return http.Get(path.c_str(), headers);
  }
  static httplib::Headers Bearer(const Token& t) {
    return {{"Authorization", "Bearer " + t.token}};
  }

  // Creates job `name` of team-a with one run and a few records.
  void MakeTeamAJob(const std::string& name) {
    auto writer = Client(a_writer_.token);
    ASSERT_TRUE(writer->CreateJob(MakeJob(name)).ok());
    ASSERT_TRUE(writer->CreateRun(name, MakeRun("r1")).ok());
    client::IngestOptions options;
    client::IngestSession session(writer->channel(), name, options);
    for (int step = 0; step < 20; ++step) {
      surge::v1::Record r;
      r.set_run("r1");
      r.set_step(step);
      r.set_examples(32 * (step + 1));
      r.set_lr(1e-3);
      r.set_loss(2.0 - 0.01 * step);
      ASSERT_TRUE(session.Append(r).ok());
    }
    ASSERT_TRUE(session.Close(absl::Seconds(20)).ok());
  }

  testing::TempDir dir_;
  std::string tokens_;
  Token a_writer_, a_reader_, a_admin_, b_admin_;
  std::unique_ptr<testing::Server> server_;
};

// One call per RPC that names a job, as a function of the client.
struct JobCall {
  std::string rpc;
  std::function<absl::Status(client::SurgeClient&, const std::string& job)> call;
};

std::vector<JobCall> JobCalls() {
  return {
      {"GetJob", [](client::SurgeClient& c, const std::string& j) { return c.GetJob(j).status(); }},
      {"ListRuns",
       [](client::SurgeClient& c, const std::string& j) { return c.ListRuns(j).status(); }},
      {"ListRecords",
       [](client::SurgeClient& c, const std::string& j) {
         surge::v1::ListRecordsRequest r;
         r.set_job(j);
         return c.ListRecords(r).status();
       }},
      {"GetFit", [](client::SurgeClient& c, const std::string& j) { return c.GetFit(j).status(); }},
      {"GetAdvice",
       [](client::SurgeClient& c, const std::string& j) {
         return c.GetAdvice(j, 64, std::nullopt).status();
       }},
      {"WatchFits",
       [](client::SurgeClient& c, const std::string& j) {
         return c.WatchFits(j, absl::Seconds(2), [](const surge::v1::Fit&) { return false; });
       }},
      {"CreateRun",
       [](client::SurgeClient& c, const std::string& j) {
         return c.CreateRun(j, MakeRun("intruder")).status();
       }},
      {"AddOptima",
       [](client::SurgeClient& c, const std::string& j) {
         surge::v1::MeasuredOptimum o;
         o.set_batch_size(64);
         o.set_stage_loss(1.0);
         o.set_lr_opt(1e-3);
         o.set_lr_opt_se(0.1);
         return c.AddOptima(j, {o}).status();
       }},
      {"DeleteRun",
       [](client::SurgeClient& c, const std::string& j) { return c.DeleteRun(j, "r1").status(); }},
      {"DeleteJob",
       [](client::SurgeClient& c, const std::string& j) { return c.DeleteJob(j).status(); }},
      {"Ingest",
       [](client::SurgeClient& c, const std::string& j) {
         client::IngestSession session(c.channel(), j);  // gives up on a permanent error
         surge::v1::Record r;
         r.set_run("r1");
         r.set_step(1000);
         r.set_examples(1);
         r.set_lr(1e-3);
         r.set_loss(1.0);
         absl::Status appended = session.Append(r);
         absl::Status closed = session.Close(absl::Seconds(10));
         return appended.ok() ? closed : appended;
       }},
  };
}

TEST_F(AuthTest, WithoutATokenEveryCallIsUnauthenticated) {
  ASSERT_NO_FATAL_FAILURE(Start());
  ASSERT_NO_FATAL_FAILURE(MakeTeamAJob("job-a"));
  for (const std::string& token : {std::string(), std::string("surge_not-a-real-token")}) {
    auto client = Client(token);
    for (const JobCall& c : JobCalls()) {
      absl::Status s = c.call(*client, "job-a");
      EXPECT_EQ(s.code(), absl::StatusCode::kUnauthenticated) << c.rpc << ": " << s;
    }
    absl::Status list = client->ListJobs().status();
    EXPECT_EQ(list.code(), absl::StatusCode::kUnauthenticated) << list;
    absl::Status create = client->CreateJob(MakeJob("sneaky")).status();
    EXPECT_EQ(create.code(), absl::StatusCode::kUnauthenticated) << create;
    EXPECT_THAT(std::string(create.message()),
                HasSubstr(token.empty() ? "needs a token" : "unknown or revoked token"));
  }
  // Nothing of it happened.
  auto jobs = Client(a_reader_.token)->ListJobs();
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  ASSERT_EQ(jobs->jobs_size(), 1);
  EXPECT_EQ(jobs->jobs(0).record_count(), 20);
}

TEST_F(AuthTest, AnotherTenantsJobLooksExactlyLikeAMissingOne) {
  ASSERT_NO_FATAL_FAILURE(Start());
  ASSERT_NO_FATAL_FAILURE(MakeTeamAJob("job-a"));
  auto other = Client(b_admin_.token);  // the strongest role of team-b
  for (const JobCall& c : JobCalls()) {
    absl::Status theirs = c.call(*other, "job-a");
    absl::Status missing = c.call(*other, "no-such-job");
    EXPECT_EQ(theirs.code(), absl::StatusCode::kNotFound) << c.rpc << ": " << theirs;
    EXPECT_EQ(theirs.code(), missing.code()) << c.rpc;
    EXPECT_EQ(absl::StrReplaceAll(theirs.message(), {{"job-a", "X"}}),
              absl::StrReplaceAll(missing.message(), {{"no-such-job", "X"}}))
        << c.rpc;
  }
  auto b_jobs = other->ListJobs();
  ASSERT_TRUE(b_jobs.ok()) << b_jobs.status();
  EXPECT_EQ(b_jobs->jobs_size(), 0);
  // team-b's own job is team-b's; team-a does not see it.
  auto b_job = other->CreateJob(MakeJob("job-b"));
  ASSERT_TRUE(b_job.ok()) << b_job.status();
  EXPECT_EQ(b_job->tenant(), "team-b");
  auto a_jobs = Client(a_reader_.token)->ListJobs();
  ASSERT_TRUE(a_jobs.ok());
  ASSERT_EQ(a_jobs->jobs_size(), 1);
  EXPECT_EQ(a_jobs->jobs(0).name(), "job-a");
  EXPECT_EQ(a_jobs->jobs(0).tenant(), "team-a");
  EXPECT_EQ(a_jobs->jobs(0).record_count(), 20) << "team-b's attempts changed team-a's job";

  // The CLI says the same.
  testing::CommandResult cli = testing::RunCommand(
      {SURGE_CLI_BIN, "--server", server_->address(), "--token", b_admin_.token, "job", "show",
       "job-a"});
  EXPECT_EQ(cli.exit_code, 1);
  EXPECT_THAT(cli.err, HasSubstr("NOT_FOUND: job 'job-a' not found"));
}

TEST_F(AuthTest, RolesAllowReadWriteDeleteInTurn) {
  ASSERT_NO_FATAL_FAILURE(Start());
  ASSERT_NO_FATAL_FAILURE(MakeTeamAJob("job-a"));
  auto reader = Client(a_reader_.token);
  auto writer = Client(a_writer_.token);
  auto admin = Client(a_admin_.token);
  EXPECT_TRUE(reader->GetJob("job-a").ok());
  EXPECT_TRUE(reader->ListRuns("job-a").ok());
  for (const JobCall& c : JobCalls()) {
    absl::Status s = c.call(*reader, "job-a");
    const bool write = c.rpc == "CreateRun" || c.rpc == "AddOptima" || c.rpc == "Ingest" ||
                       absl::StartsWith(c.rpc, "Delete");
    if (write) {
      EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << c.rpc << ": " << s;
      EXPECT_THAT(std::string(s.message()), HasSubstr("role 'reader'")) << c.rpc;
    } else {
      EXPECT_NE(s.code(), absl::StatusCode::kPermissionDenied) << c.rpc << ": " << s;
      EXPECT_NE(s.code(), absl::StatusCode::kUnauthenticated) << c.rpc << ": " << s;
    }
  }
  absl::Status create = reader->CreateJob(MakeJob("by-reader")).status();
  EXPECT_EQ(create.code(), absl::StatusCode::kPermissionDenied) << create;

  absl::Status writer_delete = writer->DeleteJob("job-a").status();
  EXPECT_EQ(writer_delete.code(), absl::StatusCode::kPermissionDenied) << writer_delete;
  EXPECT_THAT(std::string(writer_delete.message()), HasSubstr("needs a token with role 'admin'"));
  absl::Status writer_delete_run = writer->DeleteRun("job-a", "r1").status();
  EXPECT_EQ(writer_delete_run.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(writer->CreateRun("job-a", MakeRun("r2")).ok());

  auto deleted = admin->DeleteJob("job-a");
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  EXPECT_EQ(deleted->records_deleted(), 20);
}

TEST_F(AuthTest, TokensRotateOnSighup) {
  ASSERT_NO_FATAL_FAILURE(Start());
  Token fresh = NewToken("team-a", "reader");
  EXPECT_EQ(Client(fresh.token)->ListJobs().status().code(), absl::StatusCode::kUnauthenticated);

  // Add the new token, drop the old reader's; SIGHUP.
  WriteFile(tokens_, absl::StrCat(a_writer_.line, "\n", fresh.line, "\n"));
  server_->process.Kill(SIGHUP);
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (absl::Now() < deadline && !Client(fresh.token)->ListJobs().ok()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(Client(fresh.token)->ListJobs().ok());
  EXPECT_EQ(Client(a_reader_.token)->ListJobs().status().code(),
            absl::StatusCode::kUnauthenticated);

  // A broken file is refused and the tokens in force stay.
  WriteFile(tokens_, "team-a writer not-a-hash\n");
  server_->process.Kill(SIGHUP);
  deadline = absl::Now() + absl::Seconds(10);
  while (absl::Now() < deadline &&
         !absl::StrContains(testing::ReadFile(server_->log), "tokens NOT re-read")) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_THAT(testing::ReadFile(server_->log), HasSubstr("line 1: the hash must be sha256:"));
  EXPECT_TRUE(Client(fresh.token)->ListJobs().ok());
  EXPECT_TRUE(Client(a_writer_.token)->ListJobs().ok());
}

TEST_F(AuthTest, HttpNeedsATokenForDataButNotForPagesAndHealth) {
  ASSERT_NO_FATAL_FAILURE(Start());
  ASSERT_NO_FATAL_FAILURE(MakeTeamAJob("job-a"));
  for (const std::string& path :
       {"/api/v1/jobs", "/api/v1/jobs/job-a", "/api/v1/jobs/job-a/runs",
        "/api/v1/jobs/job-a/records", "/api/v1/jobs/job-a/fit",
        "/api/v1/jobs/job-a/advice?batch_size=64", "/api/v1/jobs/job-a/fit/events", "/metrics"}) {
    auto res = Get(path);
    ASSERT_TRUE(res) << path;
    EXPECT_EQ(res->status, 401) << path << ": " << res->body;
    EXPECT_EQ(res->get_header_value("WWW-Authenticate"), "Bearer realm=\"surge\"") << path;
    EXPECT_THAT(res->body, HasSubstr("UNAUTHENTICATED")) << path;
    auto wrong = Get(path, {{"Authorization", "Bearer surge_wrong"}});
    ASSERT_TRUE(wrong);
    EXPECT_EQ(wrong->status, 401) << path;
  }
  for (const std::string& path : {"/healthz", "/", "/jobs/job-a", "/static/api.js"}) {
    auto res = Get(path);
    ASSERT_TRUE(res) << path;
    EXPECT_EQ(res->status, 200) << path;
  }
  auto mine = Get("/api/v1/jobs/job-a", Bearer(a_reader_));
  ASSERT_TRUE(mine);
  EXPECT_EQ(mine->status, 200) << mine->body;
  EXPECT_THAT(mine->body, HasSubstr("\"tenant\":\"team-a\""));
  auto metrics = Get("/metrics", Bearer(a_reader_));
  ASSERT_TRUE(metrics);
  EXPECT_EQ(metrics->status, 200);
  // team-b: the job is not there, the list is empty.
  for (const std::string& path : {"/api/v1/jobs/job-a", "/api/v1/jobs/job-a/fit",
                                  "/api/v1/jobs/job-a/runs", "/api/v1/jobs/job-a/fit/events"}) {
    auto theirs = Get(path, Bearer(b_admin_));
    ASSERT_TRUE(theirs);
    EXPECT_EQ(theirs->status, 404) << path;
    EXPECT_THAT(theirs->body, HasSubstr("job 'job-a' not found")) << path;
  }
  auto list = Get("/api/v1/jobs", Bearer(b_admin_));
  ASSERT_TRUE(list);
  EXPECT_EQ(list->status, 200);
  EXPECT_THAT(list->body, Not(HasSubstr("job-a")));
}

TEST_F(AuthTest, ForeignHostHeaderIsRefused) {
  ASSERT_NO_FATAL_FAILURE(Start({"--http_allowed_hosts=surge.example.org"}));
  const std::string port = absl::StrCat(":", server_->http_port);
  for (const std::string& host : {"evil.example.com" + port, "127.0.0.2" + port, std::string("localhost.evil")}) {
    auto res = Get("/api/v1/jobs", {{"Host", host}, {"Authorization", "Bearer " + a_reader_.token}});
    ASSERT_TRUE(res) << host;
    EXPECT_EQ(res->status, 421) << host;
    EXPECT_THAT(res->body, HasSubstr("is not served here")) << host;
    auto page = Get("/", {{"Host", host}});
    ASSERT_TRUE(page);
    EXPECT_EQ(page->status, 421) << host;
    auto health = Get("/healthz", {{"Host", host}});  // probes name pod addresses
    ASSERT_TRUE(health);
    EXPECT_EQ(health->status, 200);
  }
  for (const std::string& host :
       {"127.0.0.1" + port, "localhost" + port, "[::1]" + port, std::string("SURGE.example.org")}) {
    auto res = Get("/api/v1/jobs", {{"Host", host}, {"Authorization", "Bearer " + a_reader_.token}});
    ASSERT_TRUE(res) << host;
    EXPECT_EQ(res->status, 200) << host << ": " << res->body;
  }
}

TEST_F(AuthTest, PerTenantStreamAndRateLimitsAnswerResourceExhausted) {
  ASSERT_NO_FATAL_FAILURE(
      Start({"--tenant_max_streams=1", "--tenant_max_records_per_s=2000"}));
  ASSERT_TRUE(Client(a_writer_.token)->CreateJob(MakeJob("job-a")).ok());
  ASSERT_TRUE(Client(a_writer_.token)->CreateRun("job-a", MakeRun("r1")).ok());
  ASSERT_TRUE(Client(b_admin_.token)->CreateJob(MakeJob("job-b")).ok());
  ASSERT_TRUE(Client(b_admin_.token)->CreateRun("job-b", MakeRun("r1")).ok());

  // Streams: team-a holds one open; its second is refused, team-b's is not.
  auto a = Client(a_writer_.token);
  grpc::ClientContext first_context;  // the client's channel adds the token
  auto first = a->stub().Ingest(&first_context);
  surge::v1::IngestRequest batch;
  batch.set_job("job-a");
  batch.set_seq(1);
  surge::v1::Record* r = batch.add_records();
  r->set_run("r1");
  r->set_step(0);
  r->set_examples(32);
  r->set_lr(1e-3);
  r->set_loss(1.0);
  ASSERT_TRUE(first->Write(batch));
  surge::v1::IngestResponse ack;
  ASSERT_TRUE(first->Read(&ack));  // the stream is open and served
  {
    grpc::ClientContext second_context;
    auto second = a->stub().Ingest(&second_context);
    second->WritesDone();
    surge::v1::IngestResponse none;
    EXPECT_FALSE(second->Read(&none));
    grpc::Status s = second->Finish();
    EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
    EXPECT_THAT(s.error_message(), HasSubstr("tenant 'team-a' has 1 Ingest streams open"));
  }
  {
    auto b = Client(b_admin_.token);
    grpc::ClientContext context;
    auto other = b->stub().Ingest(&context);
    surge::v1::IngestRequest b_batch = batch;
    b_batch.set_job("job-b");
    ASSERT_TRUE(other->Write(b_batch));
    other->WritesDone();
    surge::v1::IngestResponse b_ack;
    while (other->Read(&b_ack)) {
    }
    grpc::Status b_status = other->Finish();
    EXPECT_TRUE(b_status.ok()) << "team-b was limited by team-a's stream: "
                               << b_status.error_message();
  }
  first->WritesDone();
  while (first->Read(&ack)) {
  }
  ASSERT_TRUE(first->Finish().ok());

  // Records per second: 2000/s with a one-second bucket; 10 batches of 1000
  // sent at once pass two or three, then RESOURCE_EXHAUSTED, after acks of
  // what was accepted.
  grpc::ClientContext context;
  auto stream = a->stub().Ingest(&context);
  int64_t step = 1;
  for (int seq = 1; seq <= 10; ++seq) {
    surge::v1::IngestRequest big;
    big.set_job("job-a");
    big.set_seq(seq);
    for (int i = 0; i < 1000; ++i) {
      surge::v1::Record* rec = big.add_records();
      *rec = batch.records(0);
      rec->set_step(step++);
    }
    if (!stream->Write(big)) break;
  }
  stream->WritesDone();
  int64_t stored = 0;
  while (stream->Read(&ack)) stored = ack.records_stored();
  grpc::Status limited = stream->Finish();
  EXPECT_EQ(limited.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << limited.error_message();
  EXPECT_THAT(limited.error_message(), HasSubstr("over its limit of 2000 records per second"));
  EXPECT_GE(stored, 2000);
  EXPECT_LT(stored, 10000);
  auto job = Client(a_reader_.token)->GetJob("job-a");
  ASSERT_TRUE(job.ok());
  EXPECT_EQ(job->record_count(), 1 + stored) << "acked records must be stored";
}

TEST(AuthStartTest, NonLoopbackAddressWithoutTokensIsRefused) {
  testing::TempDir dir;
  for (const std::string& flag : {"--listen=0.0.0.0:0", "--http=0.0.0.0:0"}) {
    testing::Refusal refusal = testing::RunRefused(
        dir, "open", {flag, "--db=" + dir.File("a.db"),
                      flag == "--http=0.0.0.0:0" ? "--listen=127.0.0.1:0" : "--http="});
    testing::ExpectRefused(refusal, "is not a loopback address: without --tokens_file");
    EXPECT_EQ(refusal.exit_code, 2);
  }
  std::ofstream(dir.File("bad-tokens")) << "team-a writer sha256:abc\n";
  testing::Refusal bad = testing::RunRefused(
      dir, "bad", {"--listen=127.0.0.1:0", "--http=", "--db=" + dir.File("b.db"),
                   "--tokens_file=" + dir.File("bad-tokens")});
  testing::ExpectRefused(bad, "line 1: the hash must be sha256: and 64 lower-case hex digits");
  EXPECT_EQ(bad.exit_code, 2);
}

}  // namespace
}  // namespace surge
