// CutVfs: a SQLite VFS for power-cut tests. It wraps the default "unix" VFS
// and remembers, per file, what has been written since that file's last
// xSync, so that a simulated power cut can put every file back the way a
// disk would leave it: the content and size of the last sync.
//
// The model, per file path (every connection of the process shares it):
// - xWrite and xTruncate go to the real file at once, but before a 4 KiB
//   block that was synced is first changed, its synced bytes are saved.
// - xSync makes the file's current content its durable content (the saved
//   blocks are forgotten). The real fsync is skipped: the durability of this
//   model, not of the host's disk, is what is tested, and it is fast.
// - A file this VFS created is lost at a cut until its first xSync (the unix
//   VFS fsyncs the folder of a new journal or WAL at its first sync).
// - xDelete is durable at once (a simplification: the folder is not
//   modelled further). Temporary files (no name) are not tracked.
// - The -shm file is not tracked: SQLite rebuilds it from the WAL when the
//   first connection opens the database after the cut.
//
// A cut is two steps. Freeze() (or an armed trigger: just before the Nth
// write, truncate or sync) stops the "disk": from then on every read, write,
// truncate, sync, open and delete through this VFS fails with an I/O error,
// so nothing done after the cut can be acked as durable. Once every file
// opened through the VFS is closed, RestoreAfterCut() rewrites the files on
// disk to their durable content (kDropUnsynced), or to a random mix of
// durable and written blocks, as a disk that reorders writes leaves them
// (kTearUnsynced), and thaws the VFS. Plain SQLite (the "unix" VFS) can then
// open the files as after a reboot.
//
// Thread-safe: one mutex around every tracked operation. One instance per
// process (SQLite keeps a pointer to it); Install() registers it.
#ifndef SURGE_TESTS_DURABILITY_CUT_VFS_H_
#define SURGE_TESTS_DURABILITY_CUT_VFS_H_

#include <sqlite3.h>

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace surge::testing {

// What a cut leaves of the writes since each file's last sync.
enum class CutMode {
  kDropUnsynced,  // every unsynced write and size change is lost
  kTearUnsynced,  // each unsynced 4 KiB block independently kept or lost
};

// What RestoreAfterCut changed on disk.
struct CutReport {
  int files_tracked = 0;
  int files_with_unsynced = 0;   // files that had unsynced writes at the cut
  int files_removed = 0;         // created and never synced
  int64_t blocks_reverted = 0;   // 4 KiB blocks put back to their synced content
  int64_t bytes_cut = 0;         // bytes dropped from grown files' ends
  bool db_unsynced = false;      // the main database file had unsynced writes
  bool wal_unsynced = false;     // the -wal file had unsynced writes
};

// Counters since Install().
struct CutVfsStats {
  int64_t writes = 0;
  int64_t syncs = 0;
  int64_t db_syncs = 0;     // syncs of main database files (checkpoints, rollback commits)
  int64_t truncates = 0;
  int64_t refused = 0;      // operations failed because the VFS was frozen
};

class CutVfs {
 public:
  static constexpr const char* kName = "surge-cut";
  static constexpr int64_t kBlock = 4096;

  // Registers the VFS (once per process) as SQLite's default when
  // `make_default`, else under kName only. Returns the instance.
  static CutVfs& Install(bool make_default);

  // Arms a cut just before the `n`-th write, truncate or sync from now on
  // (counted over every file; 0 disarms).
  void ArmCut(int64_t n);
  // Cuts now (idempotent).
  void Freeze();
  bool frozen() const;
  // Waits up to `timeout` for a cut (armed or not); true when frozen.
  bool WaitFrozen(absl::Duration timeout);

  // Files opened through this VFS and not yet closed.
  int open_files() const;

  // After a cut, with every file closed: writes each tracked file's
  // post-cut content to disk, forgets all state and thaws. `rng` draws the
  // torn blocks (kTearUnsynced). FAILED_PRECONDITION when not frozen or a
  // file is still open; INTERNAL when the disk cannot be written.
  absl::StatusOr<CutReport> RestoreAfterCut(CutMode mode, std::mt19937_64& rng);

  // Treats every tracked file's current content as durable (after a clean
  // setup): forgets the unsynced state without touching the files.
  void ForgetUnsynced();

  CutVfsStats stats() const;

 private:
  friend struct CutVfsCallbacks;  // the sqlite3_vfs and sqlite3_io_methods entries
  struct TrackedFile;             // one path's durable state
  struct File;                    // an open file: our header, then the unix file

  CutVfs();
  // Under mu_: false when frozen (and counts the refusal); fires an armed
  // cut when this mutating operation is the chosen one.
  bool Admit(bool mutating);
  void FreezeLocked();
  // Under mu_: saves the synced bytes of the blocks [first, last] of `tracked`.
  void SaveBlocks(TrackedFile& tracked, sqlite3_file* real, int64_t first, int64_t last);

  sqlite3_vfs vfs_;
  sqlite3_vfs* real_;  // "unix"

  mutable std::mutex mu_;
  std::condition_variable frozen_cv_;
  bool frozen_ = false;
  int64_t arm_at_ = 0;    // cut before this mutating operation (0: none)
  int64_t mutations_ = 0;
  int open_files_ = 0;
  std::map<std::string, std::shared_ptr<TrackedFile>> files_;
  CutVfsStats stats_;
};

}  // namespace surge::testing

#endif  // SURGE_TESTS_DURABILITY_CUT_VFS_H_
