// Implementation of CutVfs (see cut_vfs.h): the sqlite3_vfs and
// sqlite3_io_methods entries, the per-path durable state and the rewrite of
// the files at a cut.
#include "tests/durability/cut_vfs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>
#include <utility>

#include "absl/strings/str_cat.h"

namespace surge::testing {

// The durable state of one path.
struct CutVfs::TrackedFile {
  bool is_db = false;             // opened as a main database
  bool is_wal = false;            // opened as a WAL
  int64_t synced_size = 0;        // the size at the last sync (or first open)
  bool created_unsynced = false;  // created here and never synced
  bool unsynced = false;          // written or truncated since the last sync
  // Block index -> that block's bytes as of the last sync (clipped to
  // synced_size), saved before the block was first changed.
  std::map<int64_t, std::string> saved;
};

// An open file as SQLite sees it: our header, then the unix VFS's file
// object (real()), which SQLite allocates with it (szOsFile).
struct CutVfs::File {
  sqlite3_file base;  // first: SQLite casts sqlite3_file* to this
  CutVfs* owner;
  std::shared_ptr<TrackedFile> tracked;  // null for temporary files

  static size_t HeaderSize() { return (sizeof(File) + 15) & ~size_t{15}; }
  sqlite3_file* real() {
    return reinterpret_cast<sqlite3_file*>(reinterpret_cast<char*>(this) + HeaderSize());
  }
};

namespace {

int64_t RealSize(sqlite3_file* real) {
  sqlite3_int64 size = 0;
  if (real->pMethods->xFileSize(real, &size) != SQLITE_OK) return 0;
  return size;
}

absl::Status Errno(const std::string& what, const std::string& path) {
  return absl::InternalError(absl::StrCat(what, " ", path, ": ", std::strerror(errno)));
}

absl::Status WriteAll(int fd, const char* data, size_t size, int64_t offset,
                      const std::string& path) {
  while (size > 0) {
    ssize_t n = pwrite(fd, data, size, offset);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Errno("pwrite", path);
    }
    data += n;
    size -= static_cast<size_t>(n);
    offset += n;
  }
  return absl::OkStatus();
}

}  // namespace

// The entries SQLite calls. Mutating and data operations take the owner's
// mutex; locks, shared memory and file controls go straight to unix.
struct CutVfsCallbacks {
  static CutVfs* Owner(sqlite3_vfs* vfs) { return static_cast<CutVfs*>(vfs->pAppData); }
  static CutVfs::File* AsFile(sqlite3_file* file) { return reinterpret_cast<CutVfs::File*>(file); }
  static sqlite3_file* Real(sqlite3_file* file) { return AsFile(file)->real(); }

  // --- sqlite3_vfs ---
  static int Open(sqlite3_vfs* vfs, const char* name, sqlite3_file* file, int flags,
                  int* out_flags) {
    CutVfs* self = Owner(vfs);
    file->pMethods = nullptr;  // SQLite calls xClose only when this is set
    std::lock_guard<std::mutex> lock(self->mu_);
    if (!self->Admit(false)) return SQLITE_CANTOPEN;
    const bool tracked = name != nullptr && (flags & SQLITE_OPEN_DELETEONCLOSE) == 0;
    const bool existed = tracked && access(name, F_OK) == 0;
    sqlite3_file* real = AsFile(file)->real();
    real->pMethods = nullptr;
    int rc = self->real_->xOpen(self->real_, name, real, flags, out_flags);
    if (rc != SQLITE_OK) {
      if (real->pMethods != nullptr) real->pMethods->xClose(real);
      return rc;
    }
    CutVfs::File* f = new (file) CutVfs::File{};
    f->owner = self;
    if (tracked) {
      std::shared_ptr<CutVfs::TrackedFile>& state = self->files_[name];
      if (state == nullptr) {
        state = std::make_shared<CutVfs::TrackedFile>();
        state->synced_size = RealSize(real);
        state->created_unsynced = !existed;
      }
      state->is_db |= (flags & SQLITE_OPEN_MAIN_DB) != 0;
      state->is_wal |= (flags & SQLITE_OPEN_WAL) != 0;
      f->tracked = state;
    }
    f->base.pMethods = &kMethods;
    ++self->open_files_;
    return SQLITE_OK;
  }

  static int Delete(sqlite3_vfs* vfs, const char* name, int sync_dir) {
    CutVfs* self = Owner(vfs);
    std::lock_guard<std::mutex> lock(self->mu_);
    if (!self->Admit(false)) return SQLITE_IOERR_DELETE;
    int rc = self->real_->xDelete(self->real_, name, sync_dir);
    if (rc == SQLITE_OK || rc == SQLITE_IOERR_DELETE_NOENT) self->files_.erase(name);
    return rc;
  }

  static int Access(sqlite3_vfs* vfs, const char* name, int flags, int* out) {
    sqlite3_vfs* real = Owner(vfs)->real_;
    return real->xAccess(real, name, flags, out);
  }
  static int FullPathname(sqlite3_vfs* vfs, const char* name, int n, char* out) {
    sqlite3_vfs* real = Owner(vfs)->real_;
    return real->xFullPathname(real, name, n, out);
  }
  static void* DlOpen(sqlite3_vfs* vfs, const char* name) {
    sqlite3_vfs* real = Owner(vfs)->real_;
    return real->xDlOpen(real, name);
  }
  static void DlError(sqlite3_vfs* vfs, int n, char* out) {
    sqlite3_vfs* real = Owner(vfs)->real_;
    real->xDlError(real, n, out);
  }
  static void (*DlSym(sqlite3_vfs* vfs, void* handle, const char* symbol))(void) {
    sqlite3_vfs* real = Owner(vfs)->real_;
    return real->xDlSym(real, handle, symbol);
  }
  static void DlClose(sqlite3_vfs* vfs, void* handle) {
    sqlite3_vfs* real = Owner(vfs)->real_;
    real->xDlClose(real, handle);
  }
  static int Randomness(sqlite3_vfs* vfs, int n, char* out) {
    sqlite3_vfs* real = Owner(vfs)->real_;
    return real->xRandomness(real, n, out);
  }
  static int Sleep(sqlite3_vfs* vfs, int micros) {
    sqlite3_vfs* real = Owner(vfs)->real_;
    return real->xSleep(real, micros);
  }
  static int CurrentTime(sqlite3_vfs* vfs, double* out) {
    sqlite3_vfs* real = Owner(vfs)->real_;
    return real->xCurrentTime(real, out);
  }
  static int GetLastError(sqlite3_vfs* vfs, int n, char* out) {
    sqlite3_vfs* real = Owner(vfs)->real_;
    return real->xGetLastError(real, n, out);
  }
  static int CurrentTimeInt64(sqlite3_vfs* vfs, sqlite3_int64* out) {
    sqlite3_vfs* real = Owner(vfs)->real_;
    return real->xCurrentTimeInt64(real, out);
  }

  // --- sqlite3_io_methods: tracked ---
  static int Close(sqlite3_file* file) {
    CutVfs::File* f = AsFile(file);
    CutVfs* self = f->owner;
    std::lock_guard<std::mutex> lock(self->mu_);
    int rc = f->real()->pMethods->xClose(f->real());  // also when frozen: frees the handle
    --self->open_files_;
    f->~File();
    return rc;
  }

  static int Read(sqlite3_file* file, void* buf, int amount, sqlite3_int64 offset) {
    CutVfs::File* f = AsFile(file);
    std::lock_guard<std::mutex> lock(f->owner->mu_);
    if (!f->owner->Admit(false)) return SQLITE_IOERR_READ;
    return f->real()->pMethods->xRead(f->real(), buf, amount, offset);
  }

  static int Write(sqlite3_file* file, const void* buf, int amount, sqlite3_int64 offset) {
    CutVfs::File* f = AsFile(file);
    CutVfs* self = f->owner;
    std::lock_guard<std::mutex> lock(self->mu_);
    if (!self->Admit(true)) return SQLITE_IOERR_WRITE;
    ++self->stats_.writes;
    if (f->tracked != nullptr && amount > 0) {
      self->SaveBlocks(*f->tracked, f->real(), offset / CutVfs::kBlock,
                       (offset + amount - 1) / CutVfs::kBlock);
      f->tracked->unsynced = true;
    }
    return f->real()->pMethods->xWrite(f->real(), buf, amount, offset);
  }

  static int Truncate(sqlite3_file* file, sqlite3_int64 size) {
    CutVfs::File* f = AsFile(file);
    CutVfs* self = f->owner;
    std::lock_guard<std::mutex> lock(self->mu_);
    if (!self->Admit(true)) return SQLITE_IOERR_TRUNCATE;
    ++self->stats_.truncates;
    if (f->tracked != nullptr) {
      if (size < f->tracked->synced_size) {
        self->SaveBlocks(*f->tracked, f->real(), size / CutVfs::kBlock,
                         (f->tracked->synced_size - 1) / CutVfs::kBlock);
      }
      f->tracked->unsynced = true;
    }
    return f->real()->pMethods->xTruncate(f->real(), size);
  }

  static int Sync(sqlite3_file* file, int /*flags*/) {
    CutVfs::File* f = AsFile(file);
    CutVfs* self = f->owner;
    std::lock_guard<std::mutex> lock(self->mu_);
    if (!self->Admit(true)) return SQLITE_IOERR_FSYNC;
    ++self->stats_.syncs;
    if (f->tracked != nullptr) {
      // The file's content now is its durable content. No real fsync: the
      // model, not the host's disk, is what a cut consults.
      CutVfs::TrackedFile& t = *f->tracked;
      t.synced_size = RealSize(f->real());
      t.saved.clear();
      t.unsynced = false;
      t.created_unsynced = false;
      if (t.is_db) ++self->stats_.db_syncs;
    }
    return SQLITE_OK;
  }

  // --- sqlite3_io_methods: passed through ---
  static int FileSize(sqlite3_file* file, sqlite3_int64* size) {
    sqlite3_file* real = Real(file);
    return real->pMethods->xFileSize(real, size);
  }
  static int Lock(sqlite3_file* file, int level) {
    sqlite3_file* real = Real(file);
    return real->pMethods->xLock(real, level);
  }
  static int Unlock(sqlite3_file* file, int level) {
    sqlite3_file* real = Real(file);
    return real->pMethods->xUnlock(real, level);
  }
  static int CheckReservedLock(sqlite3_file* file, int* out) {
    sqlite3_file* real = Real(file);
    return real->pMethods->xCheckReservedLock(real, out);
  }
  static int FileControl(sqlite3_file* file, int op, void* arg) {
    // A size hint may let unix grow the file outside xWrite; SQLite treats
    // hints as optional.
    if (op == SQLITE_FCNTL_SIZE_HINT) return SQLITE_OK;
    sqlite3_file* real = Real(file);
    return real->pMethods->xFileControl(real, op, arg);
  }
  static int SectorSize(sqlite3_file* file) {
    sqlite3_file* real = Real(file);
    return real->pMethods->xSectorSize(real);
  }
  static int DeviceCharacteristics(sqlite3_file* file) {
    sqlite3_file* real = Real(file);
    return real->pMethods->xDeviceCharacteristics(real);
  }
  static int ShmMap(sqlite3_file* file, int page, int size, int extend, void volatile** out) {
    sqlite3_file* real = Real(file);
    return real->pMethods->xShmMap(real, page, size, extend, out);
  }
  static int ShmLock(sqlite3_file* file, int offset, int n, int flags) {
    sqlite3_file* real = Real(file);
    return real->pMethods->xShmLock(real, offset, n, flags);
  }
  static void ShmBarrier(sqlite3_file* file) {
    sqlite3_file* real = Real(file);
    real->pMethods->xShmBarrier(real);
  }
  static int ShmUnmap(sqlite3_file* file, int delete_flag) {
    sqlite3_file* real = Real(file);
    return real->pMethods->xShmUnmap(real, delete_flag);
  }
  // No memory-mapped pages: every read goes through Read.
  static int Fetch(sqlite3_file*, sqlite3_int64, int, void** out) {
    *out = nullptr;
    return SQLITE_OK;
  }
  static int Unfetch(sqlite3_file*, sqlite3_int64, void*) { return SQLITE_OK; }

  static const sqlite3_io_methods kMethods;
};

const sqlite3_io_methods CutVfsCallbacks::kMethods = {
    3,           Close,        Read,          Write,    Truncate,
    Sync,        FileSize,     Lock,          Unlock,   CheckReservedLock,
    FileControl, SectorSize,   DeviceCharacteristics,   ShmMap,
    ShmLock,     ShmBarrier,   ShmUnmap,      Fetch,    Unfetch,
};

CutVfs::CutVfs() : vfs_{}, real_(sqlite3_vfs_find("unix")) {
  vfs_.iVersion = 2;
  vfs_.szOsFile = static_cast<int>(File::HeaderSize()) + real_->szOsFile;
  vfs_.mxPathname = real_->mxPathname;
  vfs_.zName = kName;
  vfs_.pAppData = this;
  vfs_.xOpen = CutVfsCallbacks::Open;
  vfs_.xDelete = CutVfsCallbacks::Delete;
  vfs_.xAccess = CutVfsCallbacks::Access;
  vfs_.xFullPathname = CutVfsCallbacks::FullPathname;
  vfs_.xDlOpen = CutVfsCallbacks::DlOpen;
  vfs_.xDlError = CutVfsCallbacks::DlError;
  vfs_.xDlSym = CutVfsCallbacks::DlSym;
  vfs_.xDlClose = CutVfsCallbacks::DlClose;
  vfs_.xRandomness = CutVfsCallbacks::Randomness;
  vfs_.xSleep = CutVfsCallbacks::Sleep;
  vfs_.xCurrentTime = CutVfsCallbacks::CurrentTime;
  vfs_.xGetLastError = CutVfsCallbacks::GetLastError;
  vfs_.xCurrentTimeInt64 = CutVfsCallbacks::CurrentTimeInt64;
}

CutVfs& CutVfs::Install(bool make_default) {
  // Leaked on purpose: SQLite keeps the pointer until the process exits.
  static CutVfs* const instance = [] {
    sqlite3_initialize();
    return new CutVfs();
  }();
  sqlite3_vfs_register(&instance->vfs_, make_default ? 1 : 0);
  return *instance;
}

bool CutVfs::Admit(bool mutating) {
  if (frozen_) {
    ++stats_.refused;
    return false;
  }
  if (mutating && arm_at_ > 0 && ++mutations_ >= arm_at_) {
    FreezeLocked();
    ++stats_.refused;
    return false;
  }
  return true;
}

void CutVfs::FreezeLocked() {
  frozen_ = true;
  arm_at_ = 0;
  frozen_cv_.notify_all();
}

void CutVfs::ArmCut(int64_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  mutations_ = 0;
  arm_at_ = n;
}

void CutVfs::Freeze() {
  std::lock_guard<std::mutex> lock(mu_);
  FreezeLocked();
}

bool CutVfs::frozen() const {
  std::lock_guard<std::mutex> lock(mu_);
  return frozen_;
}

bool CutVfs::WaitFrozen(absl::Duration timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return frozen_cv_.wait_for(lock, absl::ToChronoNanoseconds(timeout), [&] { return frozen_; });
}

int CutVfs::open_files() const {
  std::lock_guard<std::mutex> lock(mu_);
  return open_files_;
}

CutVfsStats CutVfs::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void CutVfs::SaveBlocks(TrackedFile& tracked, sqlite3_file* real, int64_t first, int64_t last) {
  for (int64_t block = first; block <= last; ++block) {
    const int64_t offset = block * kBlock;
    if (offset >= tracked.synced_size) break;
    if (tracked.saved.count(block) > 0) continue;
    std::string bytes(static_cast<size_t>(std::min(kBlock, tracked.synced_size - offset)), '\0');
    // A short read (the file was shorter) fills zeros, which is what a
    // later restore should write back there anyway.
    real->pMethods->xRead(real, bytes.data(), static_cast<int>(bytes.size()), offset);
    tracked.saved.emplace(block, std::move(bytes));
  }
}

void CutVfs::ForgetUnsynced() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = files_.begin(); it != files_.end();) {
    struct stat st;
    if (stat(it->first.c_str(), &st) != 0) {
      it = files_.erase(it);
      continue;
    }
    TrackedFile& t = *it->second;
    t.synced_size = st.st_size;
    t.saved.clear();
    t.unsynced = false;
    t.created_unsynced = false;
    ++it;
  }
}

absl::StatusOr<CutReport> CutVfs::RestoreAfterCut(CutMode mode, std::mt19937_64& rng) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!frozen_) return absl::FailedPreconditionError("RestoreAfterCut: no cut happened");
  if (open_files_ > 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "RestoreAfterCut: ", open_files_, " files are still open through ", kName));
  }
  const bool tear = mode == CutMode::kTearUnsynced;
  auto coin = [&rng] { return (rng() & 1) != 0; };
  CutReport report;
  for (auto& [path, state] : files_) {
    TrackedFile& t = *state;
    ++report.files_tracked;
    if (!t.unsynced && !t.created_unsynced) continue;
    ++report.files_with_unsynced;
    report.db_unsynced |= t.is_db && t.unsynced;
    report.wal_unsynced |= t.is_wal && t.unsynced;
    // Its folder entry was never synced: gone (torn: perhaps kept, empty
    // where its blocks were not written back).
    if (t.created_unsynced && (!tear || coin())) {
      if (unlink(path.c_str()) != 0 && errno != ENOENT) return Errno("unlink", path);
      ++report.files_removed;
      continue;
    }
    int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT) continue;  // deleted since: deletes are durable here
      return Errno("open", path);
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
      absl::Status s = Errno("fstat", path);
      close(fd);
      return s;
    }
    const int64_t current = st.st_size;
    int64_t size = t.synced_size;
    if (tear && current > t.synced_size) {
      // Some of the growth reached the disk: whole blocks of it.
      const int64_t blocks = (current - t.synced_size + kBlock - 1) / kBlock;
      size = std::min(current, t.synced_size + static_cast<int64_t>(rng() % (blocks + 1)) * kBlock);
    } else if (tear && current < t.synced_size && coin()) {
      size = current;  // the truncate reached the disk
    }
    absl::Status status;
    if (size != current && ftruncate(fd, size) != 0) status = Errno("ftruncate", path);
    report.bytes_cut += std::max<int64_t>(0, current - size);
    for (const auto& [block, bytes] : t.saved) {
      if (!status.ok()) break;
      const int64_t offset = block * kBlock;
      if (offset >= size) continue;
      // Bytes past the current end exist only in the saved copy.
      const bool beyond = offset + static_cast<int64_t>(bytes.size()) > current;
      if (tear && !beyond && coin()) continue;  // the new content reached the disk
      const size_t n = static_cast<size_t>(std::min<int64_t>(bytes.size(), size - offset));
      status = WriteAll(fd, bytes.data(), n, offset, path);
      ++report.blocks_reverted;
    }
    if (tear) {
      // Growth that reached the disk may hold blocks that did not: zeros.
      const std::string zeros(kBlock, '\0');
      for (int64_t offset = t.synced_size; status.ok() && offset < size;
           offset = (offset / kBlock + 1) * kBlock) {
        const int64_t end = std::min(size, (offset / kBlock + 1) * kBlock);
        if (rng() % 4 != 0) continue;
        status = WriteAll(fd, zeros.data(), static_cast<size_t>(end - offset), offset, path);
        ++report.blocks_reverted;
      }
    }
    close(fd);
    if (!status.ok()) return status;
  }
  files_.clear();
  frozen_ = false;
  arm_at_ = 0;
  mutations_ = 0;
  return report;
}

}  // namespace surge::testing
