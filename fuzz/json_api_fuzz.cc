// Fuzz target: the HTTP API's request parsing (server/http/json_api.h) on a
// real SurgeCore. The input is a request line without the prefix:
//   ENDPOINT ' ' JOB '?' QUERY        e.g. "advice sweep?batch_size=256&step=100"
// ENDPOINT is jobs, job, runs, records, fit or advice (anything else: advice);
// JOB is URL-decoded as httplib decodes the path (a job with '/' cannot match
// the route and is skipped); QUERY is split by httplib's own parse_query_text,
// the function that fills httplib::Request::params for the server. Then:
// CheckQuery, ParseCriterion and ParseReference are called directly, and the
// JsonApi handler of the endpoint runs against the core.
//
// The core is opened once per process on a temporary SQLite file with three
// jobs: "sweep" (measured optima of 2 stages, fitted before fuzzing starts),
// "runs" (3 plain runs with 40 records each, for record pages) and "empty".
//
// Checked, besides "returns and never crashes" (ASan, UBSan): a handler
// answers 200 with a JSON object, or an error that is 400/404/412
// (INVALID_ARGUMENT, NOT_FOUND, FAILED_PRECONDITION) with a message. Error
// bodies that ErrorJson cannot encode (its INTERNAL fallback) are counted and
// the count printed at exit. (Invalid UTF-8 echoed from the query does not
// get there: protobuf's JSON printer drops it and logs an error.)
// Before httplib.h: it pulls in <resolv.h>, whose `_res` macro breaks Eigen's headers.
#include "server/http/json_api.h"

#include <httplib.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "google/protobuf/stubs/logging.h"
#include "server/core/fit_service.h"
#include "server/core/ingest_stream.h"
#include "server/core/page_token.h"
#include "server/core/surge_core.h"
#include "server/core/write_queue.h"
#include "server/http/api_error.h"

namespace {

using surge::http::JsonApi;
using surge::http::QueryParams;

std::string dir;
std::unique_ptr<surge::core::SurgeCore> core;
std::unique_ptr<JsonApi> api;
long long unencodable_errors = 0;
// ErrorJson's body when the error cannot be encoded.
constexpr char kUnencodable[] = R"({"code":"INTERNAL","message":"cannot encode error"})";

[[noreturn]] void Die(const std::string& what, const absl::Status& status) {
  std::fprintf(stderr, "fuzz_json_api: %s: %s\n", what.c_str(), status.ToString().c_str());
  std::abort();
}

void Must(const char* what, const absl::Status& status) {
  if (!status.ok()) Die(what, status);
}

// "sweep": 2 stages x 6 batch sizes of optima on a surge law (eps_max 1e-3, B_noise 256).
void AddSweep() {
  surge::v1::CreateJobRequest job;
  job.mutable_job()->set_name("sweep");
  job.mutable_job()->set_batch_unit(surge::v1::BATCH_UNIT_EXAMPLES);
  Must("CreateJob sweep", core->CreateJob(job).status());
  surge::v1::AddOptimaRequest optima;
  optima.set_job("sweep");
  for (int stage = 1; stage <= 2; ++stage) {
    for (double b = 16; b <= 8192; b *= 3.5) {
      surge::v1::MeasuredOptimum* o = optima.add_optima();
      o->set_stage(stage);
      o->set_stage_loss(stage == 1 ? 2.0 : 1.0);
      o->set_batch_size(b);
      const double eps = 1e-3 * stage / std::cosh(0.5 * std::log(b / 256.0));
      o->set_lr_opt(eps);
      o->set_lr_opt_se(0.05 * eps);
    }
  }
  Must("AddOptima", core->AddOptima(optima).status());
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (!core->LatestFit("sweep").ok()) {
    if (absl::Now() > deadline) Die("no fit of 'sweep' after 60 s", core->LatestFit("sweep").status());
    absl::SleepFor(absl::Milliseconds(20));
  }
}

// "runs": 3 plain runs with 40 records each; "empty": no runs.
void AddRuns() {
  for (const char* name : {"runs", "empty"}) {
    surge::v1::CreateJobRequest job;
    job.mutable_job()->set_name(name);
    job.mutable_job()->set_batch_unit(surge::v1::BATCH_UNIT_EXAMPLES);
    Must("CreateJob", core->CreateJob(job).status());
  }
  auto batch = std::make_unique<surge::v1::IngestRequest>();
  batch->set_job("runs");
  batch->set_seq(1);
  for (int r = 0; r < 3; ++r) {
    surge::v1::CreateRunRequest run;
    run.set_job("runs");
    run.mutable_run()->set_name(absl::StrCat("bs", 16 << r));
    run.mutable_run()->set_batch_size(16 << r);
    run.mutable_run()->set_protocol(surge::v1::PROTOCOL_PLAIN);
    Must("CreateRun", core->CreateRun(run).status());
    for (int step = 1; step <= 40; ++step) {
      surge::v1::Record* rec = batch->add_records();
      rec->set_run(run.run().name());
      rec->set_step(step);
      rec->set_examples(step * (16 << r));
      rec->set_lr(1e-3);
      rec->set_loss(3.0 / std::sqrt(step));
    }
  }
  std::unique_ptr<surge::core::IngestStream> stream = core->OpenIngestStream();
  Must("Ingest", stream->Accept(std::move(batch)));
  stream->Close();
  Must("Ingest commit", stream->commit_status());
}

void RemoveDir() {
  api.reset();
  if (core) core->Shutdown();
  core.reset();
  for (const char* f : {"/fuzz.db", "/fuzz.db-wal", "/fuzz.db-shm", "/fuzz.db.lock"}) {
    unlink((dir + f).c_str());
  }
  rmdir(dir.c_str());
  std::fprintf(stderr, "fuzz_json_api: error bodies that could not be JSON-encoded: %lld\n",
               unencodable_errors);
}

void CheckAnswer(const char* endpoint, const absl::StatusOr<std::string>& body) {
  if (body.ok()) {
    if (body->empty() || body->front() != '{') Die(absl::StrCat(endpoint, ": not a JSON object"), absl::OkStatus());
    return;
  }
  const int http = surge::http::HttpStatusFor(body.status().code());
  if ((http != 400 && http != 404 && http != 412) || body.status().message().empty()) {
    Die(absl::StrCat(endpoint, ": answered ", http), body.status());
  }
  if (surge::http::ErrorJson(body.status()) == kUnencodable) ++unencodable_errors;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler(nullptr);  // JSON encoding errors of bad UTF-8 are counted
  const char* tmp = getenv("TMPDIR");
  std::string pattern = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/surge-fuzz-api-XXXXXX");
  if (mkdtemp(pattern.data()) == nullptr) Die("mkdtemp", absl::OkStatus());
  dir = pattern;
  surge::core::CoreOptions options;
  options.db_path = dir + "/fuzz.db";
  options.fits.debounce = absl::Milliseconds(1);
  options.fits.threads = 1;
  options.max_readers = 2;
  absl::StatusOr<std::unique_ptr<surge::core::SurgeCore>> opened =
      surge::core::SurgeCore::Open(options);
  Must("SurgeCore::Open", opened.status());
  core = std::move(*opened);
  api = std::make_unique<JsonApi>(core.get());
  AddSweep();
  AddRuns();
  std::atexit(RemoveDir);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const size_t space = text.find(' ');
  const std::string endpoint = text.substr(0, space);
  const std::string rest = space == std::string::npos ? "" : text.substr(space + 1);
  const size_t question = rest.find('?');
  const std::string job = httplib::detail::decode_url(rest.substr(0, question), false);
  QueryParams query;
  if (question != std::string::npos) httplib::detail::parse_query_text(rest.substr(question + 1), query);

  // The parsers on their own.
  (void)surge::http::CheckQuery(query, {"batch_size", "step", "criterion"});
  auto criterion = query.find("criterion");
  (void)surge::http::ParseCriterion(criterion != query.end() ? criterion->second : job);
  surge::v1::GetAdviceRequest request;
  (void)surge::http::ParseReference(query, &request);

  // The handler of the endpoint.
  if (endpoint == "jobs") return CheckAnswer("jobs", api->ListJobs(query)), 0;
  if (job.find('/') != std::string::npos) return 0;
  if (endpoint == "job") return CheckAnswer("job", api->GetJob(job, query)), 0;
  if (endpoint == "runs") return CheckAnswer("runs", api->ListRuns(job, query)), 0;
  if (endpoint == "records") return CheckAnswer("records", api->ListRecords(job, query)), 0;
  if (endpoint == "fit") return CheckAnswer("fit", api->GetFit(job, query)), 0;
  CheckAnswer("advice", api->GetAdvice(job, query));
  return 0;
}
