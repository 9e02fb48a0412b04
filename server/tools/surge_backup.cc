// surge-backup: an online backup of a surge database while its server keeps
// serving and ingesting, and a per-run record-count check of one database
// against another (a backup against its source, a restore against a backup).
//
//   surge-backup --db=LIVE.db --out=BACKUP.db [--force] [--step_pages=256] [--sleep_ms=2]
//   surge-backup --verify --db=A.db [--against=B.db [--live]]
//
// Backup. Opens LIVE.db read-only (a SQLite URI with mode=ro, as
// surge-holdout does: the server's lock file, its writer and its WAL are left
// alone), copies it with SQLite's online backup API (sqlite3_backup_step,
// --step_pages pages a step, --sleep_ms between steps so the copy shares the
// disk and the CPU with the server) into a temporary file beside --out
// (BACKUP.db.tmp-XXXXXX), runs PRAGMA integrity_check and counts jobs, runs
// and records on the copy, fsyncs it, and only then renames it to --out. So
// --out is never half a backup: it is absent, the file it was, or a complete,
// checked copy. An existing --out is refused unless --force; with --force it
// is still refused while a server holds it (its <db>.lock). A non-empty -wal
// beside --out is always refused: SQLite would read it as part of the backup.
//
// Consistency: the copy is one snapshot. The source connection opens a read
// transaction before the first step and keeps it until the last, so every
// step reads the same WAL snapshot: the database exactly as of that moment
// (every record acked before surge-backup started is in it, and every run's
// record counter matches its records). Stepping without it, SQLite starts a
// read transaction per step and restarts the copy from page 1 whenever
// another connection committed in between; under steady ingest (a group
// commit every few milliseconds) such a copy restarts for as long as ingest
// lasts (measured: after 3,000 steps of 8 pages it still had the whole file
// to copy). The snapshot's cost: the server's checkpoints cannot move past a
// snapshot that is still being read, so its -wal grows by what is ingested
// during the copy and is checkpointed after it. The server's writer never
// waits on the backup: in WAL mode readers do not block the writer.
//
// Verify. Reads every run's record count (COUNT of its records, and the
// runs.record_count counter the writer keeps in the same transaction) from
// each database under one read transaction, and runs PRAGMA integrity_check
// on --db. Alone, --db is checked on its own: every run's counter must equal
// its records. With --against the two are compared per job and per run.
// --live says --against is the live database that --db was backed up from,
// which may have grown since: a run with more records there, and runs or
// jobs only there, are counted as grown, not as differences. Every
// difference is printed on a line of its own.
//
// Exit status: 0 done (verify: no differences), 1 failure (a message naming
// the file and the cause), 2 usage, 3 verify found differences.
#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/tools/read_only_db.h"
#include "server/store/db_lock.h"
#include "server/store/sqlite_db.h"
#include "server/util/status_macros.h"

ABSL_FLAG(std::string, db, "", "the surge database to back up (or, with --verify, to check)");
ABSL_FLAG(std::string, out, "", "the backup file to write (a temporary file beside it until done)");
ABSL_FLAG(bool, force, false, "replace an existing --out");
ABSL_FLAG(int, step_pages, 256, "pages copied per backup step, in [1, 1048576]");
ABSL_FLAG(int, sleep_ms, 2, "milliseconds slept between steps, in [0, 10000]");
ABSL_FLAG(bool, verify, false, "check --db (integrity, counters) and compare it with --against");
ABSL_FLAG(std::string, against, "", "with --verify: the database to compare --db with");
ABSL_FLAG(bool, live, false,
          "with --against: it is the live source of the backup --db and may have grown since");

namespace {

using surge::store::SqliteError;

volatile sig_atomic_t g_interrupted = 0;
void OnStopSignal(int) { g_interrupted = 1; }

struct CloseDb {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
using Db = std::unique_ptr<sqlite3, CloseDb>;

absl::StatusOr<Db> OpenDb(const std::string& name, int flags) {
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(name.c_str(), &raw, flags | SQLITE_OPEN_NOMUTEX, nullptr);
  Db db(raw);
  if (rc != SQLITE_OK) return SqliteError(raw, rc, "opening");
  sqlite3_busy_timeout(raw, 5000);
  return db;
}

// Runs `sql`; an error names `what` and SQLite's message.
absl::Status Exec(sqlite3* db, const char* sql, const char* what) {
  int rc = sqlite3_exec(db, sql, nullptr, nullptr, nullptr);
  return rc == SQLITE_OK ? absl::OkStatus() : SqliteError(db, rc, what);
}

// Runs `sql`, calling `row` on each result row.
template <typename Row>
absl::Status ForEachRow(sqlite3* db, const char* sql, Row row) {
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr);
  if (rc != SQLITE_OK) return SqliteError(db, rc, sql);
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) row(stmt);
  absl::Status status = rc == SQLITE_DONE ? absl::OkStatus() : SqliteError(db, rc, sql);
  sqlite3_finalize(stmt);
  return status;
}

std::string Text(sqlite3_stmt* stmt, int col) {
  const unsigned char* text = sqlite3_column_text(stmt, col);
  return text ? std::string(reinterpret_cast<const char*>(text), sqlite3_column_bytes(stmt, col))
              : std::string();
}

// PRAGMA integrity_check: DATA_LOSS listing the first problems.
absl::Status IntegrityCheck(sqlite3* db) {
  std::vector<std::string> problems;
  SURGE_RETURN_IF_ERROR(ForEachRow(db, "PRAGMA integrity_check(4)", [&](sqlite3_stmt* s) {
    if (Text(s, 0) != "ok") problems.push_back(absl::StrReplaceAll(Text(s, 0), {{"\n", "; "}}));
  }));
  if (problems.empty()) return absl::OkStatus();
  return absl::DataLossError(
      absl::StrCat("PRAGMA integrity_check: ", absl::StrJoin(problems, "; ")));
}

// One run's records: as counted, and as its runs.record_count says.
struct RunCount {
  int64_t records = 0;
  int64_t counter = 0;
};
using RunKey = std::pair<std::string, std::string>;  // (job, run)

struct DbCounts {
  std::set<std::string> jobs;
  std::map<RunKey, RunCount> runs;
  int64_t records = 0;
};

// Jobs, runs and records of a surge database (inside the caller's snapshot).
absl::StatusOr<DbCounts> ReadCounts(sqlite3* db) {
  DbCounts counts;
  SURGE_RETURN_IF_ERROR(ForEachRow(db, "SELECT name FROM jobs",
                                   [&](sqlite3_stmt* s) { counts.jobs.insert(Text(s, 0)); }));
  SURGE_RETURN_IF_ERROR(ForEachRow(
      db,
      "SELECT j.name, r.name, r.record_count, (SELECT COUNT(*) FROM records WHERE run_id = r.id) "
      "FROM runs r JOIN jobs j ON j.id = r.job_id",
      [&](sqlite3_stmt* s) {
        RunCount& run = counts.runs[{Text(s, 0), Text(s, 1)}];
        run.counter = sqlite3_column_int64(s, 2);
        run.records = sqlite3_column_int64(s, 3);
        counts.records += run.records;
      }));
  return counts;
}

// --- backup ---

struct CopyResult {
  int64_t pages = 0;
  int64_t page_size = 0;
  int steps = 0;
  double copy_s = 0;
  double check_s = 0;
  DbCounts counts;
};

// Copies `db_path` into the new file `tmp_path` as one snapshot, then checks
// and counts the copy. Errors name the file they concern.
absl::StatusOr<CopyResult> CopySnapshot(const std::string& db_path, const std::string& tmp_path,
                                        const std::string& out_path, int step_pages,
                                        absl::Duration sleep) {
  auto in_source = [&](const absl::Status& s) {
    return absl::Status(s.code(), absl::StrCat("reading ", db_path, ": ", s.message()));
  };
  auto in_copy = [&](const absl::Status& s) {
    return absl::Status(s.code(),
                        absl::StrCat("writing ", out_path, " (as ", tmp_path, "): ", s.message()));
  };
  CopyResult result;
  const absl::Time start = absl::Now();
  absl::StatusOr<Db> src = OpenDb(surge::tools::ReadOnlyUri(db_path), SQLITE_OPEN_READONLY | SQLITE_OPEN_URI);
  if (!src.ok()) return in_source(src.status());
  // The snapshot: a read transaction, started by its first read, held to the last step.
  absl::Status begun =
      Exec(src->get(), "BEGIN; SELECT COUNT(*) FROM sqlite_master;", "starting a read transaction");
  if (!begun.ok()) return in_source(begun);
  absl::StatusOr<Db> dst = OpenDb(tmp_path, SQLITE_OPEN_READWRITE);
  if (!dst.ok()) return in_copy(dst.status());

  sqlite3_backup* backup = sqlite3_backup_init(dst->get(), "main", src->get(), "main");
  if (backup == nullptr) {
    return in_copy(SqliteError(dst->get(), sqlite3_errcode(dst->get()), "sqlite3_backup_init"));
  }
  const absl::Time busy_deadline = absl::Now() + absl::Seconds(60);
  int rc = SQLITE_OK;
  while (true) {
    rc = sqlite3_backup_step(backup, step_pages);
    ++result.steps;
    if (rc == SQLITE_DONE) break;
    const bool busy = rc == SQLITE_BUSY || rc == SQLITE_LOCKED;
    if ((rc != SQLITE_OK && !busy) || (busy && absl::Now() > busy_deadline)) break;
    if (g_interrupted) {
      const int copied = sqlite3_backup_pagecount(backup) - sqlite3_backup_remaining(backup);
      sqlite3_backup_finish(backup);
      return absl::CancelledError(
          absl::StrCat("interrupted after ", copied, " pages; ", out_path, " was not written"));
    }
    absl::SleepFor(sleep);
  }
  result.pages = sqlite3_backup_pagecount(backup);
  // finish reports a step's error (leaving its message on dst), not BUSY.
  const int finished = sqlite3_backup_finish(backup);
  if (rc != SQLITE_DONE || finished != SQLITE_OK) {
    absl::Status s = finished != SQLITE_OK
                         ? SqliteError(dst->get(), finished, "sqlite3_backup_step")
                         : SqliteError(nullptr, rc, "sqlite3_backup_step, busy for 60 s");
    return absl::Status(s.code(), absl::StrCat("copying ", db_path, " to ", out_path, " (as ",
                                               tmp_path, "): ", s.message()));
  }
  Exec(src->get(), "COMMIT;", "").IgnoreError();  // ends the snapshot
  src->reset();
  result.copy_s = absl::ToDoubleSeconds(absl::Now() - start);

  const absl::Time check_start = absl::Now();
  // The copy is page for page the snapshot: damage found in it is the source's.
  absl::Status check = IntegrityCheck(dst->get());
  if (absl::IsDataLoss(check)) {
    return absl::DataLossError(absl::StrCat(db_path, " is damaged (its copy fails ",
                                            check.message(), "); ", out_path, " was not written"));
  }
  if (!check.ok()) return in_copy(check);
  absl::StatusOr<DbCounts> counts = ReadCounts(dst->get());
  if (!counts.ok()) return in_source(counts.status());
  result.counts = std::move(*counts);
  SURGE_RETURN_IF_ERROR(ForEachRow(dst->get(), "PRAGMA page_size", [&](sqlite3_stmt* s) {
    result.page_size = sqlite3_column_int64(s, 0);
  }));
  result.check_s = absl::ToDoubleSeconds(absl::Now() - check_start);
  return result;
}

// The temporary file and the side files SQLite may have left beside it.
void RemoveTemp(const std::string& tmp) {
  for (const char* suffix : {"", "-journal", "-wal", "-shm"}) {
    unlink(absl::StrCat(tmp, suffix).c_str());
  }
}

std::string Errno(const std::string& what) { return absl::StrCat(what, ": ", strerror(errno)); }

absl::Status FsyncPath(const std::string& path, int flags) {
  int fd = open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0 || fsync(fd) != 0) {
    absl::Status s = absl::UnavailableError(Errno(absl::StrCat("fsync ", path)));
    if (fd >= 0) close(fd);
    return s;
  }
  close(fd);
  return absl::OkStatus();
}

std::string Folder(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// Whether the backup may be put at `out`: with `force` over an existing
// file, no server may hold it (the returned lock keeps one off until the
// rename; null when there is no file to replace); and no -wal may be beside
// it, which SQLite would read as part of the backup (left by the database a
// --force replaces, or by one deleted without it).
absl::StatusOr<std::unique_ptr<surge::store::DbLock>> ClaimOut(const std::string& out, bool force) {
  std::unique_ptr<surge::store::DbLock> lock;
  struct stat st;
  if (force && stat(out.c_str(), &st) == 0) {
    absl::StatusOr<std::unique_ptr<surge::store::DbLock>> held = surge::store::DbLock::Acquire(out);
    if (!held.ok()) {
      return absl::Status(held.status().code(),
                          absl::StrCat("not replacing ", out, ": ", held.status().message()));
    }
    lock = std::move(*held);
  }
  const std::string wal = out + "-wal";
  if (stat(wal.c_str(), &st) == 0 && st.st_size > 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        wal, " is not empty: SQLite would read it as part of the backup. Stop the server of ", out,
        " cleanly (that checkpoints it), or move ", out, " with its -wal and -shm aside together"));
  }
  return lock;
}

// Puts the checked copy at `out` (see ClaimOut).
absl::Status PutInPlace(const std::string& tmp, const std::string& out, bool force) {
  SURGE_RETURN_IF_ERROR(FsyncPath(tmp, O_RDONLY));
  SURGE_ASSIGN_OR_RETURN(std::unique_ptr<surge::store::DbLock> lock, ClaimOut(out, force));
  if (force) {
    if (rename(tmp.c_str(), out.c_str()) != 0) {
      return absl::UnavailableError(Errno(absl::StrCat("renaming ", tmp, " to ", out)));
    }
  } else if (renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, out.c_str(), RENAME_NOREPLACE) != 0) {
    if (errno == EEXIST) {
      return absl::AlreadyExistsError(
          absl::StrCat(out, " appeared during the backup; not replaced (give --force)"));
    }
    return absl::UnavailableError(Errno(absl::StrCat("renaming ", tmp, " to ", out)));
  }
  return FsyncPath(Folder(out), O_RDONLY | O_DIRECTORY);
}

int Fail(const std::string& what) {
  std::cerr << "surge-backup: " << what << "\n";
  return 1;
}

int RunBackup(const std::string& db, const std::string& out) {
  const bool force = absl::GetFlag(FLAGS_force);
  struct stat db_st, out_st;
  if (stat(db.c_str(), &db_st) != 0 || !S_ISREG(db_st.st_mode)) {
    return Fail(absl::StrCat("no database file '", db, "'"));
  }
  if (stat(out.c_str(), &out_st) == 0) {
    if (out_st.st_dev == db_st.st_dev && out_st.st_ino == db_st.st_ino) {
      return Fail(absl::StrCat(out, " is the database itself"));
    }
    if (!S_ISREG(out_st.st_mode)) return Fail(absl::StrCat(out, " exists and is not a file"));
    if (!force) return Fail(absl::StrCat(out, " exists; give --force to replace it"));
  }
  // Checked again before the rename; here so that a refusal comes before the copy.
  if (auto claim = ClaimOut(out, force); !claim.ok()) {
    return Fail(std::string(claim.status().message()));
  }
  std::string tmp = out + ".tmp-XXXXXX";
  int fd = mkstemp(tmp.data());
  if (fd < 0) return Fail(Errno(absl::StrCat("creating a temporary file beside ", out)));
  fchmod(fd, db_st.st_mode & 0777);  // the backup gets the database's permissions
  close(fd);

  struct sigaction action = {};
  action.sa_handler = OnStopSignal;
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  const absl::Time start = absl::Now();
  absl::StatusOr<CopyResult> copy = CopySnapshot(db, tmp, out, absl::GetFlag(FLAGS_step_pages),
                                                 absl::Milliseconds(absl::GetFlag(FLAGS_sleep_ms)));
  absl::Status placed = copy.ok() ? PutInPlace(tmp, out, force) : copy.status();
  if (!placed.ok()) {
    RemoveTemp(tmp);
    return Fail(std::string(placed.message()));
  }
  struct stat st;
  const int64_t bytes = stat(out.c_str(), &st) == 0 ? st.st_size : 0;
  std::printf(
      "surge-backup: %s -> %s (one snapshot, integrity_check ok)\n"
      "jobs %zu\nruns %zu\nrecords %lld\n"
      "size %.1f MB (%lld pages of %lld bytes)\n"
      "seconds %.2f (copy %.2f in %d steps of %d pages, check %.2f)\n",
      db.c_str(), out.c_str(), copy->counts.jobs.size(), copy->counts.runs.size(),
      static_cast<long long>(copy->counts.records), bytes / 1e6,
      static_cast<long long>(copy->pages), static_cast<long long>(copy->page_size),
      absl::ToDoubleSeconds(absl::Now() - start), copy->copy_s, copy->steps,
      absl::GetFlag(FLAGS_step_pages), copy->check_s);
  return 0;
}

// --- verify ---

// Counts (and, for `check`, integrity) of one database under one snapshot.
absl::StatusOr<DbCounts> ReadDatabase(const std::string& path, bool check) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return absl::NotFoundError(absl::StrCat("no database file '", path, "'"));
  }
  absl::StatusOr<DbCounts> counts = [&]() -> absl::StatusOr<DbCounts> {
    SURGE_ASSIGN_OR_RETURN(Db db,
                           OpenDb(surge::tools::ReadOnlyUri(path), SQLITE_OPEN_READONLY | SQLITE_OPEN_URI));
    SURGE_RETURN_IF_ERROR(Exec(db.get(), "BEGIN;", "starting a read transaction"));
    if (check) SURGE_RETURN_IF_ERROR(IntegrityCheck(db.get()));
    return ReadCounts(db.get());  // the connection's close ends the snapshot
  }();
  if (!counts.ok()) {
    return absl::Status(counts.status().code(),
                        absl::StrCat("reading ", path, ": ", counts.status().message()));
  }
  return counts;
}

std::string RunName(const RunKey& key) { return absl::StrCat("run ", key.first, "/", key.second); }

int RunVerify(const std::string& a_path, const std::string& b_path, bool live) {
  absl::StatusOr<DbCounts> a = ReadDatabase(a_path, /*check=*/true);
  if (!a.ok()) return Fail(std::string(a.status().message()));
  std::vector<std::string> diffs;
  auto check_counters = [&](const std::string& path, const DbCounts& db) {
    for (const auto& [key, run] : db.runs) {
      if (run.counter != run.records) {
        diffs.push_back(absl::StrCat(path, ": ", RunName(key), ": its counter says ", run.counter,
                                     " records, ", run.records, " are stored"));
      }
    }
  };
  check_counters(a_path, *a);
  std::printf("%s: integrity_check ok; %zu jobs, %zu runs, %lld records\n", a_path.c_str(),
              a->jobs.size(), a->runs.size(), static_cast<long long>(a->records));
  int64_t behind = 0;
  if (!b_path.empty()) {
    absl::StatusOr<DbCounts> b = ReadDatabase(b_path, /*check=*/false);
    if (!b.ok()) return Fail(std::string(b.status().message()));
    check_counters(b_path, *b);
    std::printf("%s: %zu jobs, %zu runs, %lld records\n", b_path.c_str(), b->jobs.size(),
                b->runs.size(), static_cast<long long>(b->records));
    std::map<std::string, std::pair<int64_t, int64_t>> job_totals;  // job -> (in a, in b)
    for (const auto& [key, run] : a->runs) job_totals[key.first].first += run.records;
    for (const auto& [key, run] : b->runs) job_totals[key.first].second += run.records;
    for (const std::string& job : a->jobs) {
      if (!b->jobs.count(job)) diffs.push_back(absl::StrCat("job ", job, ": not in ", b_path));
    }
    for (const std::string& job : b->jobs) {
      if (a->jobs.count(job)) continue;
      if (live) {
        ++behind;
      } else {
        diffs.push_back(absl::StrCat("job ", job, ": not in ", a_path));
      }
    }
    for (const auto& [job, totals] : job_totals) {
      if (totals.first == totals.second || !a->jobs.count(job) || !b->jobs.count(job)) continue;
      if (live && totals.first < totals.second) continue;
      diffs.push_back(absl::StrCat("job ", job, ": ", totals.first, " records in ", a_path, ", ",
                                   totals.second, " in ", b_path));
    }
    for (const auto& [key, run] : a->runs) {
      auto other = b->runs.find(key);
      if (other == b->runs.end()) {
        diffs.push_back(absl::StrCat(RunName(key), ": not in ", b_path));
      } else if (run.records != other->second.records) {
        if (live && run.records < other->second.records) {
          ++behind;
        } else {
          diffs.push_back(absl::StrCat(RunName(key), ": ", run.records, " records in ", a_path,
                                       ", ", other->second.records, " in ", b_path));
        }
      }
    }
    for (const auto& [key, run] : b->runs) {
      if (a->runs.count(key)) continue;
      if (live) {
        ++behind;
      } else {
        diffs.push_back(absl::StrCat(RunName(key), ": not in ", a_path));
      }
    }
  }
  for (const std::string& d : diffs) std::printf("%s\n", d.c_str());
  if (live) {
    std::printf("%lld runs or jobs have grown or appeared in %s since (expected with --live)\n",
                static_cast<long long>(behind), b_path.c_str());
  }
  std::printf("%zu differences\n", diffs.size());
  return diffs.empty() ? 0 : 3;
}

// Checks argv before absl does (absl exits 1 on an unknown flag or a bad
// value; usage errors here exit 2). Empty when every argument is a known flag
// with a value its type accepts.
std::string ArgvProblem(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--") return "positional arguments are not accepted";
    if (!absl::StartsWith(arg, "-")) return absl::StrCat("unexpected argument '", arg, "'");
    arg = arg.substr(absl::StartsWith(arg, "--") ? 2 : 1);
    const size_t eq = arg.find('=');
    const std::string name = arg.substr(0, eq);
    if (absl::StartsWith(name, "help") || name == "version" || name == "flagfile" ||
        name == "fromenv" || name == "tryfromenv" || name == "undefok") {
      return "";  // absl's own flags: absl handles the command line
    }
    absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    if (flag == nullptr && absl::StartsWith(name, "no")) {
      flag = absl::FindCommandLineFlag(name.substr(2));
      if (flag != nullptr && flag->IsOfType<bool>() && eq == std::string::npos) continue;
      flag = nullptr;
    }
    if (flag == nullptr) return absl::StrCat("unknown flag --", name);
    if (eq == std::string::npos) {
      if (flag->IsOfType<bool>()) continue;
      if (i + 1 == argc) return absl::StrCat("--", name, " needs a value");
      ++i;  // "--flag value"
    }
    std::string value = eq == std::string::npos ? argv[i] : arg.substr(eq + 1);
    std::string error;
    if (!flag->ParseFrom(value, &error)) return absl::StrCat("--", name, ": ", error);
  }
  return "";
}

int Usage(const std::string& problem) {
  std::cerr << "surge-backup: " << problem << "\n" << absl::ProgramUsageMessage() << "\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "an online backup of a surge database, and a per-run count check.\n"
      "Usage: surge-backup --db=LIVE.db --out=BACKUP.db [--force] [--step_pages=N] "
      "[--sleep_ms=MS]\n"
      "       surge-backup --verify --db=A.db [--against=B.db [--live]]");
  absl::FlagsUsageConfig usage_config;
  usage_config.contains_help_flags = [](absl::string_view file) {
    return absl::EndsWith(file, "surge_backup.cc");
  };
  absl::SetFlagsUsageConfig(usage_config);
  if (std::string problem = ArgvProblem(argc, argv); !problem.empty()) return Usage(problem);
  absl::ParseCommandLine(argc, argv);

  const std::string db = absl::GetFlag(FLAGS_db);
  const std::string out = absl::GetFlag(FLAGS_out);
  const std::string against = absl::GetFlag(FLAGS_against);
  const int step_pages = absl::GetFlag(FLAGS_step_pages);
  const int sleep_ms = absl::GetFlag(FLAGS_sleep_ms);
  if (db.empty()) return Usage("--db is required");
  if (absl::GetFlag(FLAGS_verify)) {
    if (!out.empty()) return Usage("--verify reads only: --out is for a backup");
    if (absl::GetFlag(FLAGS_live) && against.empty()) return Usage("--live needs --against");
    return RunVerify(db, against, absl::GetFlag(FLAGS_live));
  }
  if (out.empty()) return Usage("--out is required (or --verify)");
  if (!against.empty() || absl::GetFlag(FLAGS_live)) return Usage("--against needs --verify");
  if (step_pages < 1 || step_pages > (1 << 20)) {
    return Usage(absl::StrCat("--step_pages=", step_pages, ": must be in [1, 1048576]"));
  }
  if (sleep_ms < 0 || sleep_ms > 10000) {
    return Usage(absl::StrCat("--sleep_ms=", sleep_ms, ": must be in [0, 10000]"));
  }
  return RunBackup(db, out);
}
