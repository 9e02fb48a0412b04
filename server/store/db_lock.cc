// Implementation of DbLock: flock(2) on "<db>.lock", the holder's pid from
// /proc/locks (or, failing that, from the file).
#include "server/store/db_lock.h"

#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace surge::store {
namespace {

// "<db>.lock" beside the file `db_path` names, through symlinks; when the
// database does not exist yet, beside it in its resolved folder.
std::string LockPathFor(const std::string& db_path) {
  char resolved[PATH_MAX];
  if (realpath(db_path.c_str(), resolved) != nullptr) return absl::StrCat(resolved, ".lock");
  size_t slash = db_path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : db_path.substr(0, slash == 0 ? 1 : slash);
  std::string base = slash == std::string::npos ? db_path : db_path.substr(slash + 1);
  if (realpath(dir.c_str(), resolved) == nullptr) return db_path + ".lock";
  std::string folder = resolved;
  if (folder.back() != '/') folder += '/';
  return absl::StrCat(folder, base, ".lock");
}

// The pid holding a flock on the file open as `fd`, from /proc/locks
// ("1: FLOCK  ADVISORY  WRITE 1234 fd:00:5678 0 EOF"); "" when not listed.
std::string FlockHolder(int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0) return "";
  std::string file_id = absl::StrFormat("%02x:%02x:%d", major(st.st_dev), minor(st.st_dev),
                                        static_cast<int64_t>(st.st_ino));
  std::ifstream locks("/proc/locks");
  std::string line;
  while (std::getline(locks, line)) {
    std::vector<std::string> fields = absl::StrSplit(line, ' ', absl::SkipWhitespace());
    if (fields.size() < 6 || fields[1] != "FLOCK") continue;  // "->": a waiter, not a holder
    if (fields[5] == file_id) return fields[4];
  }
  return "";
}

// The pid the holder wrote into the lock file, if any.
std::string PidInFile(int fd) {
  char buf[32] = {};
  ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
  if (n <= 0) return "";
  return std::string(absl::StripAsciiWhitespace(std::string(buf, static_cast<size_t>(n))));
}

}  // namespace

absl::StatusOr<std::unique_ptr<DbLock>> DbLock::Acquire(const std::string& db_path) {
  if (db_path == ":memory:") return std::unique_ptr<DbLock>(new DbLock(-1, ""));
  std::string lock_path = LockPathFor(db_path);
  bool writable = true;
  int fd = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0 && (errno == EROFS || errno == EACCES || errno == EPERM)) {
    // A lock file left by an earlier server on what is now read-only: it can
    // still be locked (the database checks then refuse the read-only file).
    writable = false;
    fd = open(lock_path.c_str(), O_RDONLY | O_CLOEXEC);
  }
  if (fd < 0) {
    return absl::UnavailableError(absl::StrCat("cannot create the lock file ", lock_path,
                                               " of database ", db_path, ": ",
                                               std::strerror(errno)));
  }
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    std::string holder = FlockHolder(fd);
    if (holder.empty()) holder = PidInFile(fd);
    close(fd);
    if (err == EWOULDBLOCK) {
      return absl::FailedPreconditionError(absl::StrCat(
          "database ", db_path, " is in use by another server (pid ",
          holder.empty() ? "unknown" : holder, ", holding the lock file ", lock_path,
          "); stop it first, or give this server another --db"));
    }
    return absl::UnavailableError(
        absl::StrCat("cannot lock ", lock_path, ": ", std::strerror(err)));
  }
  if (writable) {
    // The pid is for people and error messages only (the flock is the lock),
    // so a failed write is not an error.
    std::string pid = absl::StrCat(getpid(), "\n");
    bool written = ftruncate(fd, 0) == 0 &&
                   pwrite(fd, pid.data(), pid.size(), 0) == static_cast<ssize_t>(pid.size());
    (void)written;
  }
  return std::unique_ptr<DbLock>(new DbLock(fd, std::move(lock_path)));
}

DbLock::~DbLock() {
  if (fd_ >= 0) close(fd_);  // drops the flock
}

}  // namespace surge::store
