// Fault test (issue 11): I/O errors. A real surge-server runs under libfiu's
// fiu-run with its POSIX preload (`fiu-run -x`), so its pwrite, fdatasync
// and fsync calls fail when the test says; fiu-ctrl switches the failure
// points of the running process. One server, one database, three phases:
//   1. random failures (pwrite 0.2%, fdatasync and fsync 5%) while two
//      IngestSessions stream: every acked record is in the file; streams end
//      with UNAVAILABLE, never INTERNAL, and the sessions re-send;
//   2. every pwrite fails: the acks stop, reads still answer, writes get
//      UNAVAILABLE, and the acked records are in the file;
//   3. failures off: the same server stores the rest, each record once.
// The server must never exit on its own; it stops cleanly at the end and the
// file is checked with sqlite3 (integrity_check, steps 0..n-1 once each, the
// runs' counters). Skipped when fiu-run is missing (Debian: fiu-utils).
//
// A second test shows the stall those phases first found without libfiu: a
// batch that failed at commit ended its stream only when the client sent
// another one, so a client waiting for acks with nothing more to send waited
// until its deadline.
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <httplib.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "client/cpp/ingest_session.h"
#include "client/cpp/surge_client.h"
#include "gtest/gtest.h"
#include "tests/support/streaming_job.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"

namespace surge {
namespace {

// The full path of `program` on $PATH, or "" (posix_spawn does not search).
std::string FindOnPath(const std::string& program) {
  const char* path = std::getenv("PATH");
  for (absl::string_view dir : absl::StrSplit(path ? path : "/usr/bin:/bin", ':')) {
    std::string candidate = absl::StrCat(dir, "/", program);
    if (!dir.empty() && access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

bool IsFifo(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISFIFO(st.st_mode);
}

// A surge-server under `fiu-run -x`, with no failure point enabled at start.
class FiuServer {
 public:
  static absl::StatusOr<FiuServer> Start(const std::string& fiu_run, const std::string& db,
                                         const std::string& dir) {
    const std::string port_file = dir + "/port", http_port_file = dir + "/http_port";
    const std::string log = dir + "/server.log", ctrl = dir + "/fiu-ctrl";
    absl::StatusOr<testing::Subprocess> process = testing::Subprocess::Start(
        {fiu_run, "-x", "-f", ctrl, SURGE_SERVER_BIN, "--db=" + db, "--listen=127.0.0.1:0",
         "--port_file=" + port_file, "--http=127.0.0.1:0", "--http_port_file=" + http_port_file,
         "--shutdown_grace_s=2"},
        log);
    if (!process.ok()) return process.status();
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (absl::Now() < deadline) {
      const std::string port = testing::ReadFile(port_file);
      const std::string http_port = testing::ReadFile(http_port_file);
      if (!port.empty() && !http_port.empty()) {
        // fiu-run execs the server, so its pid names the control FIFOs.
        std::string prefix = absl::StrCat(ctrl, "-", process->pid());
        return FiuServer(std::move(*process), std::stoi(port), std::stoi(http_port),
                         std::move(prefix), log);
      }
      if (process->Wait(absl::ZeroDuration()) != -1) {
        return absl::InternalError("surge-server exited at start: " + testing::ReadFile(log));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return absl::DeadlineExceededError("surge-server did not start: " + testing::ReadFile(log));
  }

  // libfiu's control FIFOs exist: its preload library is in the server.
  bool Controllable() const { return IsFifo(ctrl_ + ".in") && IsFifo(ctrl_ + ".out"); }

  // Sends libfiu commands ("enable_random name=...,probability=P",
  // "enable name=...", "disable name=..."); fiu-ctrl prints its errors.
  absl::Status Control(const std::string& fiu_ctrl, const std::vector<std::string>& commands) {
    std::vector<std::string> argv = {fiu_ctrl};
    for (const std::string& c : commands) {
      argv.push_back("-c");
      argv.push_back(c);
    }
    argv.push_back(ctrl_);  // a FIFO prefix, not a pid: no -f needed
    testing::CommandResult r = testing::RunCommand(argv);
    if (r.exit_code != 0 || !r.out.empty() || !r.err.empty()) {
      return absl::InternalError(absl::StrCat("fiu-ctrl exit ", r.exit_code, ": ", r.out, r.err));
    }
    return absl::OkStatus();
  }

  // Ingest streams the server has ended with `code` (its /metrics).
  int64_t IngestStreamsEndedWith(const std::string& code) const {
    httplib::Client http("127.0.0.1", http_port_);
    auto res = http.Get("/metrics");
    if (!res || res->status != 200) return -1;
    const std::string key =
        absl::StrCat("surge_rpc_requests_total{code=\"", code, "\",method=\"Ingest\"} ");
    for (absl::string_view line : absl::StrSplit(res->body, '\n')) {
      double n = 0;
      if (absl::ConsumePrefix(&line, key) && absl::SimpleAtod(line, &n)) {
        return static_cast<int64_t>(n);
      }
    }
    return 0;
  }

  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }
  testing::Subprocess& process() { return process_; }
  std::string log() const { return testing::ReadFile(log_); }

 private:
  FiuServer(testing::Subprocess process, int port, int http_port, std::string ctrl,
            std::string log)
      : process_(std::move(process)),
        port_(port),
        http_port_(http_port),
        ctrl_(std::move(ctrl)),
        log_(std::move(log)) {}

  testing::Subprocess process_;
  int port_;
  int http_port_;
  std::string ctrl_;
  std::string log_;
};

// One value of a query on the database (read-only; the server may be
// running), as text; "error: ..." when it fails.
std::string Query(const std::string& db, const std::string& sql) {
  sqlite3* handle = nullptr;
  std::string out;
  if (sqlite3_open_v2(db.c_str(), &handle, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    out = absl::StrCat("error: ", sqlite3_errmsg(handle));
  } else {
    sqlite3_busy_timeout(handle, 5000);
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(handle, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK) {
      out = absl::StrCat("error: ", sqlite3_errmsg(handle));
    } else if (sqlite3_step(stmt) == SQLITE_ROW) {
      const unsigned char* text = sqlite3_column_text(stmt, 0);
      out = text ? reinterpret_cast<const char*>(text) : "NULL";
    } else {
      out = absl::StrCat("error: ", sqlite3_errmsg(handle));
    }
    sqlite3_finalize(stmt);
  }
  sqlite3_close(handle);
  return out;
}

// Records of job `job`'s run r1 stored with step < `below`.
int64_t StoredBelow(const std::string& db, const std::string& job, int64_t below) {
  std::string n = Query(db, absl::StrCat("SELECT count(*) FROM records JOIN runs ON runs.id = "
                                         "records.run_id JOIN jobs ON jobs.id = runs.job_id "
                                         "WHERE jobs.name = '",
                                         job, "' AND runs.name = 'r1' AND step < ", below));
  int64_t value = -1;
  return absl::SimpleAtoi(n, &value) ? value : -1;
}

// Unary calls made without the client's retries, their codes counted.
class RawCalls {
 public:
  explicit RawCalls(const std::string& address)
      : stub_(surge::v1::Surge::NewStub(
            grpc::CreateChannel(address, grpc::InsecureChannelCredentials()))) {}

  // A write: a new job each time (UNAVAILABLE while the disk fails).
  grpc::Status CreateJob() {
    surge::v1::CreateJobRequest request;
    request.mutable_job()->set_name(absl::StrCat("probe-", next_++));
    request.mutable_job()->set_batch_unit(surge::v1::BATCH_UNIT_EXAMPLES);
    surge::v1::Job response;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return Count(stub_->CreateJob(&context, request, &response));
  }
  // A read, which no failure point touches.
  grpc::Status GetJob(const std::string& job) {
    surge::v1::GetJobRequest request;
    request.set_name(job);
    surge::v1::Job response;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return Count(stub_->GetJob(&context, request, &response));
  }
  const std::map<std::string, int>& codes() const { return codes_; }
  std::string Summary() const {
    std::string out;
    for (const auto& [code, n] : codes_) {
      absl::StrAppend(&out, out.empty() ? "" : ", ", code, " ", n);
    }
    return out;
  }

 private:
  grpc::Status Count(grpc::Status s) {
    ++codes_[std::string(absl::StatusCodeToString(static_cast<absl::StatusCode>(s.error_code())))];
    return s;
  }
  std::unique_ptr<surge::v1::Surge::Stub> stub_;
  int next_ = 0;
  std::map<std::string, int> codes_;
};

client::IngestOptions StreamOptions() {
  client::IngestOptions ingest;
  ingest.batch_records = 4096;
  ingest.linger = absl::Milliseconds(2);
  ingest.max_backoff = absl::Milliseconds(200);
  ingest.close_timeout = absl::Seconds(5);  // a failed test ends sooner
  return ingest;
}

TEST(IoErrorTest, NothingAckedIsLostAndTheServerRecovers) {
  const std::string fiu_run = FindOnPath("fiu-run"), fiu_ctrl = FindOnPath("fiu-ctrl");
  if (fiu_run.empty() || fiu_ctrl.empty()) {
    GTEST_SKIP() << "fiu-run/fiu-ctrl not found on PATH: install Debian's fiu-utils (and "
                    "libfiu0) to run the I/O error test";
  }
  testing::TempDir dir;
  const std::string db = dir.File("io.db");
  auto server = FiuServer::Start(fiu_run, db, dir.path());
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_TRUE(server->Controllable())
      << "fiu-run started the server without libfiu's control FIFOs (is libfiu0's "
         "fiu_posix_preload.so installed?); log:\n"
      << server->log();

  client::ClientOptions options;
  options.target = server->address();
  options.call_timeout = absl::Seconds(10);
  client::SurgeClient client(options);
  const std::vector<std::string> jobs = {"io-a", "io-b"};
  for (const std::string& job : jobs) ASSERT_TRUE(testing::CreateJobWithRun(client, job).ok());
  client::IngestSession session_a(client.channel(), jobs[0], StreamOptions());
  client::IngestSession session_b(client.channel(), jobs[1], StreamOptions());
  client::IngestSession* sessions[] = {&session_a, &session_b};
  RawCalls raw(server->address());
  int64_t step = 0;  // both sessions append steps 0..step-1
  auto append = [&](int n) {
    for (int i = 0; i < n; ++i, ++step) {
      for (client::IngestSession* s : sessions) {
        ASSERT_TRUE(s->Append(testing::StepRecord(step), absl::Seconds(60)).ok());
      }
    }
  };
  // Every record a session saw acked is in the file (acks cover a prefix).
  auto expect_acked_in_file = [&](const char* phase) {
    for (int j = 0; j < 2; ++j) {
      const int64_t acked = sessions[j]->stats().acked_records;
      EXPECT_EQ(StoredBelow(db, jobs[j], acked), acked)
          << phase << ": acked records of " << jobs[j] << " not in the file (-1: unreadable)";
    }
  };
  const absl::Time start = absl::Now();

  // Phase 1: random failures while streaming.
  absl::Status control = server->Control(
      fiu_ctrl, {"enable_random name=posix/io/rw/pwrite,probability=0.002",
                 "enable_random name=posix/io/sync/fdatasync,probability=0.05",
                 "enable_random name=posix/io/sync/fsync,probability=0.05"});
  ASSERT_TRUE(control.ok()) << control;
  // Rounds of 50,000 records per session, each flushed: the client then
  // waits for acks with nothing more to send, as `surge import` does at its
  // end. Big batches make big group commits, whose statements spill pages to
  // the -wal mid-transaction (a failure there rolls the transaction back).
  const absl::Time phase1_end = absl::Now() + absl::Seconds(8);
  absl::Duration slowest_flush;
  int rounds = 0;
  while (absl::Now() < phase1_end && !::testing::Test::HasFatalFailure()) {
    for (int chunk = 0; chunk < 5; ++chunk) {
      append(10000);
      // A write and a read without retries: UNAVAILABLE or OK, never INTERNAL.
      grpc::Status write = raw.CreateJob();
      EXPECT_TRUE(write.ok() || write.error_code() == grpc::StatusCode::UNAVAILABLE)
          << write.error_code() << ": " << write.error_message();
      grpc::Status read = raw.GetJob(jobs[0]);
      EXPECT_TRUE(read.ok()) << read.error_code() << ": " << read.error_message();
    }
    const absl::Time flush_start = absl::Now();
    for (client::IngestSession* s : sessions) {
      absl::Status flushed = s->Flush(absl::Seconds(20));
      ASSERT_TRUE(flushed.ok()) << "round " << rounds << ": " << flushed;
    }
    slowest_flush = std::max(slowest_flush, absl::Now() - flush_start);
    ++rounds;
  }
  if (::testing::Test::HasFatalFailure()) {
    std::cout << "server log:\n" << server->log() << "\n";
    return;
  }
  const int64_t appended_random = step;
  const int64_t acked_random =
      session_a.stats().acked_records + session_b.stats().acked_records;
  int64_t unavailable = server->IngestStreamsEndedWith("UNAVAILABLE");
  expect_acked_in_file("random failures");
  EXPECT_GT(unavailable, 0) << "no Ingest stream met an injected failure";
  EXPECT_EQ(server->IngestStreamsEndedWith("INTERNAL"), 0);
  EXPECT_EQ(server->IngestStreamsEndedWith("DATA_LOSS"), 0);
  EXPECT_EQ(acked_random, 2 * appended_random);

  // Phase 2: every pwrite fails. The acks stop; reads answer; writes are
  // UNAVAILABLE; the acked records are in the file.
  control = server->Control(fiu_ctrl, {"enable name=posix/io/rw/pwrite"});
  ASSERT_TRUE(control.ok()) << control;
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // commits in flight end
  append(5000);
  int64_t last_acked = -1;
  bool stalled = false;
  absl::Time stalled_since = absl::Now();
  const absl::Time give_up = absl::Now() + absl::Seconds(15);
  while (absl::Now() < give_up && !stalled) {
    const int64_t acked = session_a.stats().acked_records + session_b.stats().acked_records;
    if (acked != last_acked) {
      last_acked = acked;
      stalled_since = absl::Now();
    } else {
      stalled = absl::Now() - stalled_since > absl::Seconds(1);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(stalled) << "acks kept coming while every pwrite failed";
  EXPECT_LT(last_acked, 2 * step) << "records were acked while every pwrite failed";
  expect_acked_in_file("every write failing");
  grpc::Status refused = raw.CreateJob();
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::UNAVAILABLE)
      << refused.error_code() << ": " << refused.error_message();
  const std::string refused_message = refused.error_message();
  EXPECT_TRUE(raw.GetJob(jobs[0]).ok()) << "reads must answer while writes fail";
  EXPECT_EQ(server->process().Wait(absl::ZeroDuration()), -1) << "the server exited";

  // Phase 3: failures off; the same server stores the rest.
  control = server->Control(fiu_ctrl, {"disable name=posix/io/rw/pwrite",
                                       "disable name=posix/io/sync/fdatasync",
                                       "disable name=posix/io/sync/fsync"});
  ASSERT_TRUE(control.ok()) << control;
  const absl::Time recovery = absl::Now();
  append(20000);
  for (client::IngestSession* s : sessions) ASSERT_TRUE(s->Flush(absl::Seconds(60)).ok());
  const absl::Duration recovered_in = absl::Now() - recovery;
  for (int j = 0; j < 2; ++j) {
    EXPECT_EQ(sessions[j]->stats().acked_records, step);
    auto fetched = client.GetJob(jobs[j]);
    ASSERT_TRUE(fetched.ok()) << fetched.status();
    EXPECT_EQ(fetched->record_count(), step) << jobs[j] << ": every record exactly once";
  }
  EXPECT_TRUE(raw.CreateJob().ok()) << "writes work again";
  const int64_t internal = server->IngestStreamsEndedWith("INTERNAL");
  const int64_t data_loss = server->IngestStreamsEndedWith("DATA_LOSS");
  unavailable = server->IngestStreamsEndedWith("UNAVAILABLE");
  EXPECT_EQ(internal, 0) << "an Ingest stream ended with INTERNAL";
  EXPECT_EQ(data_loss, 0);
  for (const auto& [code, n] : raw.codes()) {
    EXPECT_TRUE(code == "OK" || code == "UNAVAILABLE") << n << " unary calls got " << code;
  }

  // The server never exited by itself; it stops cleanly.
  ASSERT_EQ(server->process().Wait(absl::ZeroDuration()), -1) << "the server exited:\n"
                                                               << server->log();
  server->process().Kill(SIGTERM);
  const int exit_status = server->process().Wait(absl::Seconds(30));
  EXPECT_TRUE(WIFEXITED(exit_status) && WEXITSTATUS(exit_status) == 0)
      << "wait status " << exit_status << "\n" << server->log();

  // The file, with the server stopped: each step of each run exactly once.
  EXPECT_EQ(Query(db, "PRAGMA integrity_check"), "ok");
  for (const std::string& job : jobs) {
    const std::string where = absl::StrCat(
        " FROM records JOIN runs ON runs.id = records.run_id JOIN jobs ON jobs.id = runs.job_id "
        "WHERE jobs.name = '", job, "'");
    EXPECT_EQ(Query(db, "SELECT count(*)" + where), absl::StrCat(step)) << job;
    EXPECT_EQ(Query(db, "SELECT count(DISTINCT step)" + where), absl::StrCat(step)) << job;
    EXPECT_EQ(Query(db, "SELECT min(step) || ' ' || max(step)" + where),
              absl::StrCat(0, " ", step - 1))
        << job;
    EXPECT_EQ(Query(db, absl::StrCat("SELECT record_count || ' ' || last_step FROM runs JOIN jobs "
                                     "ON jobs.id = runs.job_id WHERE jobs.name = '",
                                     job, "'")),
              absl::StrCat(step, " ", step - 1))
        << job << ": the run's counters";
  }

  const client::IngestStats a = session_a.stats(), b = session_b.stats();
  std::cout << "random failures (8 s): " << 2 * appended_random << " records in " << rounds
            << " flushed rounds, all acked (slowest flush " << absl::FormatDuration(slowest_flush)
            << "); every pwrite failing: acks stopped at " << last_acked
            << " (" << refused_message << "); failures off: " << 2 * step
            << " records stored once each, flushed in " << absl::FormatDuration(recovered_in)
            << "\nIngest streams ended UNAVAILABLE " << unavailable << ", INTERNAL " << internal
            << "; reconnects " << a.reconnects + b.reconnects << ", batches re-sent "
            << a.batches_resent + b.batches_resent << ", duplicates "
            << a.duplicate_records + b.duplicate_records << "; unary calls without retries: "
            << raw.Summary() << "; " << absl::FormatDuration(absl::Now() - start) << " in all\n";
  if (HasFailure()) std::cout << "server log:\n" << server->log() << "\n";
}

// Without libfiu: a batch that fails at commit (here a conflicting re-send,
// ALREADY_EXISTS) as the last one a client sends. The stream must end with
// its error at once; it used to wait for a next batch that never came, and
// the client's Flush ran into its deadline.
TEST(IoErrorTest, ABatchFailingAtCommitEndsItsStreamAtOnce) {
  testing::TempDir dir;
  auto server = testing::ServerProcess::Start(dir.File("last.db"), dir.path());
  ASSERT_TRUE(server.ok()) << server.status();
  client::ClientOptions options;
  options.target = server->address();
  client::SurgeClient client(options);
  ASSERT_TRUE(testing::CreateJobWithRun(client, "last").ok());
  {
    client::IngestSession first(client.channel(), "last", StreamOptions());
    for (int64_t s = 0; s < 10; ++s) ASSERT_TRUE(first.Append(testing::StepRecord(s)).ok());
    ASSERT_TRUE(first.Flush(absl::Seconds(10)).ok());
  }
  client::IngestSession second(client.channel(), "last", StreamOptions());
  surge::v1::Record changed = testing::StepRecord(9);
  changed.set_loss(changed.loss() + 1);
  ASSERT_TRUE(second.Append(changed).ok());
  const absl::Time start = absl::Now();
  absl::Status flushed = second.Flush(absl::Seconds(20));
  const absl::Duration took = absl::Now() - start;
  EXPECT_EQ(flushed.code(), absl::StatusCode::kAlreadyExists) << flushed;
  EXPECT_LT(took, absl::Seconds(5)) << "the failed stream waited for another batch";
  server->process().Kill(SIGTERM);
  server->process().Wait();
}

}  // namespace
}  // namespace surge
