// TLS and mutual TLS (issue 11, security) on a real surge-server: gRPC (the
// C++ client and the CLI) and HTTPS (cpp-httplib's SSL client), with
// certificates made at test time by Debian's openssl: a CA, a server
// certificate for 127.0.0.1/localhost, a client certificate, and a second,
// unrelated CA with its own client certificate that must be refused.
#include <httplib.h>
#include <signal.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/cpp/surge_client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/server_child.h"
#include "tests/support/temp_dir.h"

namespace surge {
namespace {

using ::testing::HasSubstr;

// Runs openssl with `args`; fails the test on a nonzero exit.
void OpenSsl(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"/usr/bin/openssl"};
  argv.insert(argv.end(), args.begin(), args.end());
  testing::CommandResult r = testing::RunCommand(argv);
  ASSERT_EQ(r.exit_code, 0) << absl::StrJoin(argv, " ") << "\n" << r.err;
}

// A CA (NAME-ca.pem/.key) and, signed by it, a certificate NAME-LEAF.pem/.key
// for each leaf with its subjectAltName.
class Pki {
 public:
  explicit Pki(const testing::TempDir& dir) : dir_(dir) {}
  std::string File(const std::string& name) const { return dir_.File(name); }

  void MakeCa(const std::string& ca) {
    OpenSsl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", File(ca + "-ca.key"), "-out", File(ca + "-ca.pem"), "-days", "2",
             "-subj", "/CN=" + ca + " test CA"});
  }
  void MakeLeaf(const std::string& ca, const std::string& leaf, const std::string& san) {
    const std::string base = File(ca + "-" + leaf);
    OpenSsl({"req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", base + ".key", "-out", base + ".csr", "-subj", "/CN=" + leaf});
    testing::CommandResult ext = testing::RunCommand(
        {"/bin/sh", "-c", absl::StrCat("printf 'subjectAltName=", san, "\\n' > ", base, ".ext")});
    ASSERT_EQ(ext.exit_code, 0);
    OpenSsl({"x509", "-req", "-in", base + ".csr", "-CA", File(ca + "-ca.pem"), "-CAkey",
             File(ca + "-ca.key"), "-CAcreateserial", "-out", base + ".pem", "-days", "2",
             "-extfile", base + ".ext"});
  }

 private:
  const testing::TempDir& dir_;
};

class TlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // This process's own TLS clients write into connections the server refuses.
    signal(SIGPIPE, SIG_IGN);
  }
  void SetUp() override {
    Pki pki(dir_);
    ASSERT_NO_FATAL_FAILURE(pki.MakeCa("good"));
    ASSERT_NO_FATAL_FAILURE(pki.MakeLeaf("good", "server", "IP:127.0.0.1,DNS:localhost"));
    ASSERT_NO_FATAL_FAILURE(pki.MakeLeaf("good", "client", "DNS:client"));
    ASSERT_NO_FATAL_FAILURE(pki.MakeCa("rogue"));
    ASSERT_NO_FATAL_FAILURE(pki.MakeLeaf("rogue", "client", "DNS:client"));
    ASSERT_NO_FATAL_FAILURE(pki.MakeLeaf("rogue", "server", "IP:127.0.0.1,DNS:localhost"));
  }
  void TearDown() override {
    if (server_) {
      server_->process.Kill(SIGTERM);
      server_->process.Wait();
    }
  }

  void Start(bool mutual) {
    std::vector<std::string> args = {"--listen=127.0.0.1:0", "--http=127.0.0.1:0",
                                     "--db=" + dir_.File("surge.db"),
                                     "--tls_cert=" + dir_.File("good-server.pem"),
                                     "--tls_key=" + dir_.File("good-server.key")};
    if (mutual) args.push_back("--tls_client_ca=" + dir_.File("good-ca.pem"));
    auto server = testing::StartServer(dir_, "server", args);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::make_unique<testing::Server>(std::move(*server));
  }

  // ListJobs through a client with these TLS files ("" for none).
  absl::Status ListJobs(const std::string& ca, const std::string& cert = "",
                        const std::string& key = "") {
    client::ClientOptions options;
    options.target = server_->address();
    options.call_timeout = absl::Seconds(5);
    options.tls_ca_file = ca.empty() ? "" : dir_.File(ca);
    options.tls_cert_file = cert.empty() ? "" : dir_.File(cert);
    options.tls_key_file = key.empty() ? "" : dir_.File(key);
    return client::SurgeClient(options).ListJobs().status();
  }

  // GET over HTTPS verifying the server against `ca`, with an optional
  // client certificate; the HTTP status, or -1 when no response came.
  int HttpsGet(const std::string& path, const std::string& ca, const std::string& cert = "",
               const std::string& key = "") {
    httplib::SSLClient https("127.0.0.1", server_->http_port,
                             cert.empty() ? "" : dir_.File(cert), key.empty() ? "" : dir_.File(key));
    https.set_ca_cert_path(dir_.File(ca).c_str());
    https.enable_server_certificate_verification(true);
    https.set_connection_timeout(5, 0);
    https.set_read_timeout(5, 0);
    httplib::Result res = https.Get(path.c_str());
    return res ? res->status : -1;
  }

  testing::TempDir dir_;
  std::unique_ptr<testing::Server> server_;
};

TEST_F(TlsTest, ServesGrpcAndHttpsToClientsThatTrustItsCa) {
  ASSERT_NO_FATAL_FAILURE(Start(/*mutual=*/false));
  client::ClientOptions options;
  options.target = server_->address();
  options.tls_ca_file = dir_.File("good-ca.pem");
  auto created = client::SurgeClient(options).CreateJob([] {
    surge::v1::Job job;
    job.set_name("over-tls");
    job.set_batch_unit(surge::v1::BATCH_UNIT_EXAMPLES);
    return job;
  }());
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_TRUE(ListJobs("good-ca.pem").ok());
  // Plaintext, or a client that trusts another CA, gets nowhere.
  EXPECT_EQ(ListJobs("").code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(ListJobs("rogue-ca.pem").code(), absl::StatusCode::kUnavailable);

  EXPECT_EQ(HttpsGet("/healthz", "good-ca.pem"), 200);
  EXPECT_EQ(HttpsGet("/api/v1/jobs", "good-ca.pem"), 200);
  EXPECT_EQ(HttpsGet("/api/v1/jobs", "rogue-ca.pem"), -1);
  httplib::Client plain("127.0.0.1", server_->http_port);
  plain.set_read_timeout(5, 0);
  EXPECT_FALSE(plain.Get("/healthz")) << "plain HTTP was answered on the TLS port";

  testing::CommandResult cli = testing::RunCommand(
      {SURGE_CLI_BIN, "--server", server_->address(), "--tls_ca", dir_.File("good-ca.pem"),
       "jobs"});
  EXPECT_EQ(cli.exit_code, 0) << cli.err;
  EXPECT_THAT(cli.out, HasSubstr("over-tls"));
}

TEST_F(TlsTest, MutualTlsRefusesClientsWithoutACertificateFromItsCa) {
  ASSERT_NO_FATAL_FAILURE(Start(/*mutual=*/true));
  EXPECT_TRUE(ListJobs("good-ca.pem", "good-client.pem", "good-client.key").ok());
  EXPECT_EQ(ListJobs("good-ca.pem").code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(ListJobs("good-ca.pem", "rogue-client.pem", "rogue-client.key").code(),
            absl::StatusCode::kUnavailable);

  EXPECT_EQ(HttpsGet("/api/v1/jobs", "good-ca.pem", "good-client.pem", "good-client.key"), 200);
  EXPECT_EQ(HttpsGet("/healthz", "good-ca.pem"), -1);
  EXPECT_EQ(HttpsGet("/healthz", "good-ca.pem", "rogue-client.pem", "rogue-client.key"), -1);

  testing::CommandResult cli = testing::RunCommand(
      {SURGE_CLI_BIN, "--server", server_->address(), "--tls_ca", dir_.File("good-ca.pem"),
       "--tls_cert", dir_.File("good-client.pem"), "--tls_key", dir_.File("good-client.key"),
       "jobs"});
  EXPECT_EQ(cli.exit_code, 0) << cli.err;
}

TEST_F(TlsTest, BadTlsFlagsStopTheServerAtStart) {
  testing::Refusal half = testing::RunRefused(
      dir_, "half", {"--listen=127.0.0.1:0", "--http=", "--db=" + dir_.File("a.db"),
                     "--tls_cert=" + dir_.File("good-server.pem")});
  testing::ExpectRefused(half, "needs --tls_cert and --tls_key together");
  EXPECT_EQ(half.exit_code, 2);
  // A key that is not the certificate's.
  testing::Refusal mismatch = testing::RunRefused(
      dir_, "mismatch", {"--listen=127.0.0.1:0", "--http=127.0.0.1:0", "--db=" + dir_.File("b.db"),
                         "--tls_cert=" + dir_.File("good-server.pem"),
                         "--tls_key=" + dir_.File("rogue-server.key")});
  EXPECT_FALSE(mismatch.started) << mismatch.output;
  EXPECT_GT(mismatch.exit_code, 0) << mismatch.output;
}

}  // namespace
}  // namespace surge
