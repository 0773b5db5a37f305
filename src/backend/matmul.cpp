#include <cstring>
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
  bool bf16 = false;  // inputs in bfloat16
  bool operator==(const problem& o) const noexcept {
    return trans_a == o.trans_a && trans_b == o.trans_b && m == o.m && n == o.n && k == o.k && lda == o.lda &&
           ldb == o.ldb && ldc == o.ldc && accumulate == o.accumulate && bf16 == o.bf16;
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
    const dt input = p.bf16 ? dt::bf16 : dt::f32;
    e->a_md = memory::desc({p.m, p.k}, input, p.trans_a ? memory::dims{1, p.lda} : memory::dims{p.lda, 1});
    e->b_md = memory::desc({p.k, p.n}, input, p.trans_b ? memory::dims{1, p.ldb} : memory::dims{p.ldb, 1});
    e->c_md = memory::desc({p.m, p.n}, dt::f32, memory::dims{p.ldc, 1});
    dnnl::primitive_attr attr = user_scratchpad_attr();
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

namespace {

// Finds (or creates) the primitive of `p` and runs it on a, b, c: the one body of run and run_bf16.
template <class Impl>
void run_problem(Impl& impl, const problem& p, const void* a, const void* b, float* c, exec_context& ctx,
                 const char* what) {
  auto& x = ctx.get();
  translate_dnnl(what, [&] {
    typename Impl::entry* e;
    {
      std::lock_guard<std::mutex> lock(impl.mutex);
      e = &impl.find(p);
    }
    execute(e->prim, x,
            {{DNNL_ARG_SRC, x.bind(e, DNNL_ARG_SRC, e->a_md, a)},
             {DNNL_ARG_WEIGHTS, x.bind(e, DNNL_ARG_WEIGHTS, e->b_md, b)},
             {DNNL_ARG_DST, x.bind(e, DNNL_ARG_DST, e->c_md, c)},
             {DNNL_ARG_SCRATCHPAD, x.scratchpad(e, e->scratch_md)}},
            what);
  });
}

}  // namespace

void matmul::run(bool trans_a, bool trans_b, index_t m, index_t n, index_t k, const float* a, index_t lda,
                 const float* b, index_t ldb, float* c, index_t ldc, float beta, exec_context& ctx) const {
  if (beta != 0.0f && beta != 1.0f)
    throw error(errc::invalid_argument, "matmul supports beta 0 or 1, got " + std::to_string(beta));
  run_problem(*impl_, {trans_a, trans_b, m, n, k, lda, ldb, ldc, beta != 0.0f}, a, b, c, ctx,
              "running a matrix product");
}

void matmul::run_bf16(bool trans_a, bool trans_b, index_t m, index_t n, index_t k, const std::uint16_t* a,
                      index_t lda, const std::uint16_t* b, index_t ldb, float* c, index_t ldc, exec_context& ctx) const {
  problem p{trans_a, trans_b, m, n, k, lda, ldb, ldc, false};
  p.bf16 = true;
  run_problem(*impl_, p, a, b, c, ctx, "running a bfloat16 matrix product");
}

bool bfloat16_native() {
  const dnnl::cpu_isa isa = dnnl::get_effective_cpu_isa();
  return isa == dnnl::cpu_isa::avx512_core_bf16 || isa == dnnl::cpu_isa::avx512_core_amx;
}

void to_bfloat16(const float* in, std::uint16_t* out, std::size_t count) {
  for (std::size_t i = 0; i < count; ++i) {
    std::uint32_t bits;
    std::memcpy(&bits, &in[i], sizeof bits);
    if ((bits & 0x7f800000u) == 0x7f800000u && (bits & 0x007fffffu) != 0) {
      out[i] = static_cast<std::uint16_t>((bits >> 16) | 0x0040u);  // NaN stays a (quiet) NaN
      continue;
    }
    bits += 0x7fffu + ((bits >> 16) & 1u);  // round to nearest, ties to even
    out[i] = static_cast<std::uint16_t>(bits >> 16);
  }
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
