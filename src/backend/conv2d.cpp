#include <mutex>
#include <optional>
#include <vector>

#include "backend/dnnl_common.hpp"
#include "kernels/channel_affine.hpp"

namespace flowad {
inline namespace v0 {
namespace detail {

namespace {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

// A copy of a parameter in the layout a primitive prefers, rebuilt when the parameter's stamp changes.
struct reordered_weights {
  memory user;     // plain OIHW, bound to the parameter's buffer
  memory blocked;  // the primitive's layout
  dnnl::reorder to_blocked;
  memory::desc scratch_md;
  const parameter* source = nullptr;
  std::uint64_t stamp = 0;

  void init(const memory::desc& user_md, const memory::desc& blocked_md) {
    user = memory(user_md, cpu_engine(), DNNL_MEMORY_NONE);
    blocked = memory(blocked_md, cpu_engine());
    dnnl::reorder::primitive_desc pd(cpu_engine(), user_md, cpu_engine(), blocked_md, user_scratchpad_attr());
    scratch_md = pd.scratchpad_desc();
    to_blocked = dnnl::reorder(pd);
  }

  // Backward data as a forward convolution: the weights with input and output channels swapped and
  // the kernel turned by 180 degrees, staged here in plain OIHW before the reorder.
  bool transposed = false;
  aligned_vector<float> staged;
  index_t out_channels = 0, in_channels = 0, kernel = 0;  // of the original weights

  void init_transposed(index_t out, index_t in, index_t k, const memory::desc& blocked_md) {
    transposed = true;
    out_channels = out;
    in_channels = in;
    kernel = k;
    staged.assign(static_cast<std::size_t>(out * in * k * k), 0.0f);
    const memory::desc staged_md({in, out, k, k}, memory::data_type::f32, memory::format_tag::oihw);
    init(staged_md, blocked_md);
    user.set_data_handle(staged.data());
  }

  // Caller holds the owning conv2d's mutex.
  void refresh(const parameter& p, exec_context::impl& ctx) {
    if (source == &p && stamp == p.stamp()) return;
    if (transposed) {
      const index_t kk = kernel * kernel;
      const float* w = p.data();
      for (index_t o = 0; o < out_channels; ++o)
        for (index_t i = 0; i < in_channels; ++i)
          for (index_t t = 0; t < kk; ++t)
            staged[static_cast<std::size_t>((i * out_channels + o) * kk + (kk - 1 - t))] = w[(o * in_channels + i) * kk + t];
    } else {
      user.set_data_handle(const_cast<float*>(p.data()));
    }
    execute(to_blocked, ctx,
            {{DNNL_ARG_FROM, user.get()},
             {DNNL_ARG_TO, blocked.get()},
             {DNNL_ARG_SCRATCHPAD, ctx.scratchpad(this, scratch_md)}},
            "reordering convolution weights");
    source = &p;
    stamp = p.stamp();
  }
};

// An argument the caller passes as dense NHWC while the primitive works in its own layout (the
// Winograd kernels' nChw16c): staged through one of the context's staging buffers by a cached
// reorder. When the two layouts agree, the caller's buffer is bound directly.
struct staged_tensor {
  memory::desc user_md, prim_md;
  dnnl::reorder reorder;  // user → primitive layout for an input, the reverse for an output
  memory::desc reorder_scratch_md;
  int slot = 0;
  bool staged = false;

  void init(const memory::desc& user, const memory::desc& prim, bool input, int staging_slot) {
    user_md = user;
    prim_md = prim;
    slot = staging_slot;
    staged = user != prim;
    if (!staged) return;
    const dnnl::reorder::primitive_desc pd = input ? dnnl::reorder::primitive_desc(cpu_engine(), user, cpu_engine(), prim,
                                                                                   user_scratchpad_attr())
                                                   : dnnl::reorder::primitive_desc(cpu_engine(), prim, cpu_engine(), user,
                                                                                   user_scratchpad_attr());
    reorder_scratch_md = pd.scratchpad_desc();
    reorder = dnnl::reorder(pd);
  }

  void* buffer(exec_context::impl& ctx) const { return ctx.staging(slot, prim_md.get_size()); }

  void run_reorder(exec_context::impl& ctx, const void* from_data, const memory::desc& from_md, void* to_data,
                   const memory::desc& to_md, const char* what) const {
    execute(reorder, ctx,
            {{DNNL_ARG_FROM, ctx.bind(this, DNNL_ARG_FROM, from_md, from_data)},
             {DNNL_ARG_TO, ctx.bind(this, DNNL_ARG_TO, to_md, to_data)},
             {DNNL_ARG_SCRATCHPAD, ctx.scratchpad(this, reorder_scratch_md)}},
            what);
  }

  // The primitive's argument for the input at `data`, staged first if needed.
  dnnl_memory_t input(exec_context::impl& ctx, const void* owner, int arg, const float* data, const char* what) const {
    if (!staged) return ctx.bind(owner, arg, user_md, data);
    void* staged_data = buffer(ctx);
    run_reorder(ctx, data, user_md, staged_data, prim_md, what);
    return ctx.bind(owner, arg, prim_md, staged_data);
  }

  // As input(), but without staging again what `other` has just staged into the same buffer and layout.
  dnnl_memory_t input_staged_by(const staged_tensor& other, exec_context::impl& ctx, const void* owner, int arg,
                                const float* data, const char* what) const {
    if (staged && other.staged && slot == other.slot && prim_md == other.prim_md)
      return ctx.bind(owner, arg, prim_md, buffer(ctx));
    return input(ctx, owner, arg, data, what);
  }

  // The primitive's argument for the output to `data`; finish_output copies a staged result there.
  dnnl_memory_t output(exec_context::impl& ctx, const void* owner, int arg, float* data) const {
    return staged ? ctx.bind(owner, arg, prim_md, buffer(ctx)) : ctx.bind(owner, arg, user_md, data);
  }
  void finish_output(exec_context::impl& ctx, float* data, const char* what) const {
    if (staged) run_reorder(ctx, buffer(ctx), prim_md, data, user_md, what);
  }
};

}  // namespace

struct conv2d::impl {
  config cfg;
  mutable std::mutex mutex;

  // A forward convolution primitive with its weights in the primitive's layout and its staging.
  struct forward_pass {
    dnnl::convolution_forward::primitive_desc pd;
    dnnl::convolution_forward prim;
    // Queried once: primitive_desc's queries build a std::vector on every call in oneDNN 2.6.
    memory::desc scratch_md, bias_md;
    // Leaky ReLU after a Winograd convolution, in place on its (staged) output: oneDNN 2.6's Winograd
    // kernels take ReLU as a post-op but not leaky ReLU. Empty when the activation is fused.
    dnnl::eltwise_forward activation;
    memory::desc activation_scratch_md;
    reordered_weights weights;
    staged_tensor src, dst;
  };

  struct entry {
    index_t n = 0, h = 0, w = 0;
    memory::desc src_md, dst_md, bias_md, weights_user_md;  // the caller's: NHWC, OIHW
    bool winograd = false;
    memory::desc bwd_data_scratch_md, bwd_weights_scratch_md;

    forward_pass fwd;  // forward_training: forward(), and the hint of the backward primitives
    // forward_inference, for forward_into (inference only), made on its first call where fwd is
    // Winograd on few output tiles (pretransformed_tile_limit): oneDNN's Winograd inference kernels take
    // their weights transformed once, when the weights change, instead of on every call. Null
    // otherwise: fwd serves inference too.
    std::unique_ptr<forward_pass> inference;
    bool inference_tried = false;  // whether oneDNN was asked for `inference` (it may have no Winograd)

    bool has_backward = false;
    // The gradient of a stride-1 "same" convolution with respect to its input is the forward
    // convolution of diff_dst with the transposed, flipped kernel. oneDNN 2.6 runs that on its brgemm
    // (or Winograd) forward kernels, faster than its own backward-data ones (docs/performance.md: 1.5x
    // for the direct 3x3 convolutions of fastflow_256's training step).
    dnnl::convolution_forward::primitive_desc bwd_data_pd;
    dnnl::convolution_forward bwd_data;
    reordered_weights bwd_data_weights;
    staged_tensor bwd_data_src, bwd_data_dst;

    dnnl::convolution_backward_weights::primitive_desc bwd_weights_pd;
    dnnl::convolution_backward_weights bwd_weights;
    staged_tensor bwd_weights_src, bwd_weights_diff_dst;
    memory diff_weights;           // the primitive's layout, owned here
    memory diff_weights_user;      // plain OIHW, bound to the parameter's gradient
    dnnl::reorder accumulate_diff_weights;  // user += blocked (sum post-op)
    memory::desc accumulate_scratch_md;
    // The bias gradient: oneDNN 2.6's direct backward-weights kernels sum diff_dst per channel in an
    // SSE loop outside their JIT code; summed by kernels::channel_sums instead, backward weights of the
    // compact preset's 32>256 convolution at 32x32 and batch 16 went from 3.2 to 1.4 ms
    // (docs/performance.md). Winograd's kernels compute it themselves and keep it.
    bool bias_in_primitive = false;
    aligned_vector<float> diff_bias;                   // the primitive's output, when bias_in_primitive
    aligned_vector<double> bias_sums, bias_partials;  // channel_sums' output and scratch, otherwise
  };
  std::vector<std::unique_ptr<entry>> entries;

  memory::dims strides() const { return {1, 1}; }
  memory::dims padding() const { return {cfg.kernel / 2, cfg.kernel / 2}; }

  // Winograd's 4x4 output tiles of a batch of n maps of h x w.
  static index_t output_tiles(index_t n, index_t h, index_t w) { return n * ((h + 3) / 4) * ((w + 3) / 4); }
  static constexpr index_t min_winograd_tiles = 64;

  // Winograd F(4x4, 3x3) where oneDNN implements it (3x3 kernels, AVX-512): a quarter of the direct
  // method's multiplications in its products, plus transforms; 1.5-2.2x faster per pass on the flows'
  // shapes, staging included (docs/performance.md). It works on nChw16c, so its activations are staged.
  bool wants_winograd() const { return cfg.algorithm == conv_algorithm::automatic && cfg.kernel == 3; }

  // A Winograd forward convolution with oneDNN's layouts, or nothing where oneDNN does not implement
  // it for this shape, ISA or post-op.
  std::optional<dnnl::convolution_forward::primitive_desc> winograd_pd(dnnl::prop_kind prop,
                                                                       const memory::desc& src_md,
                                                                       const memory::desc& weights_any,
                                                                       const memory::desc& bias_md,
                                                                       const memory::desc& dst_md,
                                                                       const dnnl::primitive_attr& attr) const {
    const memory::desc src_any(src_md.dims(), dt::f32, tag::any), dst_any(dst_md.dims(), dt::f32, tag::any);
    try {
      dnnl::convolution_forward::desc desc(prop, dnnl::algorithm::convolution_winograd, src_any, weights_any, bias_md,
                                           dst_any, strides(), padding(), padding());
      return dnnl::convolution_forward::primitive_desc(desc, attr, cpu_engine());
    } catch (const dnnl::error&) {
      return std::nullopt;
    }
  }

  // The direct method on the caller's NHWC descriptors.
  dnnl::convolution_forward::primitive_desc direct_pd(dnnl::prop_kind prop, const memory::desc& src_md,
                                                      const memory::desc& weights_any, const memory::desc& bias_md,
                                                      const memory::desc& dst_md,
                                                      const dnnl::primitive_attr& attr) const {
    dnnl::convolution_forward::desc desc(prop, dnnl::algorithm::convolution_direct, src_md, weights_any, bias_md, dst_md,
                                         strides(), padding(), padding());
    return dnnl::convolution_forward::primitive_desc(desc, attr, cpu_engine());
  }

  // Winograd when wanted and available, else the direct method.
  dnnl::convolution_forward::primitive_desc forward_pd(dnnl::prop_kind prop, const memory::desc& src_md,
                                                       const memory::desc& weights_any, const memory::desc& bias_md,
                                                       const memory::desc& dst_md,
                                                       const dnnl::primitive_attr& attr) const {
    if (wants_winograd())
      if (auto pd = winograd_pd(prop, src_md, weights_any, bias_md, dst_md, attr)) return *pd;
    return direct_pd(prop, src_md, weights_any, bias_md, dst_md, attr);
  }

  // The training or inference forward pass for a shape, its weights refreshed (under the mutex); its
  // primitive on bound arguments; and the whole pass on the caller's NHWC buffers, staging included.
  forward_pass& forward_entry(index_t n, index_t h, index_t w, const parameter& weights, bool inference,
                              exec_context::impl& c);
  void run_forward(forward_pass& f, dnnl_memory_t src_mem, dnnl_memory_t dst_mem, const parameter* bias,
                   exec_context::impl& c) const;
  void forward_on(forward_pass& f, const float* src, float* dst, const parameter* bias, exec_context::impl& c) const;

  entry& backward_entry(index_t n, index_t h, index_t w, const parameter* data_weights, exec_context::impl& c);
  void run_backward_data(entry& e, dnnl_memory_t diff_dst_mem, float* diff_src, exec_context::impl& c);
  // diff_dst is the caller's NHWC buffer, diff_dst_mem the primitive's (possibly staged) copy of it.
  void run_backward_weights(entry& e, dnnl_memory_t src_mem, const float* diff_dst, dnnl_memory_t diff_dst_mem,
                            parameter& weights, parameter* bias, exec_context::impl& c);

  entry& find(index_t n, index_t h, index_t w) {
    for (auto& e : entries)
      if (e->n == n && e->h == h && e->w == w) return *e;
    auto e = std::make_unique<entry>();
    e->n = n;
    e->h = h;
    e->w = w;
    e->src_md = memory::desc({n, cfg.in_channels, h, w}, dt::f32, tag::nhwc);
    e->dst_md = memory::desc({n, cfg.out_channels, h, w}, dt::f32, tag::nhwc);
    e->bias_md = cfg.with_bias ? memory::desc({cfg.out_channels}, dt::f32, tag::x) : memory::desc();
    e->weights_user_md = memory::desc({cfg.out_channels, cfg.in_channels, cfg.kernel, cfg.kernel}, dt::f32, tag::oihw);
    e->winograd = init_forward(e->fwd, dnnl::prop_kind::forward_training, *e);
    entries.push_back(std::move(e));
    return *entries.back();
  }

  // Builds f for prop on e's shape: Winograd when wanted and available, else the direct method.
  // Returns whether it is Winograd.
  bool init_forward(forward_pass& f, dnnl::prop_kind prop, const entry& e) const {
    const memory::desc weights_any({cfg.out_channels, cfg.in_channels, cfg.kernel, cfg.kernel}, dt::f32, tag::any);
    dnnl::primitive_attr attr = user_scratchpad_attr();
    if (cfg.act != activation::none) {
      dnnl::post_ops ops;
      ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu,
                         cfg.act == activation::leaky_relu ? cfg.negative_slope : 0.0f, 0.0f);
      attr.set_post_ops(ops);
    }
    std::optional<dnnl::convolution_forward::primitive_desc> pd;
    // Training-mode Winograd transforms the weights on every call: on few output tiles that costs more
    // than it saves (bench_conv2d, RD's 512→512 on 8x8 at batch 1: 4.1 ms against the direct 0.93;
    // 256→256 on 16x16: 1.27 against 0.90; from 64 tiles on it wins, 0.87 against 1.13 on 32x32).
    // Inference with the weights transformed ahead (forward_entry) wins on few tiles too.
    const bool enough_tiles = prop == dnnl::prop_kind::forward_inference || output_tiles(e.n, e.h, e.w) >= min_winograd_tiles;
    if (wants_winograd() && enough_tiles) {
      pd = winograd_pd(prop, e.src_md, weights_any, e.bias_md, e.dst_md, attr);
      // Winograd rejects a leaky-ReLU post-op: without it, then the separate activation.
      if (!pd && cfg.act == activation::leaky_relu) {
        pd = winograd_pd(prop, e.src_md, weights_any, e.bias_md, e.dst_md, user_scratchpad_attr());
        if (pd) {
          dnnl::eltwise_forward::desc act(dnnl::prop_kind::forward_inference, dnnl::algorithm::eltwise_relu,
                                          pd->dst_desc(), cfg.negative_slope, 0.0f);
          dnnl::eltwise_forward::primitive_desc act_pd(act, user_scratchpad_attr(), cpu_engine());
          f.activation_scratch_md = act_pd.scratchpad_desc();
          f.activation = dnnl::eltwise_forward(act_pd);
        }
      }
    }
    f.pd = pd ? *pd : direct_pd(prop, e.src_md, weights_any, e.bias_md, e.dst_md, attr);
    f.prim = dnnl::convolution_forward(f.pd);
    f.scratch_md = f.pd.scratchpad_desc();
    f.bias_md = e.bias_md;
    f.weights.init(e.weights_user_md, f.pd.weights_desc());
    f.src.init(e.src_md, f.pd.src_desc(), true, 0);
    f.dst.init(e.dst_md, f.pd.dst_desc(), false, 1);
    return pd.has_value();
  }

  void ensure_backward(entry& e) {
    if (e.has_backward) return;
    const memory::desc weights_any({cfg.out_channels, cfg.in_channels, cfg.kernel, cfg.kernel}, dt::f32, tag::any);
    const dnnl::primitive_attr attr = user_scratchpad_attr();

    const memory::desc transposed_any({cfg.in_channels, cfg.out_channels, cfg.kernel, cfg.kernel}, dt::f32, tag::any);
    // Backward data follows the forward's algorithm (on few tiles the direct method, init_forward).
    e.bwd_data_pd = e.winograd ? forward_pd(dnnl::prop_kind::forward_inference, e.dst_md, transposed_any, memory::desc(),
                                            e.src_md, attr)
                               : direct_pd(dnnl::prop_kind::forward_inference, e.dst_md, transposed_any, memory::desc(),
                                           e.src_md, attr);
    e.bwd_data = dnnl::convolution_forward(e.bwd_data_pd);
    e.bwd_data_scratch_md = e.bwd_data_pd.scratchpad_desc();
    e.bwd_data_weights.init_transposed(cfg.out_channels, cfg.in_channels, cfg.kernel, e.bwd_data_pd.weights_desc());
    // diff_dst in slot 1 for both backward passes, so that backward() stages it once.
    e.bwd_data_src.init(e.dst_md, e.bwd_data_pd.src_desc(), true, 1);
    e.bwd_data_dst.init(e.src_md, e.bwd_data_pd.dst_desc(), false, 0);

    // Backward weights follows the forward's algorithm where oneDNN has it, else the direct method.
    auto weights_pd = [&](dnnl::algorithm algorithm, const memory::desc& src_md, const memory::desc& diff_dst_md) {
      const bool winograd = algorithm == dnnl::algorithm::convolution_winograd;
      dnnl::convolution_backward_weights::desc desc(algorithm, src_md, weights_any,
                                                    winograd ? e.bias_md : memory::desc(), diff_dst_md, strides(),
                                                    padding(), padding());
      return dnnl::convolution_backward_weights::primitive_desc(desc, attr, cpu_engine(), e.fwd.pd);
    };
    bool weights_winograd = false;
    if (e.winograd) {
      try {
        e.bwd_weights_pd =
            weights_pd(dnnl::algorithm::convolution_winograd, e.fwd.pd.src_desc(), e.fwd.pd.dst_desc());
        weights_winograd = true;
      } catch (const dnnl::error&) {
        // Not implemented for this shape: the direct method below.
      }
    }
    if (!weights_winograd) e.bwd_weights_pd = weights_pd(dnnl::algorithm::convolution_direct, e.src_md, e.dst_md);
    e.bwd_weights = dnnl::convolution_backward_weights(e.bwd_weights_pd);
    e.bwd_weights_scratch_md = e.bwd_weights_pd.scratchpad_desc();
    e.bwd_weights_src.init(e.src_md, e.bwd_weights_pd.src_desc(), true, 0);
    e.bwd_weights_diff_dst.init(e.dst_md, e.bwd_weights_pd.diff_dst_desc(), true, 1);
    e.diff_weights = memory(e.bwd_weights_pd.diff_weights_desc(), cpu_engine());
    e.diff_weights_user = memory(e.weights_user_md, cpu_engine(), DNNL_MEMORY_NONE);

    dnnl::primitive_attr accumulate = user_scratchpad_attr();
    dnnl::post_ops sum;
    sum.append_sum(1.0f);
    accumulate.set_post_ops(sum);
    dnnl::reorder::primitive_desc acc_pd(cpu_engine(), e.bwd_weights_pd.diff_weights_desc(), cpu_engine(),
                                         e.weights_user_md, accumulate);
    e.accumulate_scratch_md = acc_pd.scratchpad_desc();
    e.accumulate_diff_weights = dnnl::reorder(acc_pd);
    const auto bias_size = static_cast<std::size_t>(cfg.with_bias ? cfg.out_channels : 0);
    e.bias_in_primitive = weights_winograd;
    e.diff_bias.assign(e.bias_in_primitive ? bias_size : 0, 0.0f);
    e.bias_sums.assign(e.bias_in_primitive ? 0 : bias_size, 0.0);
    e.has_backward = true;
  }
};

conv2d::conv2d(const config& cfg) : impl_(std::make_unique<impl>()) {
  if (cfg.in_channels <= 0 || cfg.out_channels <= 0)
    throw error(errc::invalid_argument, "convolution channels must be positive (in " + std::to_string(cfg.in_channels) +
                                            ", out " + std::to_string(cfg.out_channels) + ")");
  if (cfg.kernel <= 0 || cfg.kernel % 2 == 0)
    throw error(errc::invalid_argument, "convolution kernel must be odd and positive, got " + std::to_string(cfg.kernel));
  impl_->cfg = cfg;
}
conv2d::~conv2d() = default;
conv2d::conv2d(conv2d&&) noexcept = default;
conv2d& conv2d::operator=(conv2d&&) noexcept = default;

const conv2d::config& conv2d::cfg() const noexcept { return impl_->cfg; }

double conv2d::macs(index_t n, index_t h, index_t w) const noexcept {
  const config& c = impl_->cfg;
  return static_cast<double>(n) * h * w * c.out_channels * c.in_channels * c.kernel * c.kernel;
}

namespace {
constexpr const char* forward_what = "running a forward convolution";

// Winograd inference with weights transformed ahead pays where the per-call transform weighs most
// against the work, on few 4x4 output tiles; the transformed weights take 4x the memory and stream from
// memory on every call. Scoring at batch 1, 2 threads (docs/performance.md): msflow_seed (36 tiles)
// 12-15% faster, fastflow_256 (256 tiles) 2-4%; at batch 16 (576 and 4096 tiles) no faster, and
// fastflow_256 about 4% slower.
constexpr index_t pretransformed_tile_limit = 256;
}  // namespace

conv2d::impl::forward_pass& conv2d::impl::forward_entry(index_t n, index_t h, index_t w, const parameter& weights,
                                                        bool inference, exec_context::impl& c) {
  std::lock_guard<std::mutex> lock(mutex);
  entry& e = find(n, h, w);
  forward_pass* f = &e.fwd;
  if (inference && wants_winograd() && output_tiles(n, h, w) <= pretransformed_tile_limit) {
    if (!e.inference_tried) {
      auto pass = std::make_unique<forward_pass>();
      if (init_forward(*pass, dnnl::prop_kind::forward_inference, e)) e.inference = std::move(pass);
      e.inference_tried = true;
    }
    if (e.inference) f = e.inference.get();
  }
  f->weights.refresh(weights, c);
  return *f;
}

// Arguments are bound under &f: the training and inference passes of an entry bind different layouts.
void conv2d::impl::run_forward(forward_pass& f, dnnl_memory_t src_mem, dnnl_memory_t dst_mem, const parameter* bias,
                               exec_context::impl& c) const {
  if (cfg.with_bias) {
    execute(f.prim, c,
            {{DNNL_ARG_SRC, src_mem},
             {DNNL_ARG_WEIGHTS, f.weights.blocked.get()},
             {DNNL_ARG_BIAS, c.bind(&f, DNNL_ARG_BIAS, f.bias_md, bias->data())},
             {DNNL_ARG_DST, dst_mem},
             {DNNL_ARG_SCRATCHPAD, c.scratchpad(&f, f.scratch_md)}},
            forward_what);
  } else {
    execute(f.prim, c,
            {{DNNL_ARG_SRC, src_mem},
             {DNNL_ARG_WEIGHTS, f.weights.blocked.get()},
             {DNNL_ARG_DST, dst_mem},
             {DNNL_ARG_SCRATCHPAD, c.scratchpad(&f, f.scratch_md)}},
            forward_what);
  }
  if (f.activation)
    execute(f.activation, c,
            {{DNNL_ARG_SRC, dst_mem},
             {DNNL_ARG_DST, dst_mem},
             {DNNL_ARG_SCRATCHPAD, c.scratchpad(&f.activation, f.activation_scratch_md)}},
            forward_what);
}

void conv2d::impl::forward_on(forward_pass& f, const float* src, float* dst, const parameter* bias,
                              exec_context::impl& c) const {
  const dnnl_memory_t src_mem = f.src.input(c, &f, DNNL_ARG_SRC, src, forward_what);
  run_forward(f, src_mem, f.dst.output(c, &f, DNNL_ARG_DST, dst), bias, c);
  f.dst.finish_output(c, dst, forward_what);
}

void conv2d::forward(const float* src, float* dst, index_t n, index_t h, index_t w, const parameter& weights,
                     const parameter* bias, exec_context& ctx) const {
  auto& c = ctx.get();
  translate_dnnl(forward_what, [&] {
    impl_->forward_on(impl_->forward_entry(n, h, w, weights, false, c), src, dst, bias, c);
  });
}

void conv2d::forward_into(const conv2d& next, const float* src, float* hidden, float* dst, index_t n, index_t h,
                          index_t w, const parameter& weights, const parameter* bias, const parameter& next_weights,
                          const parameter* next_bias, exec_context& ctx) const {
  if (next.impl_->cfg.in_channels != impl_->cfg.out_channels)
    throw error(errc::shape_mismatch, "chained convolutions: the second takes " +
                                          std::to_string(next.impl_->cfg.in_channels) + " channels, the first gives " +
                                          std::to_string(impl_->cfg.out_channels));
  auto& c = ctx.get();
  translate_dnnl(forward_what, [&] {
    impl::forward_pass& first = impl_->forward_entry(n, h, w, weights, true, c);
    impl::forward_pass& second = next.impl_->forward_entry(n, h, w, next_weights, true, c);
    const bool chained = first.dst.staged && second.src.staged && first.dst.prim_md == second.src.prim_md &&
                         second.dst.staged;
    if (!chained) {
      impl_->forward_on(first, src, hidden, bias, c);
      next.impl_->forward_on(second, hidden, dst, next_bias, c);
      return;
    }
    // first: staging slot 0 → slot 1 (the intermediate); second: slot 1 → slot 0 → dst.
    const dnnl_memory_t src_mem = first.src.input(c, &first, DNNL_ARG_SRC, src, forward_what);
    void* intermediate = c.staging(1, first.dst.prim_md.get_size());
    impl_->run_forward(first, src_mem, c.bind(&first, DNNL_ARG_DST, first.dst.prim_md, intermediate), bias, c);
    void* result = c.staging(0, second.dst.prim_md.get_size());
    next.impl_->run_forward(second, c.bind(&second, DNNL_ARG_SRC, second.src.prim_md, intermediate),
                            c.bind(&second, DNNL_ARG_DST, second.dst.prim_md, result), next_bias, c);
    second.dst.run_reorder(c, result, second.dst.prim_md, dst, second.dst.user_md, forward_what);
  });
}

namespace {
constexpr const char* backward_data_what = "running a backward-data convolution";
constexpr const char* backward_weights_what = "running a backward-weights convolution";
}  // namespace

conv2d::impl::entry& conv2d::impl::backward_entry(index_t n, index_t h, index_t w, const parameter* data_weights,
                                                  exec_context::impl& c) {
  std::lock_guard<std::mutex> lock(mutex);
  entry& e = find(n, h, w);
  ensure_backward(e);
  if (data_weights) e.bwd_data_weights.refresh(*data_weights, c);
  return e;
}

void conv2d::impl::run_backward_data(entry& e, dnnl_memory_t diff_dst_mem, float* diff_src, exec_context::impl& c) {
  // Distinct owner keys: the forward pass binds the same argument ids for this entry.
  const void* owner = &e.bwd_data;
  execute(e.bwd_data, c,
          {{DNNL_ARG_SRC, diff_dst_mem},
           {DNNL_ARG_WEIGHTS, e.bwd_data_weights.blocked.get()},
           {DNNL_ARG_DST, e.bwd_data_dst.output(c, owner, DNNL_ARG_DST, diff_src)},
           {DNNL_ARG_SCRATCHPAD, c.scratchpad(owner, e.bwd_data_scratch_md)}},
          backward_data_what);
  e.bwd_data_dst.finish_output(c, diff_src, backward_data_what);
}

void conv2d::impl::run_backward_weights(entry& e, dnnl_memory_t src_mem, const float* diff_dst,
                                        dnnl_memory_t diff_dst_mem, parameter& weights, parameter* bias,
                                        exec_context::impl& c) {
  const void* owner = &e.bwd_weights;
  if (cfg.with_bias && e.bias_in_primitive) {
    execute(e.bwd_weights, c,
            {{DNNL_ARG_SRC, src_mem},
             {DNNL_ARG_DIFF_DST, diff_dst_mem},
             {DNNL_ARG_DIFF_WEIGHTS, e.diff_weights.get()},
             {DNNL_ARG_DIFF_BIAS, c.bind(owner, DNNL_ARG_DIFF_BIAS, e.bias_md, e.diff_bias.data())},
             {DNNL_ARG_SCRATCHPAD, c.scratchpad(owner, e.bwd_weights_scratch_md)}},
            backward_weights_what);
  } else {
    execute(e.bwd_weights, c,
            {{DNNL_ARG_SRC, src_mem},
             {DNNL_ARG_DIFF_DST, diff_dst_mem},
             {DNNL_ARG_DIFF_WEIGHTS, e.diff_weights.get()},
             {DNNL_ARG_SCRATCHPAD, c.scratchpad(owner, e.bwd_weights_scratch_md)}},
            backward_weights_what);
  }
  e.diff_weights_user.set_data_handle(weights.grad());
  execute(e.accumulate_diff_weights, c,
          {{DNNL_ARG_FROM, e.diff_weights.get()},
           {DNNL_ARG_TO, e.diff_weights_user.get()},
           {DNNL_ARG_SCRATCHPAD, c.scratchpad(&e.accumulate_diff_weights, e.accumulate_scratch_md)}},
          "accumulating convolution weight gradients");
  if (!cfg.with_bias) return;
  float* g = bias->grad();
  if (e.bias_in_primitive) {
    for (std::size_t i = 0; i < e.diff_bias.size(); ++i) g[i] += e.diff_bias[i];
  } else {
    std::fill(e.bias_sums.begin(), e.bias_sums.end(), 0.0);
    kernels::channel_sums(diff_dst, e.n * e.h * e.w, cfg.out_channels, e.bias_sums.data(), e.bias_partials);
    for (std::size_t i = 0; i < e.bias_sums.size(); ++i) g[i] += static_cast<float>(e.bias_sums[i]);
  }
}

void conv2d::backward_data(const float* diff_dst, float* diff_src, index_t n, index_t h, index_t w,
                           const parameter& weights, exec_context& ctx) const {
  auto& c = ctx.get();
  translate_dnnl(backward_data_what, [&] {
    impl::entry& e = impl_->backward_entry(n, h, w, &weights, c);
    impl_->run_backward_data(e, e.bwd_data_src.input(c, &e.bwd_data, DNNL_ARG_SRC, diff_dst, backward_data_what),
                             diff_src, c);
  });
}

void conv2d::backward_weights(const float* src, const float* diff_dst, index_t n, index_t h, index_t w,
                              parameter& weights, parameter* bias, exec_context& ctx) const {
  auto& c = ctx.get();
  translate_dnnl(backward_weights_what, [&] {
    impl::entry& e = impl_->backward_entry(n, h, w, nullptr, c);
    const void* owner = &e.bwd_weights;
    impl_->run_backward_weights(e, e.bwd_weights_src.input(c, owner, DNNL_ARG_SRC, src, backward_weights_what), diff_dst,
                                e.bwd_weights_diff_dst.input(c, owner, DNNL_ARG_DIFF_DST, diff_dst, backward_weights_what),
                                weights, bias, c);
  });
}

void conv2d::backward(const float* src, const float* diff_dst, float* diff_src, index_t n, index_t h, index_t w,
                      parameter& weights, parameter* bias, exec_context& ctx) const {
  auto& c = ctx.get();
  translate_dnnl(backward_weights_what, [&] {
    impl::entry& e = impl_->backward_entry(n, h, w, &weights, c);
    const void* owner = &e.bwd_weights;
    const dnnl_memory_t staged_diff_dst =
        e.bwd_weights_diff_dst.input(c, owner, DNNL_ARG_DIFF_DST, diff_dst, backward_weights_what);
    impl_->run_backward_weights(e, e.bwd_weights_src.input(c, owner, DNNL_ARG_SRC, src, backward_weights_what), diff_dst,
                                staged_diff_dst, weights, bias, c);
    // Backward data reads diff_dst as staged for backward weights when both want the same layout.
    impl_->run_backward_data(
        e, e.bwd_data_src.input_staged_by(e.bwd_weights_diff_dst, c, &e.bwd_data, DNNL_ARG_SRC, diff_dst, backward_data_what),
        diff_src, c);
  });
}

std::string conv2d::implementation(index_t n, index_t h, index_t w) const {
  return translate_dnnl("querying a convolution", [&] {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    impl::entry& e = impl_->find(n, h, w);
    impl_->ensure_backward(e);
    return std::string("fwd ") + e.fwd.pd.impl_info_str() + ", bwd_data (as a forward convolution) " +
           e.bwd_data_pd.impl_info_str() +
           ", bwd_weights " + e.bwd_weights_pd.impl_info_str();
  });
}

void conv2d::clear_cache() {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  impl_->entries.clear();
}

}  // namespace detail
}  // namespace v0
}  // namespace flowad
