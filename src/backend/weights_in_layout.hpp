// Private to src/backend: a parameter's user-layout weights reordered into the layout a primitive asked
// for, redone only when the parameter's stamp changes (once per optimiser step, not once per call).
#pragma once

#include "backend/dnnl_common.hpp"

namespace flowad {
inline namespace v0 {
namespace detail {

struct weights_in_layout {
  dnnl::memory::desc user_md, scratch_md;
  dnnl::memory blocked;
  dnnl::reorder to_blocked;
  const parameter* source = nullptr;
  std::uint64_t stamp = 0;

  void init(const dnnl::memory::desc& user, const dnnl::memory::desc& wanted) {
    user_md = user;
    blocked = dnnl::memory(wanted, cpu_engine());
    const dnnl::reorder::primitive_desc pd(cpu_engine(), user, cpu_engine(), wanted, user_scratchpad_attr());
    scratch_md = pd.scratchpad_desc();
    to_blocked = dnnl::reorder(pd);
  }
  // Caller holds the owner's mutex.
  void refresh(const parameter& p, exec_context::impl& c, const char* what) {
    if (source == &p && stamp == p.stamp()) return;
    execute(to_blocked, c,
            {{DNNL_ARG_FROM, c.bind(this, DNNL_ARG_FROM, user_md, p.data())},
             {DNNL_ARG_TO, blocked.get()},
             {DNNL_ARG_SCRATCHPAD, c.scratchpad(this, scratch_md)}},
            what);
    source = &p;
    stamp = p.stamp();
  }
};

}  // namespace detail
}  // namespace v0
}  // namespace flowad
