// Unit tests of DbLock: one holder per database file (also within one
// process, and through a symlink), the holder's pid in the error, release on
// destruction, a lock file left behind that does not block, ":memory:".
#include "server/store/db_lock.h"

#include <unistd.h>

#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"

namespace surge::store {
namespace {

using ::testing::HasSubstr;

TEST(DbLockTest, SecondLockOnTheSameDatabaseFailsNamingTheHolder) {
  surge::testing::TempDir dir;
  const std::string db = dir.File("a.db");
  absl::StatusOr<std::unique_ptr<DbLock>> first = DbLock::Acquire(db);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ((*first)->lock_path(), db + ".lock");
  EXPECT_EQ(surge::testing::ReadFile(db + ".lock"), absl::StrCat(getpid(), "\n"));

  absl::StatusOr<std::unique_ptr<DbLock>> second = DbLock::Acquire(db);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(second.status().message(),
              HasSubstr(absl::StrCat("database ", db, " is in use by another server (pid ",
                                     getpid(), ", holding the lock file ", db, ".lock")));

  // Another name of the same file: the same lock.
  const std::string link = dir.File("link.db");
  ASSERT_EQ(symlink(db.c_str(), link.c_str()), 0);
  std::ofstream(db).put('\0');  // the database exists, so the link resolves
  EXPECT_EQ(DbLock::Acquire(link).status().code(), absl::StatusCode::kFailedPrecondition);

  // Released with its owner; the lock file left behind does not block.
  first->reset();
  absl::StatusOr<std::unique_ptr<DbLock>> again = DbLock::Acquire(link);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ((*again)->lock_path(), db + ".lock");
}

TEST(DbLockTest, OtherDatabasesAndMemoryAreIndependent) {
  surge::testing::TempDir dir;
  auto a = DbLock::Acquire(dir.File("a.db"));
  auto b = DbLock::Acquire(dir.File("b.db"));
  EXPECT_TRUE(a.ok()) << a.status();
  EXPECT_TRUE(b.ok()) << b.status();
  auto m1 = DbLock::Acquire(":memory:");
  auto m2 = DbLock::Acquire(":memory:");
  EXPECT_TRUE(m1.ok() && m2.ok());
  EXPECT_EQ((*m1)->lock_path(), "");
}

TEST(DbLockTest, MissingFolderIsUnavailableNamingTheLockFile) {
  surge::testing::TempDir dir;
  auto lock = DbLock::Acquire(dir.File("missing/a.db"));
  EXPECT_EQ(lock.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(lock.status().message(), HasSubstr("missing/a.db.lock"));
}

}  // namespace
}  // namespace surge::store
