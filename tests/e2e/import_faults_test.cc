// End-to-end faults of `surge import` (issue 11, fault 10): the real CLI
// binary against a real surge-server child on 127.0.0.1 (and, for refusals
// that a valid file cannot provoke from the real server, an in-process fake
// Surge service). Non-regular files fail fast with bounded memory; a BOM and
// RFC 4180 quoting import; a bad row after valid ones names its file line
// and stores nothing; binary garbage never reaches the terminal raw; a
// refusal mid-stream names the row's line and exactly which rows are stored.
//
// SURGE_IMPORT_FAULTS_CLI, when set, replaces the CLI binary under test
// (to show that these tests fail on an older build).
#include <grpcpp/grpcpp.h>
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "surge/v1/surge.grpc.pb.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"

// ASan (GCC defines the first; clang answers the second).
#if defined(__SANITIZE_ADDRESS__)
#define SURGE_TEST_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SURGE_TEST_UNDER_ASAN 1
#endif
#endif

namespace surge {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr char kHeader[] = "run,step,examples,batch_size,lr,loss\n";

std::string Cli() {
  const char* override_bin = std::getenv("SURGE_IMPORT_FAULTS_CLI");
  return override_bin != nullptr ? override_bin : SURGE_CLI_BIN;
}

// Valid rows of run `run` (batch 8), steps [from, to).
std::string Rows(const std::string& run, int from, int to) {
  std::string text;
  for (int s = from; s < to; ++s) {
    absl::StrAppend(&text, run, ",", s, ",", (s + 1) * 8, ",8,0.001,", 2.5 - 0.0001 * s, "\n");
  }
  return text;
}

// The bytes of `text` that a terminal would act on, besides line ends.
std::string RawControlBytes(const std::string& text) {
  std::string found;
  for (char c : text) {
    unsigned char u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\n') || u == 0x7F) absl::StrAppend(&found, static_cast<int>(u), " ");
  }
  return found;
}

class ImportFaultsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = testing::ServerProcess::Start(dir_.File("imp.db"), dir_.path());
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::make_unique<testing::ServerProcess>(std::move(*server));
  }

  testing::CommandResult Surge(std::vector<std::string> args) {
    std::vector<std::string> argv = {Cli(), "--server", server_->address()};
    argv.insert(argv.end(), args.begin(), args.end());
    return testing::RunCommand(argv);
  }

  // `surge import` under a 20 s kill timer and a 2 GiB address-space limit.
  // An ASan build (scripts/sanitize.sh) reserves terabytes of address space
  // for its shadow memory and cannot start under ulimit -v: there ASan's own
  // 2 GiB RSS limit bounds the CLI instead (going over it is a report).
  testing::CommandResult BoundedImport(const std::string& job, const std::string& file) {
#if defined(SURGE_TEST_UNDER_ASAN)
    const char* limit = "export ASAN_OPTIONS=\"${ASAN_OPTIONS:+$ASAN_OPTIONS:}hard_rss_limit_mb=2048\"; ";
#else
    const char* limit = "ulimit -v 2097152; ";
#endif
    return testing::RunCommand(
        {"/usr/bin/timeout", "-s", "KILL", "20", "/bin/sh", "-c",
         absl::StrCat(limit, "exec '", Cli(), "' --server ", server_->address(),
                      " import --job ", job, " '", file, "'")});
  }

  std::string Write(const std::string& name, const std::string& content) {
    std::string path = dir_.File(name);
    std::ofstream(path, std::ios::binary) << content;
    return path;
  }

  // Records of `job` as `surge records` prints them (CSV with its header).
  std::vector<std::string> StoredLines(const std::string& job) {
    auto records = Surge({"records", job});
    EXPECT_EQ(records.exit_code, 0) << records.err;
    return absl::StrSplit(records.out, '\n', absl::SkipEmpty());
  }

  testing::TempDir dir_;
  std::unique_ptr<testing::ServerProcess> server_;
};

TEST_F(ImportFaultsTest, NonRegularFilesFailFastWithBoundedMemory) {
  const std::string fifo = dir_.File("pipe.csv");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  struct Case {
    std::string path;
    std::string kind;
  };
  const Case cases[] = {{dir_.path(), "a directory"},
                        {"/dev/zero", "a character device"},
                        {fifo, "a FIFO (named pipe)"}};
  for (const Case& c : cases) {
    SCOPED_TRACE(c.path);
    absl::Time start = absl::Now();
    auto result = BoundedImport("nonreg", c.path);
    EXPECT_LT(absl::Now() - start, absl::Seconds(10));
    EXPECT_EQ(result.exit_code, 1) << result.err;
    EXPECT_EQ(result.err, absl::StrCat("INVALID_ARGUMENT: ", c.path, ": is ", c.kind,
                                       ", not a regular file; surge import reads a CSV file\n"));
  }
  auto jobs = Surge({"jobs"});
  EXPECT_THAT(jobs.out, ::testing::Not(HasSubstr("nonreg"))) << "nothing was created";
}

TEST_F(ImportFaultsTest, ByteOrderMarkAndCrlfImport) {
  const std::string csv =
      Write("bom.csv", absl::StrCat("\xEF\xBB\xBF", "run,step,examples,batch_size,lr,loss\r\n",
                                    "r1,0,8,8,0.001,2.5\r\n", "r1,1,16,8,0.001,2.25\r\n"));
  auto result = Surge({"import", "--job", "bom", csv});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_THAT(result.out, HasSubstr("imported 2 rows into job 'bom' (1 runs): 2 new"));
  EXPECT_THAT(StoredLines("bom"), ::testing::ElementsAre(
                                      StartsWith("run,step,"), "r1,0,8,8,0.001,2.5,,,,,",
                                      "r1,1,16,8,0.001,2.25,,,,,"));
}

TEST_F(ImportFaultsTest, QuotedFieldsImport) {
  // Quoted names and cells, spaces around quotes, a line break inside quotes
  // (the eval_loss cell spans lines 4-5), CRLF, and a blank line.
  const std::string csv = Write(
      "quoted.csv",
      "\"run\",\"step\",examples,\"batch_size\",lr,loss,\"eval_loss\"\r\n"
      "\"r1\",\"0\",8,8,\"0.001\",\"2.5\",\r\n"
      "\r\n"
      " \"r1\" ,1,16,8,0.001,2.25,\"2.75\n\"\r\n"
      "r1,2,24,8,0.001,\"2\",\"\"\r\n");
  auto result = Surge({"import", "--job", "quoted", csv});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_THAT(result.out, HasSubstr("imported 3 rows into job 'quoted' (1 runs): 3 new"));
  EXPECT_THAT(StoredLines("quoted"),
              ::testing::ElementsAre(StartsWith("run,step,"), "r1,0,8,8,0.001,2.5,,,,,",
                                     "r1,1,16,8,0.001,2.25,2.75,,,,", "r1,2,24,8,0.001,2,,,,,"));
}

// A bad row deep in a file: exit 1, the message names its file line and
// column, and nothing is stored (the job existed before, and keeps its
// records and no new runs; a job the import would create is not created).
TEST_F(ImportFaultsTest, BadRowAfterValidRowsStoresNothing) {
  ASSERT_EQ(Surge({"job", "create", "deep"}).exit_code, 0);
  const std::string before = Write("before.csv", absl::StrCat(kHeader, Rows("old", 0, 10)));
  ASSERT_EQ(Surge({"import", "--job", "deep", before}).exit_code, 0);

  struct Case {
    std::string name;
    std::string bad_row;
    std::string message;  // after "PATH:5003: "
  };
  const Case cases[] = {
      {"nan lr", "r0,5000,40008,8,nan,2", "column 'lr': must be finite and >= 0, got nan"},
      {"not a number", "r0,5000,40008,8,0.001,2x", "column 'loss': not a valid number '2x'"},
      {"negative step", "r0,-1,40008,8,0.001,2", "column 'step': must be >= 0, got -1"},
      {"bad run name", "r 0,5000,40008,8,0.001,2",
       "column 'run': only letters, digits, '.', '_' and '-' are allowed, got 'r 0'"},
      {"batch size changes", "r0,5000,40008,16,0.001,2",
       "run 'r0' has batch_size 8 in earlier rows (from line 2), 16 here; a run has one batch "
       "size"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    // 5000 valid rows in two runs (lines 2-5001), a blank line 5002, the
    // bad row on line 5003, then valid rows again.
    const std::string csv =
        Write("deep.csv", absl::StrCat(kHeader, Rows("r0", 0, 2500), Rows("r1", 0, 2500), "\n",
                                       c.bad_row, "\n", Rows("r2", 0, 100)));
    auto result = Surge({"import", "--job", "deep", "--batch-records", "100", csv});
    EXPECT_EQ(result.exit_code, 1) << result.out;
    EXPECT_EQ(result.err, absl::StrCat("INVALID_ARGUMENT: ", csv, ":5003: ", c.message, "\n"));
    EXPECT_EQ(StoredLines("deep").size(), 11u) << "only the 10 rows stored before";
    auto runs = Surge({"runs", "deep"});
    EXPECT_THAT(runs.out, ::testing::Not(HasSubstr("r0"))) << runs.out;

    auto fresh = Surge({"import", "--job", "fresh", csv});
    EXPECT_EQ(fresh.exit_code, 1);
    EXPECT_THAT(Surge({"jobs"}).out, ::testing::Not(HasSubstr("fresh")));
  }
}

// The server refuses a run the file declares (same name, another batch
// size): nothing of the file is stored.
TEST_F(ImportFaultsTest, RunConflictWithTheServerStoresNoRecords) {
  const std::string first = Write("first.csv", absl::StrCat(kHeader, Rows("shared", 0, 5)));
  ASSERT_EQ(Surge({"import", "--job", "conflict", first}).exit_code, 0);
  const std::string csv = Write(
      "second.csv", absl::StrCat(kHeader, Rows("fresh", 0, 300), "shared,5,96,16,0.001,2\n"));
  auto result = Surge({"import", "--job", "conflict", csv});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.err, StartsWith(absl::StrCat("ALREADY_EXISTS: ", csv,
                                                  ":302: creating run 'shared': ")));
  EXPECT_THAT(result.err, HasSubstr("[no records were stored; 1 run created before it is empty]"));
  EXPECT_EQ(StoredLines("conflict").size(), 6u);
}

TEST_F(ImportFaultsTest, BinaryGarbageIsNeverEchoedRaw) {
  std::string garbage;
  uint32_t x = 12345;
  for (int i = 0; i < 300000; ++i) {
    x = x * 1103515245u + 12345u;
    garbage.push_back(static_cast<char>(x >> 24));
  }
  struct Case {
    std::string name;
    std::string content;
    std::string prefix;
  };
  const Case cases[] = {
      {"garbage header", garbage, ":1: unknown column '"},
      {"garbage row", absl::StrCat(kHeader, "r,0,8,8,0.001,2\n", garbage),
       ":3: expected 6 cells, got 2\n"},
      {"escape sequences in a row",
       absl::StrCat(kHeader, "r\x1b]0;pwned\x07,0,8,8,\x1b[2J\x1b[31m,2\n"),
       ":2: column 'lr': not a valid number '\\x1b[2J\\x1b[31m'\n"},
      {"NUL bytes without line ends", std::string(4 << 20, '\0'), ":1: line longer than"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string csv = Write("garbage.csv", c.content);
    auto result = BoundedImport("garbage", csv);
    EXPECT_EQ(result.exit_code, 1) << result.err;
    EXPECT_THAT(result.err, StartsWith(absl::StrCat("INVALID_ARGUMENT: ", csv, c.prefix)));
    EXPECT_EQ(RawControlBytes(result.err), "") << result.err;
    EXPECT_LT(result.err.size(), 1000u) << "long values are cut";
  }
  EXPECT_THAT(Surge({"jobs"}).out, ::testing::Not(HasSubstr("garbage")));
}

// Probe and optima files are checked whole before anything is created.
TEST_F(ImportFaultsTest, ProbeAndOptimaFilesAreCheckedFirst) {
  struct Case {
    std::string name;
    std::string content;
    std::string message;  // after "PATH:"
  };
  const Case cases[] = {
      {"probe stage < 0",
       "\xEF\xBB\xBFstage,stage_loss,batch_size,lr,seed,improvement\r\n"
       "100,1.5,8,0.001,0,0.02\r\n\"-1\",1.5,8,0.01,0,0.03\r\n",
       "3: column 'stage': must be >= 0, got -1"},
      {"optimum batch size 0",
       "stage,stage_loss,batch_size,lr_opt,lr_opt_se\n1,0.8,8,0.001,0.0001\n"
       "1,0.8,0,0.001,0.0001\n",
       "3: column 'batch_size': must be > 0, got 0"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string csv = Write("table.csv", c.content);
    auto result = Surge({"import", "--job", "tables", csv});
    EXPECT_EQ(result.exit_code, 1);
    EXPECT_EQ(result.err, absl::StrCat("INVALID_ARGUMENT: ", csv, ":", c.message, "\n"));
    EXPECT_THAT(Surge({"jobs"}).out, ::testing::Not(HasSubstr("tables")));
  }
}

// A Surge service that accepts every job and run, acks whole batches until
// `fail_at` rows, then refuses the batch holding row `fail_at` (0-based)
// as the real server refuses a record: "batch seq S: records[K].loss: ...".
// With `unavailable`, it breaks the stream there instead and every later
// one at once, so the client retries until its timeout.
class FakeSurge final : public surge::v1::Surge::Service {
 public:
  FakeSurge(int64_t fail_at, bool unavailable) : fail_at_(fail_at), unavailable_(unavailable) {}

  grpc::Status GetJob(grpc::ServerContext*, const surge::v1::GetJobRequest* request,
                      surge::v1::Job* job) override {
    job->set_name(request->name());
    return grpc::Status::OK;
  }
  grpc::Status CreateRun(grpc::ServerContext*, const surge::v1::CreateRunRequest* request,
                         surge::v1::Run* run) override {
    *run = request->run();
    return grpc::Status::OK;
  }
  grpc::Status Ingest(
      grpc::ServerContext*,
      grpc::ServerReaderWriter<surge::v1::IngestResponse, surge::v1::IngestRequest>* stream)
      override {
    surge::v1::IngestRequest batch;
    int64_t stored_on_stream = 0;
    while (stream->Read(&batch)) {
      std::lock_guard<std::mutex> lock(mu_);
      if (acked_ + batch.records_size() > fail_at_) {
        if (unavailable_) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "going away");
        const int64_t k = fail_at_ - acked_;
        refusal_ = absl::StrCat("batch seq ", batch.seq(), ": records[", k,
                                "].loss: must be finite, got nan");
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, refusal_);
      }
      acked_ += batch.records_size();
      stored_on_stream += batch.records_size();
      surge::v1::IngestResponse ack;
      ack.set_acked_seq(batch.seq());
      ack.set_records_stored(stored_on_stream);
      stream->Write(ack);
    }
    return grpc::Status::OK;
  }

  int64_t acked() {
    std::lock_guard<std::mutex> lock(mu_);
    return acked_;
  }
  std::string refusal() {
    std::lock_guard<std::mutex> lock(mu_);
    return refusal_;
  }

 private:
  const int64_t fail_at_;
  const bool unavailable_;
  std::mutex mu_;
  int64_t acked_ = 0;
  std::string refusal_;
};

struct FakeServer {
  explicit FakeServer(int64_t fail_at, bool unavailable = false) : service(fail_at, unavailable) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&service);
    server = builder.BuildAndStart();
  }
  ~FakeServer() { server->Shutdown(std::chrono::system_clock::now()); }
  std::string address() const { return absl::StrCat("127.0.0.1:", port); }

  FakeSurge service;
  int port = 0;
  std::unique_ptr<grpc::Server> server;
};

// The server refuses a row mid-stream: the message names the row's file
// line (not a batch and index) and exactly which rows are stored.
TEST(ImportMidStreamTest, RefusedRowNamesItsLineAndTheStoredRows) {
  testing::TempDir dir;
  // Lines 2-3001 hold rows 0-2999; row 2345 is on line 2347.
  const std::string csv = dir.File("mid.csv");
  std::ofstream(csv) << kHeader << Rows("r0", 0, 1500) << Rows("r1", 0, 1500);
  FakeServer fake(/*fail_at=*/2345);
  ASSERT_NE(fake.port, 0);
  auto result = testing::RunCommand({Cli(), "--server", fake.address(), "import", "--job", "mid",
                                     "--batch-records", "100", csv});
  EXPECT_EQ(result.exit_code, 1);
  const int64_t acked = fake.service.acked();
  ASSERT_GT(acked, 0);
  ASSERT_LE(acked, 2345);
  EXPECT_EQ(result.err,
            absl::StrCat("INVALID_ARGUMENT: ", csv, ":2347: the server refused this row: ",
                         fake.service.refusal(), " [stored: the ", acked, " rows before line ",
                         acked + 2, "; not stored: line ", acked + 2,
                         " and after; importing the file again skips stored rows]\n"));
}

// The server goes away mid-stream and never comes back: after the ingest
// timeout, the message says which rows are stored for sure.
TEST(ImportMidStreamTest, ServerGoneSaysWhatIsStored) {
  testing::TempDir dir;
  const std::string csv = dir.File("gone.csv");
  std::ofstream(csv) << kHeader << Rows("r0", 0, 1000);
  FakeServer fake(/*fail_at=*/500, /*unavailable=*/true);
  ASSERT_NE(fake.port, 0);
  auto result = testing::RunCommand({Cli(), "--server", fake.address(), "import", "--job", "gone",
                                     "--batch-records", "100", "--ingest-timeout", "3", csv});
  EXPECT_EQ(result.exit_code, 1);
  const int64_t acked = fake.service.acked();
  ASSERT_LE(acked, 500);
  EXPECT_EQ(result.err,
            absl::StrCat("DEADLINE_EXCEEDED: ", csv, ": the import stopped: ", 1000 - acked,
                         " records not acked by the server in time [stored: the ", acked,
                         " rows before line ", acked + 2, "; line ", acked + 2,
                         " and after: not confirmed by the server; importing the file again "
                         "skips stored rows]\n"));
}

}  // namespace
}  // namespace surge
