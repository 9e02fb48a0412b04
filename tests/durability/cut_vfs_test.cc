// Tests of CutVfs: what a cut leaves of synced and unsynced writes,
// truncates and new files, the armed trigger, and plain SQLite under cuts
// (every committed transaction survives with synchronous=FULL in the
// rollback-journal modes and in WAL; WAL with synchronous=NORMAL loses some,
// which shows the VFS drops what a real power cut would).
#include "tests/durability/cut_vfs.h"

#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/support/temp_dir.h"

namespace surge::testing {
namespace {

constexpr int64_t kBlock = CutVfs::kBlock;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

bool Exists(const std::string& path) { return access(path.c_str(), F_OK) == 0; }

// One file opened through the VFS's own entry points, as SQLite would.
class VfsFile {
 public:
  VfsFile(const std::string& path, int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                                               SQLITE_OPEN_MAIN_DB)
      : vfs_(sqlite3_vfs_find(CutVfs::kName)),
        buffer_(static_cast<size_t>(vfs_->szOsFile)),
        file_(reinterpret_cast<sqlite3_file*>(buffer_.data())),
        path_(path) {
    int out = 0;
    rc_ = vfs_->xOpen(vfs_, path_.c_str(), file_, flags, &out);
  }
  ~VfsFile() { Close(); }
  int open_rc() const { return rc_; }
  // In pieces of at most 64 KiB, as SQLite writes (unix takes < 128 KiB).
  int Write(const std::string& bytes, int64_t offset) {
    for (size_t done = 0; done < bytes.size();) {
      const size_t n = std::min<size_t>(bytes.size() - done, 1 << 16);
      int rc = file_->pMethods->xWrite(file_, bytes.data() + done, static_cast<int>(n),
                                       offset + static_cast<int64_t>(done));
      if (rc != SQLITE_OK) return rc;
      done += n;
    }
    return SQLITE_OK;
  }
  int Sync() { return file_->pMethods->xSync(file_, SQLITE_SYNC_NORMAL); }
  int Truncate(int64_t size) { return file_->pMethods->xTruncate(file_, size); }
  void Close() {
    if (rc_ == SQLITE_OK && file_->pMethods != nullptr) file_->pMethods->xClose(file_);
    rc_ = SQLITE_CANTOPEN;
  }

 private:
  sqlite3_vfs* vfs_;
  std::vector<char> buffer_;  // szOsFile bytes, as SQLite allocates them
  sqlite3_file* file_;
  std::string path_;
  int rc_;
};

class CutVfsTest : public ::testing::Test {
 protected:
  void SetUp() override { vfs_ = &CutVfs::Install(/*make_default=*/false); }
  CutReport Cut(CutMode mode = CutMode::kDropUnsynced) {
    vfs_->Freeze();
    absl::StatusOr<CutReport> report = vfs_->RestoreAfterCut(mode, rng_);
    EXPECT_TRUE(report.ok()) << report.status();
    return report.ok() ? *report : CutReport{};
  }

  CutVfs* vfs_ = nullptr;
  std::mt19937_64 rng_{7};
  TempDir dir_;
};

TEST_F(CutVfsTest, UnsyncedWritesAreDroppedAndSyncedOnesKept) {
  const std::string path = dir_.File("a.db");
  const std::string synced(2 * kBlock + 100, 'a');
  {
    VfsFile f(path);
    ASSERT_EQ(f.open_rc(), SQLITE_OK);
    ASSERT_EQ(f.Write(synced, 0), SQLITE_OK);
    ASSERT_EQ(f.Sync(), SQLITE_OK);
    ASSERT_EQ(f.Write(std::string(50, 'b'), kBlock + 10), SQLITE_OK);  // overwrite
    ASSERT_EQ(f.Write(std::string(kBlock, 'c'), 2 * kBlock + 100), SQLITE_OK);  // growth
    vfs_->Freeze();
    EXPECT_EQ(f.Write("x", 0), SQLITE_IOERR_WRITE) << "writes after the cut must fail";
    EXPECT_EQ(f.Sync(), SQLITE_IOERR_FSYNC);
    std::mt19937_64 rng(1);
    EXPECT_FALSE(vfs_->RestoreAfterCut(CutMode::kDropUnsynced, rng).ok())
        << "a file still open must block the restore";
  }
  absl::StatusOr<CutReport> report = vfs_->RestoreAfterCut(CutMode::kDropUnsynced, rng_);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->files_with_unsynced, 1);
  EXPECT_EQ(report->blocks_reverted, 2) << "block 1 (overwritten) and block 2 (grown)";
  EXPECT_EQ(report->bytes_cut, kBlock);
  EXPECT_EQ(ReadAll(path), synced);
  EXPECT_FALSE(vfs_->frozen());
}

TEST_F(CutVfsTest, TruncateBeforeSyncIsUndone) {
  const std::string path = dir_.File("t.db");
  std::string synced(3 * kBlock, 'a');
  for (size_t i = 0; i < synced.size(); ++i) synced[i] = static_cast<char>('a' + i % 26);
  {
    VfsFile f(path);
    ASSERT_EQ(f.open_rc(), SQLITE_OK);
    ASSERT_EQ(f.Write(synced, 0), SQLITE_OK);
    ASSERT_EQ(f.Sync(), SQLITE_OK);
    ASSERT_EQ(f.Truncate(kBlock / 2), SQLITE_OK);
    ASSERT_EQ(f.Write(std::string(kBlock, 'z'), kBlock / 2), SQLITE_OK);
  }
  Cut();
  EXPECT_EQ(ReadAll(path), synced);

  {
    VfsFile f(path);
    ASSERT_EQ(f.Truncate(kBlock), SQLITE_OK);
    ASSERT_EQ(f.Sync(), SQLITE_OK);
  }
  Cut();
  EXPECT_EQ(ReadAll(path), synced.substr(0, kBlock)) << "a synced truncate stays";
}

TEST_F(CutVfsTest, NewFileVanishesUntilSynced) {
  // unix opens a WAL only beside its database (it copies the database's mode).
  std::ofstream(dir_.File("new"));
  std::ofstream(dir_.File("synced"));
  const std::string lost = dir_.File("new-wal"), kept = dir_.File("synced-wal");
  const int wal = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_WAL;
  {
    VfsFile a(lost, wal), b(kept, wal);
    ASSERT_EQ(a.open_rc(), SQLITE_OK);
    ASSERT_EQ(b.open_rc(), SQLITE_OK);
    ASSERT_EQ(a.Write("unsynced", 0), SQLITE_OK);
    ASSERT_EQ(b.Write("synced", 0), SQLITE_OK);
    ASSERT_EQ(b.Sync(), SQLITE_OK);
    ASSERT_EQ(b.Write(" and more", 6), SQLITE_OK);
  }
  CutReport report = Cut();
  EXPECT_EQ(report.files_removed, 1);
  EXPECT_TRUE(report.wal_unsynced);
  EXPECT_FALSE(Exists(lost));
  EXPECT_EQ(ReadAll(kept), "synced");
}

TEST_F(CutVfsTest, ArmedCutFiresBeforeTheNthMutation) {
  const std::string path = dir_.File("armed.db");
  VfsFile f(path);
  ASSERT_EQ(f.open_rc(), SQLITE_OK);
  vfs_->ArmCut(3);
  EXPECT_EQ(f.Write("1", 0), SQLITE_OK);
  EXPECT_EQ(f.Sync(), SQLITE_OK);
  EXPECT_FALSE(vfs_->frozen());
  EXPECT_EQ(f.Write("2", 1), SQLITE_IOERR_WRITE) << "the third mutation is refused";
  EXPECT_TRUE(vfs_->WaitFrozen(absl::ZeroDuration()));
  f.Close();
  Cut();
  EXPECT_EQ(ReadAll(path), "1");
}

TEST_F(CutVfsTest, TornCutKeepsEachBlockOldOrNew) {
  const std::string path = dir_.File("torn.db");
  const int64_t blocks = 64;
  int saw_old = 0, saw_new = 0;
  for (int round = 0; round < 8; ++round) {
    {
      VfsFile f(path);
      ASSERT_EQ(f.open_rc(), SQLITE_OK);
      ASSERT_EQ(f.Truncate(0), SQLITE_OK);
      ASSERT_EQ(f.Write(std::string(blocks * kBlock, 'o'), 0), SQLITE_OK);
      ASSERT_EQ(f.Sync(), SQLITE_OK);
      ASSERT_EQ(f.Write(std::string(2 * blocks * kBlock, 'n'), 0), SQLITE_OK);
    }
    Cut(CutMode::kTearUnsynced);
    const std::string got = ReadAll(path);
    ASSERT_GE(static_cast<int64_t>(got.size()), blocks * kBlock);
    ASSERT_LE(static_cast<int64_t>(got.size()), 2 * blocks * kBlock);
    for (size_t b = 0; b * kBlock < got.size(); ++b) {
      const std::string block = got.substr(b * kBlock, kBlock);
      const char first = block[0];
      ASSERT_EQ(block, std::string(block.size(), first)) << "block " << b << " is mixed";
      if (static_cast<int64_t>(b) < blocks) {
        ASSERT_TRUE(first == 'o' || first == 'n') << "block " << b;
        (first == 'o' ? saw_old : saw_new)++;
      } else {
        ASSERT_TRUE(first == 'n' || first == '\0') << "grown block " << b;
      }
    }
  }
  EXPECT_GT(saw_old, 0);
  EXPECT_GT(saw_new, 0);
}

// Plain SQLite under cuts: one row per transaction, `cycles` cuts at a random
// write or sync, alternately dropping and tearing the unsynced writes.
struct SqliteCutResult {
  int64_t committed = 0;
  int64_t lost = 0;           // committed rows missing after a cut, summed over cuts
  int damaged = 0;            // reopens whose integrity_check was not "ok"
};

void Exec(sqlite3* db, const std::string& sql) {
  char* err = nullptr;
  ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err), SQLITE_OK)
      << sql << ": " << (err ? err : "");
}

int64_t QueryInt(sqlite3* db, const std::string& sql) {
  sqlite3_stmt* stmt = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr), SQLITE_OK) << sql;
  int64_t value = -1;
  if (stmt != nullptr && sqlite3_step(stmt) == SQLITE_ROW) value = sqlite3_column_int64(stmt, 0);
  sqlite3_finalize(stmt);
  return value;
}

std::string IntegrityCheck(sqlite3* db) {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &stmt, nullptr) != SQLITE_OK) {
    return sqlite3_errmsg(db);
  }
  std::string out;
  int rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    out += absl::StrCat(out.empty() ? "" : "; ",
                        reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0)));
  }
  if (rc != SQLITE_DONE) out += absl::StrCat(" (", sqlite3_errmsg(db), ")");
  sqlite3_finalize(stmt);
  return out;
}

SqliteCutResult RunSqliteCuts(CutVfs& vfs, const std::string& path, const std::string& pragmas,
                              int cycles, uint64_t seed) {
  SqliteCutResult result;
  std::mt19937_64 rng(seed);
  int64_t durable = 0;  // rows 1..durable were committed (and found after the last cut)
  // The database and its table exist before the first cut (SQLite does not
  // fsync the folder of a new main database file: setup is taken as durable).
  auto set_up = [&] {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                              CutVfs::kName),
              SQLITE_OK);
    Exec(db, pragmas);
    Exec(db, "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v BLOB)");
    sqlite3_close_v2(db);
    vfs.ForgetUnsynced();
  };
  set_up();
  for (int cycle = 0; cycle < cycles; ++cycle) {
    SCOPED_TRACE(absl::StrCat(pragmas, " cycle ", cycle));
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                              CutVfs::kName),
              SQLITE_OK);
    Exec(db, pragmas);
    Exec(db, "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v BLOB)");
    int64_t next = QueryInt(db, "SELECT COALESCE(MAX(id), 0) FROM t") + 1;
    vfs.ArmCut(1 + static_cast<int64_t>(rng() % 300));
    int64_t committed = durable;
    for (int i = 0; i < 1000 && !vfs.frozen(); ++i, ++next) {
      const std::string insert =
          absl::StrCat("INSERT INTO t VALUES (", next, ", randomblob(", 500 + rng() % 3000, "))");
      if (sqlite3_exec(db, insert.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK) break;
      committed = next;  // sqlite3_exec returned: the transaction committed
      result.committed++;
    }
    vfs.Freeze();
    sqlite3_close_v2(db);
    absl::StatusOr<CutReport> report = vfs.RestoreAfterCut(
        cycle % 2 == 0 ? CutMode::kDropUnsynced : CutMode::kTearUnsynced, rng);
    EXPECT_TRUE(report.ok()) << report.status();

    EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, "unix"), SQLITE_OK);
    sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
    if (IntegrityCheck(db) != "ok") {
      ++result.damaged;
      sqlite3_close_v2(db);
      unlink(path.c_str());  // start over on a fresh file
      unlink((path + "-wal").c_str());
      unlink((path + "-journal").c_str());
      durable = 0;
      set_up();
      continue;
    }
    const int64_t present =
        QueryInt(db, absl::StrCat("SELECT COUNT(*) FROM t WHERE id <= ", committed));
    result.lost += committed - present;
    durable = QueryInt(db, "SELECT COALESCE(MAX(id), 0) FROM t");
    sqlite3_close_v2(db);
  }
  return result;
}

TEST_F(CutVfsTest, PlainSqliteKeepsEveryCommitWithSynchronousFull) {
  for (const char* mode : {"DELETE", "TRUNCATE", "PERSIST", "WAL"}) {
    const std::string path = dir_.File(absl::StrCat("plain-", mode, ".db"));
    SqliteCutResult r = RunSqliteCuts(
        *vfs_, path, absl::StrCat("PRAGMA journal_mode=", mode, "; PRAGMA synchronous=FULL;"),
        30, 11);
    std::cout << "journal_mode=" << mode << " synchronous=FULL: " << r.committed
              << " transactions committed over 30 cuts, " << r.lost << " lost, " << r.damaged
              << " damaged\n";
    EXPECT_GT(r.committed, 30);
    EXPECT_EQ(r.lost, 0) << "journal_mode=" << mode;
    EXPECT_EQ(r.damaged, 0) << "journal_mode=" << mode;
  }
}

TEST_F(CutVfsTest, PlainSqliteWalWithSynchronousNormalLosesCommits) {
  const std::string path = dir_.File("plain-normal.db");
  SqliteCutResult r = RunSqliteCuts(
      *vfs_, path, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", 30, 12);
  std::cout << "journal_mode=WAL synchronous=NORMAL: " << r.committed
            << " transactions committed over 30 cuts, " << r.lost << " lost, " << r.damaged
            << " damaged\n";
  EXPECT_GT(r.lost, 0) << "the VFS must drop commits that were never fsynced";
  EXPECT_EQ(r.damaged, 0) << "WAL checksums keep a torn log consistent";
}

TEST_F(CutVfsTest, RollbackJournalWithoutSyncsLosesOrDamages) {
  const std::string path = dir_.File("plain-off.db");
  SqliteCutResult r = RunSqliteCuts(
      *vfs_, path, "PRAGMA journal_mode=DELETE; PRAGMA synchronous=OFF;", 30, 13);
  std::cout << "journal_mode=DELETE synchronous=OFF: " << r.committed
            << " transactions committed over 30 cuts, " << r.lost << " lost, " << r.damaged
            << " damaged\n";
  EXPECT_GT(r.lost + r.damaged, 0) << "without fsyncs a cut must cost commits";
}

}  // namespace
}  // namespace surge::testing
