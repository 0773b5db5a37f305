#include <mutex>
#include <vector>

#include "backend/dnnl_common.hpp"

namespace flowad {
inline namespace v0 {
namespace detail {

namespace {
using dnnl::memory;
using dt = memory::data_type;

struct problem {
  bool trans_a, trans_b;
  index_t m, n, k, lda, ldb, ldc;
  bool accumulate;
  bool operator==(const problem& o) const noexcept {
    return trans_a == o.trans_a && trans_b == o.trans_b && m == o.m && n == o.n && k == o.k && lda == o.lda &&
           ldb == o.ldb && ldc == o.ldc && accumulate == o.accumulate;
  }
};
}  // namespace

struct matmul::impl {
  struct entry {
    problem key;
    memory::desc a_md, b_md, c_md;
    memory::desc scratch_md;  // queried once: scratchpad_desc() allocates in oneDNN 2.6
    dnnl::matmul::primitive_desc pd;
    dnnl::matmul prim;
  };
  mutable std::mutex mutex;
  std::vector<std::unique_ptr<entry>> entries;

  entry& find(const problem& p) {
    for (auto& e : entries)
      if (e->key == p) return *e;
    auto e = std::make_unique<entry>();
    e->key = p;
    // Logical A is m x k, B is k x n, C is m x n; strides express the stored (possibly transposed) layout.
    e->a_md = memory::desc({p.m, p.k}, dt::f32, p.trans_a ? memory::dims{1, p.lda} : memory::dims{p.lda, 1});
    e->b_md = memory::desc({p.k, p.n}, dt::f32, p.trans_b ? memory::dims{1, p.ldb} : memory::dims{p.ldb, 1});
    e->c_md = memory::desc({p.m, p.n}, dt::f32, memory::dims{p.ldc, 1});
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    if (p.accumulate) {
      dnnl::post_ops ops;
      ops.append_sum(1.0f);
      attr.set_post_ops(ops);
    }
    e->pd = dnnl::matmul::primitive_desc(dnnl::matmul::desc(e->a_md, e->b_md, e->c_md), attr, cpu_engine());
    e->prim = dnnl::matmul(e->pd);
    e->scratch_md = e->pd.scratchpad_desc();
    entries.push_back(std::move(e));
    return *entries.back();
  }
};

matmul::matmul() : impl_(std::make_unique<impl>()) {}
matmul::~matmul() = default;
matmul::matmul(matmul&&) noexcept = default;
matmul& matmul::operator=(matmul&&) noexcept = default;

void matmul::run(bool trans_a, bool trans_b, index_t m, index_t n, index_t k, const float* a, index_t lda,
                 const float* b, index_t ldb, float* c, index_t ldc, float beta, exec_context& ctx) const {
  if (beta != 0.0f && beta != 1.0f)
    throw error(errc::invalid_argument, "matmul supports beta 0 or 1, got " + std::to_string(beta));
  auto& x = ctx.get();
  translate_dnnl("running a matrix product", [&] {
    impl::entry* e;
    {
      std::lock_guard<std::mutex> lock(impl_->mutex);
      e = &impl_->find({trans_a, trans_b, m, n, k, lda, ldb, ldc, beta != 0.0f});
    }
    execute(e->prim, x,
            {{DNNL_ARG_SRC, x.bind(e, DNNL_ARG_SRC, e->a_md, a)},
             {DNNL_ARG_WEIGHTS, x.bind(e, DNNL_ARG_WEIGHTS, e->b_md, b)},
             {DNNL_ARG_DST, x.bind(e, DNNL_ARG_DST, e->c_md, c)},
             {DNNL_ARG_SCRATCHPAD, x.scratchpad(e, e->scratch_md)}},
            "running a matrix product");
  });
}

std::string matmul::implementation(bool trans_a, bool trans_b, index_t m, index_t n, index_t k) const {
  return translate_dnnl("querying a matrix product", [&] {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    const index_t lda = trans_a ? m : k, ldb = trans_b ? k : n;
    return std::string(impl_->find({trans_a, trans_b, m, n, k, lda, ldb, n, false}).pd.impl_info_str());
  });
}

void matmul::clear_cache() {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  impl_->entries.clear();
}

}  // namespace detail
}  // namespace v0
}  // namespace flowad
