// Private to src/backend: the shared oneDNN engine, the exec_context internals, and execution
// through the C API (the C++ API builds a std::unordered_map of arguments on every call).
#pragma once

#include <dnnl.hpp>

#include <cstring>
#include <initializer_list>
#include <string>
#include <unordered_map>

#include "flowad/detail/backend.hpp"
#include "flowad/error.hpp"

namespace flowad {
inline namespace v0 {
namespace detail {

dnnl::engine& cpu_engine();

[[noreturn]] void rethrow_dnnl(const dnnl::error& e, const char* what);

// Primitive attributes with a user-managed scratchpad: every primitive's scratch memory comes from the
// exec_context (exec_context::impl::scratchpad), so steady-state execution allocates nothing.
inline dnnl::primitive_attr user_scratchpad_attr() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

// Runs f, converting dnnl::error into flowad::error naming the operation.
template <class F>
decltype(auto) translate_dnnl(const char* what, F&& f) {
  try {
    return f();
  } catch (const dnnl::error& e) {
    rethrow_dnnl(e, what);
  }
}

struct scratch_deleter {
  std::size_t bytes = 0;
  void operator()(std::uint8_t* p) const noexcept { free_bytes(p, bytes); }
};

// A buffer that grows to the largest size asked of it and is then reused.
class growing_buffer {
 public:
  void* reserve(std::size_t bytes);

 private:
  std::unique_ptr<std::uint8_t[], scratch_deleter> data_;
};

struct exec_context::impl {
  impl();

  dnnl::stream stream;

  // The memory object for argument `arg` of the cached primitive `owner`, pointing at `data`.
  // Created on first use for this context; afterwards only its data handle changes.
  dnnl_memory_t bind(const void* owner, int arg, const dnnl::memory::desc& md, const void* data);
  // The user-mode scratchpad for `owner`, backed by this context's growing buffer.
  dnnl_memory_t scratchpad(const void* owner, const dnnl::memory::desc& md);
  // A growing buffer of at least `bytes` for a tensor staged in a primitive's own layout; slots
  // 0..staging_slots-1 are distinct buffers, so one primitive can stage several arguments.
  static constexpr int staging_slots = 2;
  void* staging(int slot, std::size_t bytes);

 private:
  struct key {
    const void* owner;
    int arg;
    bool operator==(const key& o) const noexcept { return owner == o.owner && arg == o.arg; }
  };
  struct key_hash {
    std::size_t operator()(const key& k) const noexcept {
      return std::hash<const void*>()(k.owner) * 31u + static_cast<std::size_t>(k.arg);
    }
  };
  std::unordered_map<key, dnnl::memory, key_hash> bound_;
  growing_buffer scratch_;
  growing_buffer staging_[staging_slots];
};

// Executes p on ctx's stream and waits.
void execute(const dnnl::primitive& p, exec_context::impl& ctx, std::initializer_list<dnnl_exec_arg_t> args,
             const char* what);

}  // namespace detail
}  // namespace v0
}  // namespace flowad
