// End-to-end through the `surge` binary against a real surge-server child on
// 127.0.0.1 with an ephemeral port: import a CSV, read it back, and check the
// error output (CODE: message, exit 1) of each kind of mistake.
#include <cmath>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"

namespace surge {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

class CliE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = testing::ServerProcess::Start(dir_.File("cli.db"), dir_.path());
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::make_unique<testing::ServerProcess>(std::move(*server));
  }

  testing::CommandResult Surge(std::vector<std::string> args) {
    std::vector<std::string> argv = {SURGE_CLI_BIN, "--server", server_->address()};
    argv.insert(argv.end(), args.begin(), args.end());
    return testing::RunCommand(argv);
  }

  // A CSV in the canonical format with `runs` runs of `steps` rows each;
  // values are chosen so that the exported text equals the input.
  std::string WriteCsv(const std::string& name, int runs, int steps) {
    std::string text =
        "run,step,examples,batch_size,lr,loss,eval_loss,grad_sq_small,grad_sq_big,b_small,b_big\n";
    for (int r = 0; r < runs; ++r) {
      int batch = 8 << r;
      for (int s = 0; s < steps; ++s) {
        absl::StrAppend(&text, "r", r, ",", s, ",", (s + 1) * batch, ",", batch, ",0.001,",
                        2.5 - 0.001 * s, ",");
        if (s % 10 == 0) absl::StrAppend(&text, 2.75 - 0.001 * s);
        if (s % 2 == 0) {
          absl::StrAppend(&text, ",", 3.5 + s, ",", 1.25 + s, ",", batch / 2, ",", batch, "\n");
        } else {
          absl::StrAppend(&text, ",,,,\n");
        }
      }
    }
    std::string path = dir_.File(name);
    std::ofstream(path) << text;
    expected_[path] = text;
    return path;
  }

  testing::TempDir dir_;
  std::unique_ptr<testing::ServerProcess> server_;
  std::map<std::string, std::string> expected_;
};

TEST_F(CliE2eTest, ImportThenExportRoundTrips) {
  std::string csv = WriteCsv("sweep.csv", 3, 400);
  auto imported = Surge({"import", "--job", "e2e", csv});
  ASSERT_EQ(imported.exit_code, 0) << imported.err;
  EXPECT_THAT(imported.out, HasSubstr("imported 1200 rows into job 'e2e' (3 runs): 1200 new"));

  auto exported = Surge({"records", "e2e"});
  ASSERT_EQ(exported.exit_code, 0) << exported.err;
  EXPECT_EQ(exported.out, expected_[csv]);

  auto one_run = Surge({"records", "e2e", "--run", "r1", "--format", "json"});
  ASSERT_EQ(one_run.exit_code, 0) << one_run.err;
  std::vector<std::string> lines = absl::StrSplit(one_run.out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 400u);
  EXPECT_THAT(lines[0], HasSubstr("\"run\":\"r1\""));
  EXPECT_THAT(lines[0], HasSubstr("\"evalLoss\""));

  auto jobs = Surge({"jobs"});
  EXPECT_THAT(jobs.out, HasSubstr("e2e"));
  EXPECT_THAT(jobs.out, HasSubstr("1200"));
  auto jobs_json = Surge({"jobs", "--json"});
  EXPECT_THAT(jobs_json.out, HasSubstr("\"recordCount\": \"1200\""));
  auto runs = Surge({"runs", "e2e", "--json"});
  EXPECT_THAT(runs.out, HasSubstr("\"batchSize\": \"32\""));
  auto show = Surge({"job", "show", "e2e"});
  EXPECT_THAT(show.out, HasSubstr("records:"));

  // Importing again stores nothing new: (run, step) is unique.
  auto again = Surge({"import", "--job", "e2e", csv});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_THAT(again.out, HasSubstr("0 new, 1200 already stored"));
  EXPECT_EQ(Surge({"records", "e2e"}).out, expected_[csv]);
}

TEST_F(CliE2eTest, ErrorsPrintCodeAndMessage) {
  struct Case {
    std::string name;
    std::vector<std::string> args;
    std::string prefix;
    std::string contains;
  };
  std::string bad_number = dir_.File("bad_number.csv");
  std::ofstream(bad_number) << "run,step,examples,batch_size,lr,loss\nr,0,8,8,0.1,2\nr,1,16,8,abc,2\n";
  std::string no_header = dir_.File("no_header.csv");
  std::ofstream(no_header) << "run,step,examples,lr,loss\n";
  std::string nan_lr = dir_.File("nan_lr.csv");
  std::ofstream(nan_lr) << "run,step,examples,batch_size,lr,loss\nr,0,8,8,nan,2\n";
  std::string conflict = dir_.File("conflict.csv");
  std::ofstream(conflict) << "run,step,examples,batch_size,lr,loss\nr,0,8,8,0.1,2\nr,1,16,16,0.1,2\n";
  const Case cases[] = {
      {"missing job", {"job", "show", "nope"}, "NOT_FOUND: ", "job 'nope' not found"},
      {"bad job name", {"runs", "bad name"}, "INVALID_ARGUMENT: ", "job: only letters"},
      {"bad number", {"import", "--job", "x", bad_number}, "INVALID_ARGUMENT: ", ":3: column 'lr'"},
      {"missing column", {"import", "--job", "x", no_header}, "INVALID_ARGUMENT: ", "batch_size"},
      {"nan lr", {"import", "--job", "x", nan_lr}, "INVALID_ARGUMENT: ",
       ":2: column 'lr': must be finite and >= 0, got nan"},
      {"batch conflict", {"import", "--job", "x", conflict}, "INVALID_ARGUMENT: ", ":3: run 'r'"},
      {"missing file", {"import", "--job", "x", dir_.File("none.csv")}, "NOT_FOUND: ", "cannot open"},
      {"records of missing job", {"records", "nope"}, "NOT_FOUND: ", "nope"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    auto result = Surge(c.args);
    EXPECT_EQ(result.exit_code, 1);
    EXPECT_THAT(result.err, StartsWith(c.prefix));
    EXPECT_THAT(result.err, HasSubstr(c.contains));
  }
}

TEST_F(CliE2eTest, ImportsOptimaAndProbesThenFitsAndAdvises) {
  // Measured optima of a surge law with B_noise = 64, eps_max = 2e-3.
  std::string optima = dir_.File("optima.csv");
  {
    std::ofstream out(optima);
    out << "stage,stage_loss,batch_size,lr_opt,lr_opt_se\n";
    for (int b : {2, 8, 32, 128, 512, 2048}) {
      double lr = 2e-3 / std::cosh(std::log(b / 64.0) / 2);
      out << "1,0.8," << b << "," << lr << "," << 0.05 * lr << "\n";
    }
  }
  auto imported = Surge({"import", "--job", "old", optima});
  ASSERT_EQ(imported.exit_code, 0) << imported.err;
  EXPECT_THAT(imported.out, HasSubstr("imported 6 measured optima"));

  auto fit = Surge({"fit", "--job", "old"});
  ASSERT_EQ(fit.exit_code, 0) << fit.err;
  EXPECT_THAT(fit.out, HasSubstr("surge law: identified"));
  EXPECT_THAT(fit.out, HasSubstr("saturating_surge"));

  auto advice = Surge({"advise", "--job", "old", "--batch", "64", "--json"});
  ASSERT_EQ(advice.exit_code, 0) << advice.err;
  EXPECT_THAT(advice.out, HasSubstr("\"lr\": 0.00"));
  auto text = Surge({"advise", "--job", "old", "--batch", "64"});
  EXPECT_THAT(text.out, HasSubstr("B_noise"));
  EXPECT_THAT(text.out, Not(HasSubstr("favour a monotone model")));
  EXPECT_THAT(text.out, HasSubstr("(prediction interval; curve alone ["));
  EXPECT_THAT(fit.out, HasSubstr("LAW WEIGHT"));
  EXPECT_THAT(fit.out, HasSubstr("smooth"));

  // Optima on a rising power law: verdict no, and B_noise is marked as the
  // surge-law fit's only.
  std::string mono = dir_.File("mono.csv");
  {
    std::ofstream out(mono);
    out << "stage,stage_loss,batch_size,lr_opt,lr_opt_se\n";
    for (int b : {2, 8, 32, 128, 512, 2048}) {
      double lr = 1e-4 * std::pow(b, 0.3);
      out << "1,0.8," << b << "," << lr << "," << 0.05 * lr << "\n";
    }
  }
  ASSERT_EQ(Surge({"import", "--job", "mono", mono}).exit_code, 0);
  auto mono_text = Surge({"advise", "--job", "mono", "--batch", "64"});
  ASSERT_EQ(mono_text.exit_code, 0) << mono_text.err;
  EXPECT_THAT(mono_text.out, HasSubstr("supported by the data: no"));
  EXPECT_THAT(mono_text.out, HasSubstr("(of the surge-law fit; the data favour a monotone model)"));
  auto with_step = Surge({"advise", "--job", "old", "--batch", "64", "--step", "10"});
  EXPECT_EQ(with_step.exit_code, 1);
  EXPECT_THAT(with_step.err, StartsWith("FAILED_PRECONDITION: "));

  // Raw probe results become probe runs with their parent stage.
  std::string probes = dir_.File("probes.csv");
  std::ofstream(probes) << "stage,stage_loss,batch_size,lr,seed,improvement\n"
                        << "100,1.5,8,0.001,0,0.02\n100,1.5,8,0.01,0,0.03\n"
                        << "100,1.5,16,0.001,1,0.01\n";
  auto probe_import = Surge({"import", "--job", "probed", probes});
  ASSERT_EQ(probe_import.exit_code, 0) << probe_import.err;
  EXPECT_THAT(probe_import.out, HasSubstr("imported 3 probe results"));
  auto runs = Surge({"runs", "probed"});
  EXPECT_THAT(runs.out, HasSubstr("probe"));
  EXPECT_THAT(runs.out, HasSubstr("step 100 loss 1.5"));
  auto no_fit = Surge({"advise", "--job", "probed", "--batch", "8"});
  EXPECT_EQ(no_fit.exit_code, 1);
  EXPECT_THAT(no_fit.err, StartsWith("FAILED_PRECONDITION: "));
}

TEST_F(CliE2eTest, UnreachableServerIsUnavailable) {
  auto result = testing::RunCommand(
      {SURGE_CLI_BIN, "--server", "127.0.0.1:1", "--timeout", "2", "jobs"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.err, StartsWith("UNAVAILABLE: "));
  EXPECT_THAT(result.err, HasSubstr("SURGE_SERVER"));
}

TEST_F(CliE2eTest, HelpListsCommands) {
  auto result = testing::RunCommand({SURGE_CLI_BIN, "--help"});
  EXPECT_EQ(result.exit_code, 0);
  for (const char* command : {"jobs", "job", "runs", "records", "import"}) {
    EXPECT_THAT(result.out, HasSubstr(command));
  }
  auto import_help = testing::RunCommand({SURGE_CLI_BIN, "import", "--help"});
  EXPECT_THAT(import_help.out, HasSubstr("--job"));
}

}  // namespace
}  // namespace surge
