// ReaderPool: read-only Store connections shared by RPC threads (SQLite's
// WAL mode, or PostgreSQL's MVCC, lets readers run beside the single
// writer). Connections are opened lazily, reused, and never more than
// `max_open` at once (callers wait).
#ifndef SURGE_SERVER_CORE_READER_POOL_H_
#define SURGE_SERVER_CORE_READER_POOL_H_

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/store/open_store.h"
#include "server/store/store.h"

namespace surge::core {

class ReaderPool {
 public:
  // A leased connection; returns itself to the pool when destroyed.
  class Lease {
   public:
    Lease(ReaderPool* pool, std::unique_ptr<store::Store> store)
        : pool_(pool), store_(std::move(store)) {}
    Lease(Lease&&) = default;
    ~Lease();
    store::Store* operator->() { return store_.get(); }
    store::Store& operator*() { return *store_; }

   private:
    ReaderPool* pool_;
    std::unique_ptr<store::Store> store_;
  };

  ReaderPool(store::DbTarget target, int max_open)
      : target_(std::move(target)), max_open_(max_open) {}

  absl::StatusOr<Lease> Acquire();

 private:
  void Release(std::unique_ptr<store::Store> store);

  const store::DbTarget target_;
  const int max_open_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<store::Store>> idle_;
  int open_ = 0;
};

}  // namespace surge::core

#endif  // SURGE_SERVER_CORE_READER_POOL_H_
