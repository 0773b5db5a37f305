#include "flowad/detail/strided_conv2d.hpp"

#include <mutex>
#include <vector>

#include "backend/dnnl_common.hpp"
#include "backend/weights_in_layout.hpp"

namespace flowad {
inline namespace v0 {
namespace detail {

namespace {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

constexpr const char* strided_forward_what = "running a strided forward convolution";
constexpr const char* strided_backward_data_what = "running a strided backward-data convolution";
constexpr const char* strided_backward_weights_what = "running a strided backward-weights convolution";

}  // namespace

struct strided_conv2d::impl {
  config cfg;
  mutable std::mutex mutex;

  struct entry {
    index_t n = 0, h = 0, w = 0;
    memory::desc src_md, dst_md, bias_md, weights_user_md;

    dnnl::convolution_forward::primitive_desc fwd_pd;
    dnnl::convolution_forward fwd;
    memory::desc fwd_scratch_md;
    weights_in_layout fwd_weights;

    bool has_backward = false;
    dnnl::convolution_backward_data bwd_data;
    memory::desc bwd_data_scratch_md;
    weights_in_layout bwd_data_weights;

    dnnl::convolution_backward_weights bwd_weights;
    memory::desc bwd_weights_scratch_md;
    memory diff_weights;       // the primitive's layout
    dnnl::reorder accumulate;  // OIHW gradient += diff_weights (sum post-op)
    memory::desc accumulate_scratch_md;
    std::vector<float> diff_bias;
  };
  std::vector<std::unique_ptr<entry>> entries;

  memory::dims strides() const { return {cfg.stride, cfg.stride}; }
  memory::dims padding() const { return {cfg.kernel / 2, cfg.kernel / 2}; }
  memory::desc weights_any() const {
    return memory::desc({cfg.out_channels, cfg.in_channels, cfg.kernel, cfg.kernel}, dt::f32, tag::any);
  }

  entry& find(index_t n, index_t h, index_t w) {
    for (auto& e : entries)
      if (e->n == n && e->h == h && e->w == w) return *e;
    auto e = std::make_unique<entry>();
    e->n = n;
    e->h = h;
    e->w = w;
    const index_t ho = (h - 1) / cfg.stride + 1, wo = (w - 1) / cfg.stride + 1;
    e->src_md = memory::desc({n, cfg.in_channels, h, w}, dt::f32, tag::nhwc);
    e->dst_md = memory::desc({n, cfg.out_channels, ho, wo}, dt::f32, tag::nhwc);
    e->bias_md = cfg.with_bias ? memory::desc({cfg.out_channels}, dt::f32, tag::x) : memory::desc();
    e->weights_user_md = memory::desc({cfg.out_channels, cfg.in_channels, cfg.kernel, cfg.kernel}, dt::f32, tag::oihw);
    const dnnl::convolution_forward::desc desc(dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct,
                                               e->src_md, weights_any(), e->bias_md, e->dst_md, strides(), padding(),
                                               padding());
    e->fwd_pd = dnnl::convolution_forward::primitive_desc(desc, user_scratchpad_attr(), cpu_engine());
    e->fwd = dnnl::convolution_forward(e->fwd_pd);
    e->fwd_scratch_md = e->fwd_pd.scratchpad_desc();
    e->fwd_weights.init(e->weights_user_md, e->fwd_pd.weights_desc());
    entries.push_back(std::move(e));
    return *entries.back();
  }

  void ensure_backward(entry& e) {
    if (e.has_backward) return;
    const dnnl::convolution_backward_data::desc data_desc(dnnl::algorithm::convolution_direct, e.src_md, weights_any(),
                                                          e.dst_md, strides(), padding(), padding());
    const dnnl::convolution_backward_data::primitive_desc data_pd(data_desc, user_scratchpad_attr(), cpu_engine(), e.fwd_pd);
    e.bwd_data = dnnl::convolution_backward_data(data_pd);
    e.bwd_data_scratch_md = data_pd.scratchpad_desc();
    e.bwd_data_weights.init(e.weights_user_md, data_pd.weights_desc());

    const dnnl::convolution_backward_weights::desc weights_desc(dnnl::algorithm::convolution_direct, e.src_md,
                                                                weights_any(), e.bias_md, e.dst_md, strides(),
                                                                padding(), padding());
    const dnnl::convolution_backward_weights::primitive_desc weights_pd(weights_desc, user_scratchpad_attr(), cpu_engine(),
                                                                        e.fwd_pd);
    e.bwd_weights = dnnl::convolution_backward_weights(weights_pd);
    e.bwd_weights_scratch_md = weights_pd.scratchpad_desc();
    e.diff_weights = memory(weights_pd.diff_weights_desc(), cpu_engine());
    dnnl::primitive_attr sum_attr = user_scratchpad_attr();
    dnnl::post_ops sum;
    sum.append_sum(1.0f);
    sum_attr.set_post_ops(sum);
    const dnnl::reorder::primitive_desc acc_pd(cpu_engine(), weights_pd.diff_weights_desc(), cpu_engine(),
                                               e.weights_user_md, sum_attr);
    e.accumulate_scratch_md = acc_pd.scratchpad_desc();
    e.accumulate = dnnl::reorder(acc_pd);
    e.diff_bias.assign(static_cast<std::size_t>(cfg.with_bias ? cfg.out_channels : 0), 0.0f);
    e.has_backward = true;
  }
};

strided_conv2d::strided_conv2d(const config& cfg) : impl_(std::make_unique<impl>()) {
  if (cfg.in_channels <= 0 || cfg.out_channels <= 0)
    throw error(errc::invalid_argument, "strided convolution channels must be positive (in " +
                                            std::to_string(cfg.in_channels) + ", out " +
                                            std::to_string(cfg.out_channels) + ")");
  if (cfg.kernel <= 0 || cfg.kernel % 2 == 0)
    throw error(errc::invalid_argument,
                "strided convolution kernel must be odd and positive, got " + std::to_string(cfg.kernel));
  if (cfg.stride < 1 || cfg.stride > 64)
    throw error(errc::invalid_argument,
                "strided convolution stride must be in [1, 64], got " + std::to_string(cfg.stride));
  impl_->cfg = cfg;
}
strided_conv2d::~strided_conv2d() = default;
strided_conv2d::strided_conv2d(strided_conv2d&&) noexcept = default;
strided_conv2d& strided_conv2d::operator=(strided_conv2d&&) noexcept = default;

const strided_conv2d::config& strided_conv2d::cfg() const noexcept {
  return impl_->cfg;
}

double strided_conv2d::macs(index_t n, index_t h, index_t w) const noexcept {
  const config& c = impl_->cfg;
  return static_cast<double>(n) * output_size(h) * output_size(w) * c.out_channels * c.in_channels * c.kernel *
         c.kernel;
}

void strided_conv2d::clear_cache() {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  impl_->entries.clear();
}

void strided_conv2d::forward(const float* src, float* dst, index_t n, index_t h, index_t w, const parameter& weights,
                             const parameter* bias, exec_context& ctx) const {
  auto& c = ctx.get();
  translate_dnnl(strided_forward_what, [&] {
    impl::entry* e;
    {
      std::lock_guard<std::mutex> lock(impl_->mutex);
      e = &impl_->find(n, h, w);
      e->fwd_weights.refresh(weights, c, "reordering strided convolution weights");
    }
    const void* owner = &e->fwd;
    if (impl_->cfg.with_bias) {
      execute(e->fwd, c,
              {{DNNL_ARG_SRC, c.bind(owner, DNNL_ARG_SRC, e->src_md, src)},
               {DNNL_ARG_WEIGHTS, e->fwd_weights.blocked.get()},
               {DNNL_ARG_BIAS, c.bind(owner, DNNL_ARG_BIAS, e->bias_md, bias->data())},
               {DNNL_ARG_DST, c.bind(owner, DNNL_ARG_DST, e->dst_md, dst)},
               {DNNL_ARG_SCRATCHPAD, c.scratchpad(owner, e->fwd_scratch_md)}},
              strided_forward_what);
    } else {
      execute(e->fwd, c,
              {{DNNL_ARG_SRC, c.bind(owner, DNNL_ARG_SRC, e->src_md, src)},
               {DNNL_ARG_WEIGHTS, e->fwd_weights.blocked.get()},
               {DNNL_ARG_DST, c.bind(owner, DNNL_ARG_DST, e->dst_md, dst)},
               {DNNL_ARG_SCRATCHPAD, c.scratchpad(owner, e->fwd_scratch_md)}},
              strided_forward_what);
    }
  });
}

void strided_conv2d::backward_data(const float* diff_dst, float* diff_src, index_t n, index_t h, index_t w,
                                   const parameter& weights, exec_context& ctx) const {
  auto& c = ctx.get();
  translate_dnnl(strided_backward_data_what, [&] {
    impl::entry* e;
    {
      std::lock_guard<std::mutex> lock(impl_->mutex);
      e = &impl_->find(n, h, w);
      impl_->ensure_backward(*e);
      e->bwd_data_weights.refresh(weights, c, "reordering strided convolution weights");
    }
    const void* owner = &e->bwd_data;
    execute(e->bwd_data, c,
            {{DNNL_ARG_DIFF_DST, c.bind(owner, DNNL_ARG_DIFF_DST, e->dst_md, diff_dst)},
             {DNNL_ARG_WEIGHTS, e->bwd_data_weights.blocked.get()},
             {DNNL_ARG_DIFF_SRC, c.bind(owner, DNNL_ARG_DIFF_SRC, e->src_md, diff_src)},
             {DNNL_ARG_SCRATCHPAD, c.scratchpad(owner, e->bwd_data_scratch_md)}},
            strided_backward_data_what);
  });
}

void strided_conv2d::backward_weights(const float* src, const float* diff_dst, index_t n, index_t h, index_t w,
                                      parameter& weights, parameter* bias, exec_context& ctx) const {
  auto& c = ctx.get();
  translate_dnnl(strided_backward_weights_what, [&] {
    impl::entry* e;
    {
      std::lock_guard<std::mutex> lock(impl_->mutex);
      e = &impl_->find(n, h, w);
      impl_->ensure_backward(*e);
    }
    const void* owner = &e->bwd_weights;
    if (impl_->cfg.with_bias) {
      execute(e->bwd_weights, c,
              {{DNNL_ARG_SRC, c.bind(owner, DNNL_ARG_SRC, e->src_md, src)},
               {DNNL_ARG_DIFF_DST, c.bind(owner, DNNL_ARG_DIFF_DST, e->dst_md, diff_dst)},
               {DNNL_ARG_DIFF_WEIGHTS, e->diff_weights.get()},
               {DNNL_ARG_DIFF_BIAS, c.bind(owner, DNNL_ARG_DIFF_BIAS, e->bias_md, e->diff_bias.data())},
               {DNNL_ARG_SCRATCHPAD, c.scratchpad(owner, e->bwd_weights_scratch_md)}},
              strided_backward_weights_what);
    } else {
      execute(e->bwd_weights, c,
              {{DNNL_ARG_SRC, c.bind(owner, DNNL_ARG_SRC, e->src_md, src)},
               {DNNL_ARG_DIFF_DST, c.bind(owner, DNNL_ARG_DIFF_DST, e->dst_md, diff_dst)},
               {DNNL_ARG_DIFF_WEIGHTS, e->diff_weights.get()},
               {DNNL_ARG_SCRATCHPAD, c.scratchpad(owner, e->bwd_weights_scratch_md)}},
              strided_backward_weights_what);
    }
    execute(e->accumulate, c,
            {{DNNL_ARG_FROM, e->diff_weights.get()},
             {DNNL_ARG_TO, c.bind(&e->accumulate, DNNL_ARG_TO, e->weights_user_md, weights.grad())},
             {DNNL_ARG_SCRATCHPAD, c.scratchpad(&e->accumulate, e->accumulate_scratch_md)}},
            "accumulating strided convolution weight gradients");
    if (impl_->cfg.with_bias) {
      float* g = bias->grad();
      for (std::size_t i = 0; i < e->diff_bias.size(); ++i) g[i] += e->diff_bias[i];
    }
  });
}

}  // namespace detail
}  // namespace v0
}  // namespace flowad
