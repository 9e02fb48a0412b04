// Implementation of the reader connection pool.
#include "server/core/reader_pool.h"

namespace surge::core {

ReaderPool::Lease::~Lease() {
  if (store_) pool_->Release(std::move(store_));
}

absl::StatusOr<ReaderPool::Lease> ReaderPool::Acquire() {
  {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return !idle_.empty() || open_ < max_open_; });
    if (!idle_.empty()) {
      std::unique_ptr<store::Store> store = std::move(idle_.back());
      idle_.pop_back();
      return Lease(this, std::move(store));
    }
    ++open_;
  }
  store::StoreOptions options;
  options.migrate = false;
  absl::StatusOr<std::unique_ptr<store::Store>> store =
      store::OpenStore(target_, options);
  if (!store.ok()) {
    std::lock_guard<std::mutex> lock(mu_);
    --open_;
    cv_.notify_one();
    return store.status();
  }
  return Lease(this, std::move(*store));
}

void ReaderPool::Release(std::unique_ptr<store::Store> store) {
  std::lock_guard<std::mutex> lock(mu_);
  idle_.push_back(std::move(store));
  cv_.notify_one();
}

}  // namespace surge::core
