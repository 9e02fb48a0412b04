// DbLock: one server per database file. Acquire() takes an exclusive
// flock(2) on "<db>.lock" beside the database (the path resolved through
// symlinks) and writes the owner's pid into it; the lock is held until the
// DbLock is destroyed. The kernel drops it when the process exits however it
// exits (kill -9 included), so a lock file left behind never blocks a
// restart. A separate file, not the database itself: SQLite never opens it,
// and closing it cannot drop SQLite's own POSIX locks on the database (which
// closing any second descriptor of the database file would). Not
// thread-safe; a DbLock is owned by one server object.
#ifndef SURGE_SERVER_STORE_DB_LOCK_H_
#define SURGE_SERVER_STORE_DB_LOCK_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace surge::store {

class DbLock {
 public:
  // Locks `db_path` without waiting. FAILED_PRECONDITION naming the database,
  // the lock file and the holder's pid (when the kernel or the file tells it)
  // when another process, or another DbLock of this process, holds it;
  // UNAVAILABLE when the lock file cannot be created or opened. ":memory:"
  // gets a lock that holds nothing.
  static absl::StatusOr<std::unique_ptr<DbLock>> Acquire(const std::string& db_path);
  ~DbLock();
  DbLock(const DbLock&) = delete;
  DbLock& operator=(const DbLock&) = delete;

  // The lock file ("" for ":memory:").
  const std::string& lock_path() const { return lock_path_; }

 private:
  DbLock(int fd, std::string lock_path) : fd_(fd), lock_path_(std::move(lock_path)) {}

  int fd_;  // -1: nothing held
  std::string lock_path_;
};

}  // namespace surge::store

#endif  // SURGE_SERVER_STORE_DB_LOCK_H_
