// A pool of workspaces (or of any per-call state), so that a const model can serve several threads:
// each call leases one and returns it when done. They are created only when more calls overlap than
// ever before; afterwards leasing allocates nothing.
#pragma once

#include <memory>
#include <mutex>
#include <vector>

#include "flowad/workspace.hpp"

namespace flowad {
inline namespace v0 {
namespace detail {

template <class T>
class object_pool {
 public:
  class lease {
   public:
    lease(object_pool& pool, std::unique_ptr<T> ws) : pool_(&pool), ws_(std::move(ws)) {}
    lease(lease&&) noexcept = default;
    lease& operator=(lease&&) = delete;
    lease(const lease&) = delete;
    ~lease() {
      if (ws_) pool_->give_back(std::move(ws_));
    }
    T& operator*() const noexcept { return *ws_; }
    T* operator->() const noexcept { return ws_.get(); }

   private:
    object_pool* pool_;
    std::unique_ptr<T> ws_;
  };

  lease acquire() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!free_.empty()) {
        std::unique_ptr<T> ws = std::move(free_.back());
        free_.pop_back();
        return lease(*this, std::move(ws));
      }
      free_.reserve(++created_);  // so that give_back never reallocates
    }
    return lease(*this, std::make_unique<T>());
  }

  // Drops every idle one (their buffers and oneDNN memory objects).
  void clear() {
    std::lock_guard<std::mutex> lock(mutex_);
    created_ -= free_.size();
    free_.clear();
  }

 private:
  void give_back(std::unique_ptr<T> ws) {
    std::lock_guard<std::mutex> lock(mutex_);
    free_.push_back(std::move(ws));
  }
  std::mutex mutex_;
  std::vector<std::unique_ptr<T>> free_;
  std::size_t created_ = 0;
};

using workspace_pool = object_pool<workspace>;

}  // namespace detail
}  // namespace v0
}  // namespace flowad
