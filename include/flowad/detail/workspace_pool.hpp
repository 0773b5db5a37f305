// A pool of workspaces, so that a const model can serve several threads: each call leases a
// workspace and returns it when done. Workspaces are created only when more calls overlap than ever
// before; afterwards leasing allocates nothing.
#pragma once

#include <memory>
#include <mutex>
#include <vector>

#include "flowad/workspace.hpp"

namespace flowad {
inline namespace v0 {
namespace detail {

class workspace_pool {
 public:
  class lease {
   public:
    lease(workspace_pool& pool, std::unique_ptr<workspace> ws) : pool_(&pool), ws_(std::move(ws)) {}
    lease(lease&&) noexcept = default;
    lease& operator=(lease&&) = delete;
    lease(const lease&) = delete;
    ~lease() {
      if (ws_) pool_->give_back(std::move(ws_));
    }
    workspace& operator*() const noexcept { return *ws_; }
    workspace* operator->() const noexcept { return ws_.get(); }

   private:
    workspace_pool* pool_;
    std::unique_ptr<workspace> ws_;
  };

  lease acquire() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!free_.empty()) {
        std::unique_ptr<workspace> ws = std::move(free_.back());
        free_.pop_back();
        return lease(*this, std::move(ws));
      }
      free_.reserve(++created_);  // so that give_back never reallocates
    }
    return lease(*this, std::make_unique<workspace>());
  }

  // Drops every idle workspace (their buffers and oneDNN memory objects).
  void clear() {
    std::lock_guard<std::mutex> lock(mutex_);
    created_ -= free_.size();
    free_.clear();
  }

 private:
  void give_back(std::unique_ptr<workspace> ws) {
    std::lock_guard<std::mutex> lock(mutex_);
    free_.push_back(std::move(ws));
  }
  std::mutex mutex_;
  std::vector<std::unique_ptr<workspace>> free_;
  std::size_t created_ = 0;
};

}  // namespace detail
}  // namespace v0
}  // namespace flowad
