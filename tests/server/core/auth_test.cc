// Unit tests of tokens, roles and tenant limits (server/core/auth.h,
// tenant_limits.h): the token file's format and its errors, hashing, role
// checks, the Authenticator's header handling and reload, and each
// per-tenant limit on its own clock.
#include "server/core/auth.h"

#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/core/tenant_limits.h"
#include "tests/support/temp_dir.h"

namespace surge::core {
namespace {

using ::testing::HasSubstr;

// SHA-256 of "abc" (FIPS 180-2, appendix B.1).
constexpr char kAbcHash[] = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

TEST(AuthTest, Sha256MatchesTheStandardVector) { EXPECT_EQ(Sha256Hex("abc"), kAbcHash); }

TEST(AuthTest, TokenFileMapsHashesToTenantAndRole) {
  absl::StatusOr<TokenTable> table = TokenTable::Parse(
      std::string("# comment\n\n  team-a\twriter  sha256:") + kAbcHash + "  \n");
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ(table->size(), 1u);
  absl::StatusOr<Caller> caller = table->Lookup("abc");
  ASSERT_TRUE(caller.ok());
  EXPECT_EQ(caller->tenant, "team-a");
  EXPECT_EQ(caller->role, Role::kWriter);
  EXPECT_EQ(table->Lookup("abd").status().code(), absl::StatusCode::kUnauthenticated);
  // The hash itself is not a token.
  EXPECT_FALSE(table->Lookup(kAbcHash).ok());
}

TEST(AuthTest, TokenFileErrorsNameTheLine) {
  const std::string hash = std::string("sha256:") + kAbcHash;
  struct Case {
    std::string text, message;
  } cases[] = {
      {"team-a writer\n", "line 1: has 2 fields, not 3"},
      {"# x\nteam-a boss " + hash + "\n", "line 2: unknown role 'boss'"},
      {"team a writer " + hash + "\n", "line 1: has 4 fields"},
      {"team/a writer " + hash + "\n", "line 1: tenant 'team/a' must be"},
      {"team-a writer " + std::string(kAbcHash) + "\n", "line 1: the hash must be sha256:"},
      {"team-a writer sha256:ABC\n", "line 1: the hash must be sha256:"},
      {"team-a writer surge_plaintexttoken\n", "not a token"},
      {"a writer " + hash + "\nb reader " + hash + "\n", "line 2: repeats the hash"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<TokenTable> table = TokenTable::Parse(c.text);
    EXPECT_EQ(table.status().code(), absl::StatusCode::kInvalidArgument) << c.text;
    EXPECT_THAT(std::string(table.status().message()), HasSubstr(c.message)) << c.text;
  }
}

TEST(AuthTest, RolesAllowTheirPermissionsAndNoMore) {
  for (Role role : {Role::kReader, Role::kWriter, Role::kAdmin}) {
    Caller caller{"t", role};
    EXPECT_TRUE(CheckRole(caller, Permission::kRead).ok());
    EXPECT_EQ(CheckRole(caller, Permission::kWrite).ok(), role != Role::kReader);
    EXPECT_EQ(CheckRole(caller, Permission::kDelete).ok(), role == Role::kAdmin);
  }
  absl::Status denied = CheckRole(Caller{"t", Role::kWriter}, Permission::kDelete);
  EXPECT_EQ(denied.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(denied.message()),
              HasSubstr("role 'writer' of tenant 't' may not delete jobs or runs; that needs a "
                        "token with role 'admin'"));
}

TEST(AuthTest, AuthenticatorReadsBearerHeadersAndReloads) {
  Authenticator none;
  ASSERT_TRUE(none.Reload().ok());
  absl::StatusOr<Caller> local = none.Authenticate("");
  ASSERT_TRUE(local.ok());
  EXPECT_EQ(local->tenant, kDefaultTenant);
  EXPECT_EQ(local->role, Role::kAdmin);

  testing::TempDir dir;
  const std::string path = dir.File("tokens");
  std::ofstream(path) << "team-a reader sha256:" << kAbcHash << "\n";
  Authenticator auth(path);
  ASSERT_TRUE(auth.Reload().ok());
  EXPECT_TRUE(auth.Authenticate("Bearer abc").ok());
  EXPECT_TRUE(auth.Authenticate("bearer abc ").ok());
  EXPECT_THAT(std::string(auth.Authenticate("").status().message()), HasSubstr("needs a token"));
  EXPECT_THAT(std::string(auth.Authenticate("Basic abc").status().message()),
              HasSubstr("must be 'Bearer <token>'"));
  EXPECT_EQ(auth.Authenticate("Bearer abd").status().code(), absl::StatusCode::kUnauthenticated);

  // Rotation: the new file replaces the old tokens; a bad file keeps them.
  std::ofstream(path, std::ios::trunc) << "team-a admin sha256:" << Sha256Hex("new") << "\n";
  ASSERT_TRUE(auth.Reload().ok());
  EXPECT_FALSE(auth.Authenticate("Bearer abc").ok());
  EXPECT_EQ(auth.Authenticate("Bearer new")->role, Role::kAdmin);
  std::ofstream(path, std::ios::trunc) << "garbage\n";
  EXPECT_FALSE(auth.Reload().ok());
  EXPECT_TRUE(auth.Authenticate("Bearer new").ok());
}

TEST(TenantLimitsTest, StreamsAreCountedPerTenant) {
  TenantLimits limits({/*max_streams=*/2, 0, 0});
  EXPECT_TRUE(limits.OpenStream("a").ok());
  EXPECT_TRUE(limits.OpenStream("a").ok());
  absl::Status third = limits.OpenStream("a");
  EXPECT_EQ(third.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(third.message()), HasSubstr("its limit (2)"));
  EXPECT_TRUE(limits.OpenStream("b").ok());
  limits.CloseStream("a");
  EXPECT_TRUE(limits.OpenStream("a").ok());
}

TEST(TenantLimitsTest, RecordsPerSecondIsATokenBucketOfOneSecond) {
  TenantLimits limits({0, /*max_records_per_s=*/100, 0});
  absl::Time t = absl::FromUnixSeconds(1000);
  // A full bucket: 100 records pass; a batch may overdraw it once.
  EXPECT_TRUE(limits.AdmitBatch("a", 60, 0, t).ok());
  EXPECT_TRUE(limits.AdmitBatch("a", 60, 0, t).ok());  // bucket now -20
  absl::Status over = limits.AdmitBatch("a", 1, 0, t);
  EXPECT_EQ(over.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(over.message()), HasSubstr("over its limit of 100 records per second"));
  EXPECT_TRUE(limits.AdmitBatch("b", 100, 0, t).ok()) << "tenants have their own buckets";
  // 0.2 s later the bucket is back at 0: still nothing; at 0.3 s (+10) one
  // batch passes and overdraws it again.
  EXPECT_FALSE(limits.AdmitBatch("a", 1, 0, t + absl::Milliseconds(200)).ok());
  EXPECT_TRUE(limits.AdmitBatch("a", 50, 0, t + absl::Milliseconds(300)).ok());
  EXPECT_FALSE(limits.AdmitBatch("a", 1, 0, t + absl::Milliseconds(400)).ok());
  // Refills cap at one second's worth.
  EXPECT_TRUE(limits.AdmitBatch("a", 100, 0, t + absl::Seconds(100)).ok());
  EXPECT_FALSE(limits.AdmitBatch("a", 1, 0, t + absl::Seconds(100)).ok());
}

TEST(TenantLimitsTest, QueuedBytesAreReleasedByCommits) {
  TenantLimits limits({0, 0, /*max_queued_bytes=*/1000});
  absl::Time t = absl::Now();
  EXPECT_TRUE(limits.AdmitBatch("a", 1, 600, t).ok());
  absl::Status over = limits.AdmitBatch("a", 1, 600, t);
  EXPECT_EQ(over.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(over.message()), HasSubstr("600 bytes waiting for commit"));
  EXPECT_TRUE(limits.AdmitBatch("b", 1, 600, t).ok());
  limits.ReleaseBytes("a", 600);
  EXPECT_TRUE(limits.AdmitBatch("a", 1, 600, t).ok());
  // A batch larger than the whole limit passes alone (never stuck forever).
  limits.ReleaseBytes("a", 600);
  EXPECT_TRUE(limits.AdmitBatch("a", 1, 5000, t).ok());
}

}  // namespace
}  // namespace surge::core
