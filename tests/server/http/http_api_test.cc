// The JSON API, /metrics, /healthz, the fit event stream and the static files
// against a real surge-server (gRPC and HTTP on port 0) holding a 2-stage
// probe sweep imported with the real `surge` CLI. Responses are parsed back
// into the surge.v1 messages with unknown fields rejected, so the JSON shape
// is checked against the proto.
// Before httplib.h: it pulls in <resolv.h>, whose `_res` macro breaks Eigen's headers.
#include "server/http/http_server.h"

#include <httplib.h>
#include <signal.h>

#include <fstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "surge/v1/surge.pb.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"

namespace surge {
namespace {

using ::testing::HasSubstr;

constexpr char kJob[] = "sweep";

// Parses `json` into `message`, failing on fields the proto does not have.
template <typename Message>
Message Parse(const std::string& json) {
  Message message;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  auto status = google::protobuf::util::JsonStringToMessage(json, &message, options);
  EXPECT_TRUE(status.ok()) << status.ToString() << "\n" << json.substr(0, 400);
  return message;
}

// Waits for a port file written by surge-server; 0 on timeout or exit.
int WaitForPort(const std::string& path, testing::Subprocess& process) {
  absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (absl::Now() < deadline) {
    std::string text = testing::ReadFile(path);
    if (!text.empty()) return std::stoi(text);
    if (process.Wait(absl::Milliseconds(20)) != -1) return 0;
  }
  return 0;
}

class HttpApiTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    auto process = testing::Subprocess::Start(
        {SURGE_SERVER_BIN, "--db=" + dir_->File("http.db"), "--listen=127.0.0.1:0",
         "--http=127.0.0.1:0", "--port_file=" + dir_->File("grpc.port"),
         "--http_port_file=" + dir_->File("http.port"), "--shutdown_grace_s=2"},
        dir_->File("server.log"));
    ASSERT_TRUE(process.ok()) << process.status();
    server_ = new testing::Subprocess(std::move(*process));
    grpc_port_ = WaitForPort(dir_->File("grpc.port"), *server_);
    ASSERT_GT(grpc_port_, 0) << testing::ReadFile(dir_->File("server.log"));
    http_port_ = std::stoi(testing::ReadFile(dir_->File("http.port")));
    ASSERT_GT(http_port_, 0);

    auto gen = testing::RunCommand({"/usr/bin/python3",
                                    std::string(SURGE_SOURCE_DIR) + "/scripts/gen_probe_sweep.py",
                                    "--out-dir", dir_->path()});
    ASSERT_EQ(gen.exit_code, 0) << gen.err;
    for (const char* file : {"base.csv", "probes.csv"}) {
      auto imported = Cli({"import", "--job", kJob, dir_->File(file)});
      ASSERT_EQ(imported.exit_code, 0) << imported.err;
    }
    auto empty = Cli({"job", "create", "empty"});
    ASSERT_EQ(empty.exit_code, 0) << empty.err;
  }

  static void TearDownTestSuite() {
    if (server_ != nullptr) {
      server_->Kill(SIGTERM);
      server_->Wait();
    }
    delete server_;
    delete dir_;
  }

  static testing::CommandResult Cli(std::vector<std::string> args) {
    std::vector<std::string> argv = {SURGE_CLI_BIN, "--server",
                                     absl::StrCat("127.0.0.1:", grpc_port_)};
    argv.insert(argv.end(), args.begin(), args.end());
    return testing::RunCommand(argv);
  }

  httplib::Result Get(const std::string& path) {
    httplib::Client client("127.0.0.1", http_port_);
    client.set_read_timeout(30, 0);
    return client.Get(path.c_str());
  }

  // GET that must answer `status` with a JSON error of `code`; returns the message.
  std::string ExpectError(const std::string& path, int status, const std::string& code) {
    auto res = Get(path);
    if (!res) {
      ADD_FAILURE() << path << ": no response";
      return "";
    }
    EXPECT_EQ(res->status, status) << path << ": " << res->body;
    EXPECT_EQ(res->get_header_value("Content-Type"), "application/json") << path;
    auto body = Parse<google::protobuf::Struct>(res->body);
    EXPECT_EQ(body.fields().at("code").string_value(), code) << path << ": " << res->body;
    return body.fields().at("message").string_value();
  }

  static testing::TempDir* dir_;
  static testing::Subprocess* server_;
  static int grpc_port_;
  static int http_port_;
};

testing::TempDir* HttpApiTest::dir_ = nullptr;
testing::Subprocess* HttpApiTest::server_ = nullptr;
int HttpApiTest::grpc_port_ = 0;
int HttpApiTest::http_port_ = 0;

TEST_F(HttpApiTest, HealthzAnswersOk) {
  auto res = Get("/healthz");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, "ok\n");
}

TEST_F(HttpApiTest, JobsJobAndRunsMirrorTheRpcs) {
  auto jobs_res = Get("/api/v1/jobs");
  ASSERT_TRUE(jobs_res);
  ASSERT_EQ(jobs_res->status, 200) << jobs_res->body;
  EXPECT_EQ(jobs_res->get_header_value("Content-Type"), "application/json");
  auto jobs = Parse<surge::v1::ListJobsResponse>(jobs_res->body);
  ASSERT_EQ(jobs.jobs_size(), 2);  // ordered by name
  EXPECT_EQ(jobs.jobs(0).name(), "empty");
  EXPECT_EQ(jobs.jobs(1).name(), kJob);

  // The same bytes the CLI prints with --json (same message, same JSON options).
  auto cli = Cli({"job", "show", kJob, "--json"});
  ASSERT_EQ(cli.exit_code, 0) << cli.err;
  auto job_res = Get(absl::StrCat("/api/v1/jobs/", kJob));
  ASSERT_TRUE(job_res);
  ASSERT_EQ(job_res->status, 200);
  auto job = Parse<surge::v1::Job>(job_res->body);
  auto cli_job = Parse<surge::v1::Job>(cli.out);
  EXPECT_EQ(job.DebugString(), cli_job.DebugString());
  EXPECT_EQ(job.record_count(), jobs.jobs(1).record_count());
  EXPECT_GT(job.record_count(), 2000);  // 2000 base records + the probes
  // Defaults are printed: the empty job shows zero counts explicitly.
  auto empty = Get("/api/v1/jobs/empty");
  ASSERT_TRUE(empty);
  EXPECT_THAT(empty->body, HasSubstr("\"recordCount\":\"0\""));

  // Runs come in pages (at most 1000 by default): follow next_page_token.
  surge::v1::ListRunsResponse runs;
  std::string token;
  int pages = 0;
  do {
    auto runs_res = Get(absl::StrCat("/api/v1/jobs/", kJob, "/runs",
                                     token.empty() ? "" : "?page_token=" + token));
    ASSERT_TRUE(runs_res);
    ASSERT_EQ(runs_res->status, 200);
    auto page = Parse<surge::v1::ListRunsResponse>(runs_res->body);
    EXPECT_LE(page.runs_size(), 1000);
    for (const auto& r : page.runs()) *runs.add_runs() = r;
    token = page.next_page_token();
    ++pages;
  } while (!token.empty());
  EXPECT_EQ(pages, 2);  // the sweep has more than 1000 runs
  EXPECT_EQ(runs.runs_size(), job.run_count());
  int plain = 0;
  for (const auto& run : runs.runs()) plain += run.protocol() == surge::v1::PROTOCOL_PLAIN;
  EXPECT_EQ(plain, 1);
}

TEST_F(HttpApiTest, RecordsPageWithTokens) {
  std::string base = absl::StrCat("/api/v1/jobs/", kJob, "/records?run=base&page_size=1500");
  auto first_res = Get(base);
  ASSERT_TRUE(first_res);
  ASSERT_EQ(first_res->status, 200) << first_res->body;
  auto first = Parse<surge::v1::ListRecordsResponse>(first_res->body);
  ASSERT_EQ(first.records_size(), 1500);
  EXPECT_EQ(first.records(0).step(), 0);
  ASSERT_FALSE(first.next_page_token().empty());
  auto second_res = Get(absl::StrCat(base, "&page_token=", first.next_page_token()));
  ASSERT_TRUE(second_res);
  auto second = Parse<surge::v1::ListRecordsResponse>(second_res->body);
  ASSERT_EQ(second.records_size(), 500);
  EXPECT_EQ(second.records(0).step(), 1500);
  EXPECT_EQ(second.records(499).step(), 1999);
  EXPECT_TRUE(second.next_page_token().empty());
  EXPECT_TRUE(second.records(0).has_grad_stats());
}

// A browser accepts brotli; the server answers with gzip instead (brotli at
// cpp-httplib's quality 11 cost ~200 ms per large JSON page), and the body
// is the same.
TEST_F(HttpApiTest, LargeResponsesAreGzipNotBrotli) {
  httplib::Client client("127.0.0.1", http_port_);
  client.set_read_timeout(30, 0);
  const std::string path = absl::StrCat("/api/v1/jobs/", kJob, "/records?run=base&page_size=1500");
  auto res = client.Get(path.c_str(), {{"Accept-Encoding", "gzip, deflate, br"}});
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(res->get_header_value("Content-Encoding"), "gzip");
  EXPECT_EQ(Parse<surge::v1::ListRecordsResponse>(res->body).records_size(), 1500);
  auto only_br = client.Get(path.c_str(), {{"Accept-Encoding", "br"}});
  ASSERT_TRUE(only_br);
  EXPECT_EQ(only_br->get_header_value("Content-Encoding"), "");
  EXPECT_EQ(Parse<surge::v1::ListRecordsResponse>(only_br->body).records_size(), 1500);
}

TEST(AcceptEncodingTest, DropsBrotliOnly) {
  EXPECT_EQ(http::AcceptEncodingWithoutBrotli("gzip, deflate, br"), "gzip, deflate");
  EXPECT_EQ(http::AcceptEncodingWithoutBrotli("br"), "");
  EXPECT_EQ(http::AcceptEncodingWithoutBrotli("br;q=1.0, gzip;q=0.8"), "gzip;q=0.8");
  EXPECT_EQ(http::AcceptEncodingWithoutBrotli("identity"), "identity");
  EXPECT_EQ(http::AcceptEncodingWithoutBrotli("gzip,brx"), "gzip, brx");
}

TEST_F(HttpApiTest, FitHasTwoStagesWithCurves) {
  auto res = Get(absl::StrCat("/api/v1/jobs/", kJob, "/fit"));
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  auto fit = Parse<surge::v1::Fit>(res->body);
  EXPECT_EQ(fit.error(), "");
  ASSERT_EQ(fit.stages_size(), 2);
  for (const auto& stage : fit.stages()) {
    EXPECT_GE(stage.optima_size(), 3);
    bool surge_curve = false;
    for (const auto& model : stage.models()) {
      if (model.model() == "surge") surge_curve = model.fitted() && model.curve_size() > 10;
    }
    EXPECT_TRUE(surge_curve) << "stage " << stage.stage_id();
  }
  EXPECT_EQ(fit.stages(0).surge().b_noise_kind(), surge::v1::B_NOISE_KIND_POINT);
  // NaN and Infinity use the proto JSON mapping's strings.
  EXPECT_FALSE(absl::StrContains(res->body, ":nan"));
  // An unfittable job is a Fit with `error`, not an HTTP error.
  auto empty = Get("/api/v1/jobs/empty/fit");
  ASSERT_TRUE(empty);
  EXPECT_EQ(empty->status, 200);
  EXPECT_NE(Parse<surge::v1::Fit>(empty->body).error(), "");
}

TEST_F(HttpApiTest, AdviceEqualsTheCli) {
  auto cli = Cli({"advise", "--job", kJob, "--batch", "256", "--step", "1000", "--json"});
  ASSERT_EQ(cli.exit_code, 0) << cli.err;
  auto from_cli = Parse<surge::v1::Advice>(cli.out);
  auto res = Get(absl::StrCat("/api/v1/jobs/", kJob, "/advice?batch_size=256&step=1000"));
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  auto advice = Parse<surge::v1::Advice>(res->body);
  EXPECT_GT(advice.lr(), 0);
  EXPECT_EQ(advice.lr(), from_cli.lr());
  EXPECT_EQ(advice.fit_version(), from_cli.fit_version());
  EXPECT_EQ(advice.step(), 1000);
  // Without a step: the latest stage.
  auto latest = Get(absl::StrCat("/api/v1/jobs/", kJob, "/advice?batch_size=256"));
  ASSERT_TRUE(latest);
  ASSERT_EQ(latest->status, 200) << latest->body;
  EXPECT_FALSE(Parse<surge::v1::Advice>(latest->body).has_step());
}

// ?criterion= maps to GetAdviceRequest.criterion: the enum name or its short
// name. This job has probes only, so "fastest" (training runs only) is the
// core's FAILED_PRECONDITION, which it can only be if the parameter arrived.
TEST_F(HttpApiTest, AdviceCriterionParameter) {
  std::string advice = absl::StrCat("/api/v1/jobs/", kJob, "/advice?batch_size=256");
  auto plain = Get(advice);
  ASSERT_TRUE(plain);
  ASSERT_EQ(plain->status, 200) << plain->body;
  const double lr = Parse<surge::v1::Advice>(plain->body).lr();
  for (const char* value : {"CRITERION_IMPROVEMENT", "improvement", "CRITERION_UNSPECIFIED", ""}) {
    auto res = Get(absl::StrCat(advice, "&criterion=", value));
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200) << value << ": " << res->body;
    auto a = Parse<surge::v1::Advice>(res->body);
    EXPECT_EQ(a.criterion(), surge::v1::CRITERION_IMPROVEMENT) << value;
    EXPECT_EQ(a.lr(), lr) << value;
  }
  for (const char* value : {"CRITERION_FASTEST", "fastest"}) {
    EXPECT_THAT(ExpectError(absl::StrCat(advice, "&criterion=", value), 412, "FAILED_PRECONDITION"),
                HasSubstr("fastest"))
        << value;
  }
  EXPECT_THAT(ExpectError(advice + "&criterion=quickest", 400, "INVALID_ARGUMENT"),
              HasSubstr("criterion: unknown value 'quickest'"));
  ExpectError(advice + "&criterion=fastest&criterion=improvement", 400, "INVALID_ARGUMENT");
}

TEST_F(HttpApiTest, BadRequestsGetJsonErrorsWithTheMatchingStatus) {
  std::string job = absl::StrCat("/api/v1/jobs/", kJob);
  EXPECT_THAT(ExpectError("/api/v1/jobs/nope", 404, "NOT_FOUND"), HasSubstr("nope"));
  ExpectError("/api/v1/jobs/nope/fit", 404, "NOT_FOUND");
  ExpectError("/api/v1/jobs/nope/fit/events", 404, "NOT_FOUND");
  ExpectError("/api/v1/jobs/bad%20name", 400, "INVALID_ARGUMENT");
  EXPECT_THAT(ExpectError(job + "/advice", 400, "INVALID_ARGUMENT"),
              HasSubstr("batch_size: required"));
  EXPECT_THAT(ExpectError(job + "/advice?batch_size=abc", 400, "INVALID_ARGUMENT"),
              HasSubstr("batch_size: not a number"));
  EXPECT_THAT(ExpectError(job + "/advice?batch_size=-4", 400, "INVALID_ARGUMENT"),
              HasSubstr("batch_size"));
  EXPECT_THAT(ExpectError(job + "/advice?batch_size=64&step=-3", 400, "INVALID_ARGUMENT"),
              HasSubstr("step"));
  EXPECT_THAT(ExpectError(job + "/advice?batch_size=64&step=1.5", 400, "INVALID_ARGUMENT"),
              HasSubstr("step: not an integer"));
  EXPECT_THAT(ExpectError(job + "/advice?batchsize=64", 400, "INVALID_ARGUMENT"),
              HasSubstr("unknown query parameter 'batchsize'"));
  ExpectError(job + "/advice?batch_size=64&batch_size=32", 400, "INVALID_ARGUMENT");
  ExpectError(job + "/records?page_size=200000", 400, "INVALID_ARGUMENT");
  ExpectError(job + "/records?page_token=garbage", 400, "INVALID_ARGUMENT");
  ExpectError(job + "/records?run=nope", 404, "NOT_FOUND");
  EXPECT_THAT(ExpectError("/api/v1/jobs/empty/advice?batch_size=64", 412, "FAILED_PRECONDITION"),
              HasSubstr("no usable fit yet"));
  ExpectError("/api/v1/nothing", 404, "NOT_FOUND");

  httplib::Client client("127.0.0.1", http_port_);
  auto post = client.Post("/api/v1/jobs", "{}", "application/json");
  ASSERT_TRUE(post);
  EXPECT_EQ(post->status, 405);
  EXPECT_EQ(post->get_header_value("Allow"), "GET, HEAD");
  auto del = client.Delete(absl::StrCat("/api/v1/jobs/", kJob).c_str());
  ASSERT_TRUE(del);
  EXPECT_EQ(del->status, 405);
  EXPECT_EQ(Get(absl::StrCat("/api/v1/jobs/", kJob))->status, 200);  // still there
}

TEST_F(HttpApiTest, ServesTheDashboardFiles) {
  auto index = Get("/");
  ASSERT_TRUE(index);
  EXPECT_EQ(index->status, 200);
  EXPECT_EQ(index->get_header_value("Content-Type"), "text/html; charset=utf-8");
  EXPECT_THAT(index->body, HasSubstr("/static/jobs.js"));
  auto page = Get(absl::StrCat("/jobs/", kJob));
  ASSERT_TRUE(page);
  EXPECT_THAT(page->body, HasSubstr("/static/job.js"));
  auto script = Get("/static/plot.js");
  ASSERT_TRUE(script);
  EXPECT_EQ(script->status, 200);
  EXPECT_EQ(script->get_header_value("Content-Type"), "text/javascript; charset=utf-8");
  EXPECT_THAT(script->body, HasSubstr("export class Plot"));
  // Nothing from elsewhere: the pages may load only this server's files.
  EXPECT_THAT(index->get_header_value("Content-Security-Policy"), HasSubstr("default-src 'self'"));
  EXPECT_FALSE(absl::StrContains(index->body, "http://"));
  EXPECT_FALSE(absl::StrContains(index->body, "https://"));
  EXPECT_EQ(Get("/static/nope.js")->status, 404);
  EXPECT_EQ(Get("/static/..%2Fhttp_server.cc")->status, 404);
}

// Reads the SSE stream until `events` "fit" events arrived (or 30 s).
std::vector<surge::v1::Fit> ReadFitEvents(int port, const std::string& job, size_t events,
                                          std::function<void()> after_first = nullptr) {
  std::vector<surge::v1::Fit> fits;
  std::string buffer;
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(30, 0);
  absl::Time deadline = absl::Now() + absl::Seconds(30);
  client.Get(absl::StrCat("/api/v1/jobs/", job, "/fit/events").c_str(),
             [&](const char* data, size_t n) {
               buffer.append(data, n);
               size_t end;
               while ((end = buffer.find("\n\n")) != std::string::npos) {
                 std::string event = buffer.substr(0, end);
                 buffer.erase(0, end + 2);
                 size_t data_at = event.find("data: ");
                 if (absl::StrContains(event, "event: fit") && data_at != std::string::npos) {
                   fits.push_back(Parse<surge::v1::Fit>(event.substr(data_at + 6)));
                   if (fits.size() == 1 && after_first) after_first();
                 }
               }
               return fits.size() < events && absl::Now() < deadline;
             });
  return fits;
}

TEST_F(HttpApiTest, FitEventsStreamTheLatestFitThenNewOnes) {
  auto current = Parse<surge::v1::Fit>(Get(absl::StrCat("/api/v1/jobs/", kJob, "/fit"))->body);
  std::string extra = dir_->File("extra.csv");
  std::ofstream(extra) << "run,step,examples,batch_size,lr,loss\n"
                          "extra,0,64,64,0.001,2.2\nextra,1,128,64,0.001,2.1\n";
  std::thread importer;
  std::vector<surge::v1::Fit> fits = ReadFitEvents(http_port_, kJob, 2, [&] {
    importer = std::thread([&] {
      auto imported = Cli({"import", "--job", kJob, extra});
      EXPECT_EQ(imported.exit_code, 0) << imported.err;
    });
  });
  if (importer.joinable()) importer.join();
  ASSERT_EQ(fits.size(), 2u);
  EXPECT_GE(fits[0].version(), current.version());
  EXPECT_GT(fits[1].version(), fits[0].version());
  EXPECT_EQ(fits[1].stages_size(), 2);
}

TEST_F(HttpApiTest, MetricsCountRpcsIngestFitsAndCommits) {
  ASSERT_EQ(Get("/api/v1/jobs/nope")->status, 404);
  auto res = Get("/metrics");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  EXPECT_THAT(res->get_header_value("Content-Type"), HasSubstr("text/plain; version=0.0.4"));
  const std::string& text = res->body;
  EXPECT_THAT(text, HasSubstr("surge_rpc_requests_total{code=\"OK\",method=\"Ingest\"}"));
  EXPECT_THAT(text, HasSubstr("surge_rpc_duration_seconds_bucket{method=\"CreateRun\""));
  EXPECT_THAT(text, HasSubstr("surge_http_requests_total{route=\"job\",status=\"404\"}"));
  EXPECT_THAT(text, HasSubstr("surge_sqlite_commit_duration_seconds_count"));
  EXPECT_THAT(text, HasSubstr("surge_fit_duration_seconds_count"));
  EXPECT_THAT(text, HasSubstr("surge_fits_computed_total{result=\"ok\"}"));
  // records ingested equals the job's record count (all records are new).
  auto job = Parse<surge::v1::Job>(Get(absl::StrCat("/api/v1/jobs/", kJob))->body);
  size_t at = text.find("\nsurge_records_ingested_total ");
  ASSERT_NE(at, std::string::npos) << text;
  double ingested = std::stod(text.substr(at + 30));
  EXPECT_EQ(static_cast<int64_t>(ingested), job.record_count());
}

// A job of plain runs only (scripts/gen_records.py --lrs: a sweep from a
// known surge law) answers ?criterion=CRITERION_FASTEST with the fastest
// criterion's advice, the same as `surge advise --criterion fastest`. Its own
// server, so the shared fixture's job list and record counts stay as they are.
TEST(HttpAdviceCriterion, FastestOnPlainRunsEqualsTheCli) {
  testing::TempDir dir;
  auto process = testing::Subprocess::Start(
      {SURGE_SERVER_BIN, "--db=" + dir.File("plain.db"), "--listen=127.0.0.1:0",
       "--http=127.0.0.1:0", "--port_file=" + dir.File("grpc.port"),
       "--http_port_file=" + dir.File("http.port"), "--shutdown_grace_s=1"},
      dir.File("server.log"));
  ASSERT_TRUE(process.ok()) << process.status();
  int grpc_port = WaitForPort(dir.File("grpc.port"), *process);
  ASSERT_GT(grpc_port, 0) << testing::ReadFile(dir.File("server.log"));
  const int http_port = std::stoi(testing::ReadFile(dir.File("http.port")));
  auto gen = testing::RunCommand(
      {"/usr/bin/python3", std::string(SURGE_SOURCE_DIR) + "/scripts/gen_records.py", "--runs",
       "5", "--lrs", "5", "--steps", "300", "--eval-every", "5"});
  ASSERT_EQ(gen.exit_code, 0) << gen.err;
  std::ofstream(dir.File("sweep.csv")) << gen.out;
  const std::string server = absl::StrCat("127.0.0.1:", grpc_port);
  auto imported =
      testing::RunCommand({SURGE_CLI_BIN, "--server", server, "import", "--job", "plain",
                           dir.File("sweep.csv")});
  ASSERT_EQ(imported.exit_code, 0) << imported.err;

  httplib::Client client("127.0.0.1", http_port);
  client.set_read_timeout(30, 0);
  const std::string path = "/api/v1/jobs/plain/advice?batch_size=64&criterion=CRITERION_FASTEST";
  httplib::Result res = client.Get(path.c_str());
  for (absl::Time deadline = absl::Now() + absl::Seconds(30);
       res && res->status == 412 && absl::Now() < deadline; res = client.Get(path.c_str())) {
    absl::SleepFor(absl::Milliseconds(100));  // the first fit is computed in the background
  }
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  auto fastest = Parse<surge::v1::Advice>(res->body);
  EXPECT_EQ(fastest.criterion(), surge::v1::CRITERION_FASTEST);
  EXPECT_EQ(fastest.evidence(), "plain_runs");
  EXPECT_GT(fastest.runs_used(), 0);
  EXPECT_FALSE(fastest.flags().short_horizon());
  auto cli = testing::RunCommand({SURGE_CLI_BIN, "--server", server, "advise", "--job", "plain",
                                  "--batch", "64", "--criterion", "fastest", "--json"});
  ASSERT_EQ(cli.exit_code, 0) << cli.err;
  auto from_cli = Parse<surge::v1::Advice>(cli.out);
  EXPECT_EQ(fastest.fit_version(), from_cli.fit_version());
  EXPECT_EQ(fastest.lr(), from_cli.lr());
  auto improvement = client.Get("/api/v1/jobs/plain/advice?batch_size=64");
  ASSERT_TRUE(improvement);
  ASSERT_EQ(improvement->status, 200) << improvement->body;
  EXPECT_EQ(Parse<surge::v1::Advice>(improvement->body).criterion(),
            surge::v1::CRITERION_IMPROVEMENT);
  process->Kill(SIGTERM);
  process->Wait();
}

TEST(HttpServerStart, ExplicitBusyPortIsAnError) {
  testing::TempDir dir;
  httplib::Server blocker;
  int busy = blocker.bind_to_any_port("127.0.0.1");
  ASSERT_GT(busy, 0);
  auto result = testing::RunCommand(
      {SURGE_SERVER_BIN, "--db=" + dir.File("busy.db"), "--listen=127.0.0.1:0",
       absl::StrCat("--http=127.0.0.1:", busy)});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.out + result.err, HasSubstr("cannot listen for HTTP"));
  auto bad = testing::RunCommand({SURGE_SERVER_BIN, "--db=" + dir.File("bad.db"),
                                  "--listen=127.0.0.1:0", "--http=nonsense"});
  EXPECT_EQ(bad.exit_code, 2);  // a flag problem: not started (see startup_faults_test)
  EXPECT_THAT(bad.out + bad.err, HasSubstr("--http=nonsense: must be HOST:PORT"));
}

}  // namespace
}  // namespace surge
