#include <new>

#include "backend/dnnl_common.hpp"

namespace flowad {
inline namespace v0 {
namespace detail {

dnnl::engine& cpu_engine() {
  static dnnl::engine engine = translate_dnnl("creating the CPU engine", [] { return dnnl::engine(dnnl::engine::kind::cpu, 0); });
  return engine;
}

void rethrow_dnnl(const dnnl::error& e, const char* what) {
  throw error(errc::backend, std::string("oneDNN failed while ") + what + ": " + e.what() + " (status " +
                                 std::to_string(static_cast<int>(e.status)) + ")");
}

exec_context::impl::impl() : stream(translate_dnnl("creating a stream", [] { return dnnl::stream(cpu_engine()); })) {}

dnnl_memory_t exec_context::impl::bind(const void* owner, int arg, const dnnl::memory::desc& md, const void* data) {
  auto it = bound_.find(key{owner, arg});
  if (it == bound_.end() || it->second.get_desc() != md) {
    dnnl::memory m = translate_dnnl("creating a memory object", [&] {
      return dnnl::memory(md, cpu_engine(), DNNL_MEMORY_NONE);
    });
    it = bound_.insert_or_assign(key{owner, arg}, std::move(m)).first;
  }
  const dnnl_status_t status = dnnl_memory_set_data_handle(it->second.get(), const_cast<void*>(data));
  if (status != dnnl_success)
    throw error(errc::backend, "oneDNN could not bind a buffer (status " + std::to_string(status) + ")");
  return it->second.get();
}

void* growing_buffer::reserve(std::size_t bytes) {
  if (bytes > data_.get_deleter().bytes) {
    data_.reset();
    data_ = decltype(data_)(static_cast<std::uint8_t*>(allocate_bytes(bytes)), scratch_deleter{bytes});
  }
  return data_.get();
}

dnnl_memory_t exec_context::impl::scratchpad(const void* owner, const dnnl::memory::desc& md) {
  return bind(owner, DNNL_ARG_SCRATCHPAD, md, scratch_.reserve(md.get_size()));
}

void* exec_context::impl::staging(int slot, std::size_t bytes) { return staging_[slot].reserve(bytes); }

void execute(const dnnl::primitive& p, exec_context::impl& ctx, std::initializer_list<dnnl_exec_arg_t> args,
             const char* what) {
  dnnl_status_t status =
      dnnl_primitive_execute(p.get(), ctx.stream.get(), static_cast<int>(args.size()), args.begin());
  if (status == dnnl_success) status = dnnl_stream_wait(ctx.stream.get());
  if (status != dnnl_success)
    throw error(errc::backend, std::string("oneDNN failed while ") + what + " (status " + std::to_string(status) + ")");
}

exec_context::exec_context() : impl_(std::make_unique<impl>()) {}
exec_context::~exec_context() = default;

}  // namespace detail
}  // namespace v0
}  // namespace flowad
