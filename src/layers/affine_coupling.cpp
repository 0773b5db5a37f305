#include "flowad/layers/affine_coupling.hpp"

#include <algorithm>
#include <cmath>

#include <omp.h>

#include "flowad/detail/checks.hpp"
#include "flowad/detail/random.hpp"
#include "flowad/layers/split_merge.hpp"
#include "kernels/channel_ops.hpp"
#include "kernels/coupling_kernels.hpp"
#include "layers/parameter_init.hpp"

namespace flowad {
inline namespace v0 {

// Conditioner k maps y_k (group k, in_width channels) to F = [F_s | F_t] for group k+1 (out_width each).
struct affine_coupling::conditioner {
  conditioner(index_t in, index_t out, const affine_coupling_config& c, std::size_t k)
      : in_width(in),
        out_width(out),
        w1(name(k, "conv1.weight"), {c.hidden, in, c.kernel, c.kernel}),
        b1(name(k, "conv1.bias"), {c.hidden}),
        w2(name(k, "conv2.weight"), {2 * out, c.hidden, c.kernel, c.kernel}),
        b2(name(k, "conv2.bias"), {2 * out}),
        conv1({in, c.hidden, c.kernel,
               c.activation == subnet_activation::relu ? detail::activation::relu : detail::activation::leaky_relu,
               c.activation == subnet_activation::relu ? 0.0f : c.negative_slope, true}),
        conv2({c.hidden, 2 * out, c.kernel, detail::activation::none, 0.0f, true}) {}

  static std::string name(std::size_t k, const char* what) {
    return "conditioner" + std::to_string(k + 2) + "." + what;
  }

  index_t in_width, out_width;
  parameter w1, b1, w2, b2;
  detail::conv2d conv1, conv2;
};

// Buffers a layer keeps per workspace. Training keeps every conditioner's input, hidden activation and
// raw output for backward(); inference, and backward's gradients of them, use the workspace's shared
// scratch instead (a flow's layers run one at a time, so one set serves them all: FastFlow's 24 couplings
// kept 0.9 GB of gradients at batch 32 when each had its own).
struct affine_coupling::state : layer_state {
  std::vector<tensor> cond, hidden, raw;
  std::vector<double> row_sums;
  shape4 trained_shape{};
  bool has_training = false;
};

namespace {
// The shape the subnet convolutions run on. A batch of N single positions (N x C x 1 x 1: CFlow-AD's
// fibres) under 1x1 kernels is one row of N positions: the same products, but oneDNN's 1x1
// convolution is about 4x faster on one long row than on N images of one pixel.
shape4 conv_shape(const shape4& s, index_t kernel) {
  return kernel == 1 && s.h == 1 && s.w == 1 ? shape4{1, s.c, 1, s.n} : s;
}

// Scratch slots of the workspace used by inference and by backward.
enum scratch_slot : std::size_t {
  cond_a, cond_b, hidden_slot, raw_slot, src_copy, dst_copy, diff_dst_copy, diff_src_copy, mapped_y, mapped_rows,
  condition_copy
};
}  // namespace

affine_coupling::affine_coupling(const affine_coupling_config& cfg)
    : cfg_(cfg), gain_("gain", {std::max<index_t>(cfg.groups - 1, 0)}) {
  if (cfg.channels <= 0) throw error(errc::invalid_argument, "affine_coupling needs positive channels, got " + std::to_string(cfg.channels));
  if (cfg.groups < 2)
    throw error(errc::invalid_argument, "affine_coupling needs at least 2 groups, got " + std::to_string(cfg.groups));
  if (cfg.hidden <= 0) throw error(errc::invalid_argument, "affine_coupling needs a positive hidden width, got " + std::to_string(cfg.hidden));
  if (cfg.kernel <= 0 || cfg.kernel % 2 == 0)
    throw error(errc::invalid_argument, "affine_coupling kernel must be odd and positive, got " + std::to_string(cfg.kernel));
  if (cfg.clamp.kind != clamp_kind::none && !(cfg.clamp.alpha > 0.0f && std::isfinite(cfg.clamp.alpha)))
    throw error(errc::invalid_argument, "soft clamp alpha must be positive and finite, got " + std::to_string(cfg.clamp.alpha));
  if (!std::isfinite(cfg.gain_init)) throw error(errc::invalid_argument, "gain_init must be finite");
  if (cfg.condition_channels < 0 || (cfg.condition_channels > 0 && cfg.groups != 2))
    throw error(errc::invalid_argument, "affine_coupling takes a condition only with 2 groups and condition_channels >= 0, got " +
                                            std::to_string(cfg.groups) + " groups and " +
                                            std::to_string(cfg.condition_channels) + " condition channels");

  group_sizes_ = channel_split::equal_sizes(cfg.channels, cfg.groups);
  group_offsets_.assign(group_sizes_.size(), 0);
  for (std::size_t g = 1; g < group_sizes_.size(); ++g) group_offsets_[g] = group_offsets_[g - 1] + group_sizes_[g - 1];

  detail::rng r(cfg.seed);
  for (std::size_t k = 0; k + 1 < group_sizes_.size(); ++k) {
    // The first conditioner also reads the condition (groups == 2 when there is one).
    const index_t in = group_sizes_[k] + (k == 0 ? cfg.condition_channels : 0);
    auto c = std::make_unique<conditioner>(in, group_sizes_[k + 1], cfg, k);
    const double bound1 = 1.0 / std::sqrt(static_cast<double>(c->in_width * cfg.kernel * cfg.kernel));
    const double bound2 = 1.0 / std::sqrt(static_cast<double>(cfg.hidden * cfg.kernel * cfg.kernel));
    detail::init_uniform(c->w1, bound1, r);
    detail::init_uniform(c->b1, bound1, r);
    detail::init_uniform(c->w2, bound2, r);
    detail::init_uniform(c->b2, bound2, r);
    conditioners_.push_back(std::move(c));
  }
  for (float& g : gain_.values()) g = cfg.gain_init;
  gain_.mark_updated();
}

affine_coupling::~affine_coupling() = default;

float affine_coupling::gain(std::size_t k) const noexcept { return gain_.data()[k]; }

std::vector<parameter*> affine_coupling::parameters() {
  std::vector<parameter*> ps;
  for (auto& c : conditioners_) ps.insert(ps.end(), {&c->w1, &c->b1, &c->w2, &c->b2});
  if (cfg_.learn_gain) ps.push_back(&gain_);
  return ps;
}

double affine_coupling::macs_per_sample(index_t h, index_t w) const noexcept {
  double macs = 0.0;
  for (const auto& c : conditioners_) macs += c->conv1.macs(1, h, w) + c->conv2.macs(1, h, w);
  return macs;
}

void affine_coupling::clear_primitive_cache() {
  for (auto& c : conditioners_) {
    c->conv1.clear_cache();
    c->conv2.clear_cache();
  }
}

std::string affine_coupling::implementation(index_t n, index_t h, index_t w) const {
  std::string out;
  for (std::size_t k = 0; k < conditioners_.size(); ++k)
    out += "conditioner" + std::to_string(k + 2) + ": conv1 [" + conditioners_[k]->conv1.implementation(n, h, w) +
           "], conv2 [" + conditioners_[k]->conv2.implementation(n, h, w) + "]\n";
  return out;
}

void affine_coupling::check(const_view in, const char* in_name, const_view out, const char* out_name) const {
  detail::require_layer_pair("affine_coupling", cfg_.channels, in, in_name, out, out_name);
}

void affine_coupling::check_condition(const_view condition, const shape4& s) const {
  const index_t P = cfg_.condition_channels;
  if (P == 0) {
    if (!condition.empty())
      throw error(errc::invalid_argument, "affine_coupling was configured without a condition but got one of shape " +
                                              condition.shape().str());
    return;
  }
  const shape4 want{s.n, P, s.h, s.w};
  if (condition.shape() != want || condition.data() == nullptr)
    throw error(errc::invalid_argument, "affine_coupling needs a condition of shape " + want.str() + ", got " +
                                            condition.shape().str());
}

void affine_coupling::forward(const_view src, view dst, span<double> logdet, workspace& ws, pass_mode mode) const {
  run_forward(src, {}, dst, logdet, ws, mode, nullptr);
}

void affine_coupling::forward(const_view src, const_view condition, view dst, span<double> logdet, workspace& ws,
                              pass_mode mode) const {
  run_forward(src, condition, dst, logdet, ws, mode, nullptr);
}

void affine_coupling::forward_mapped(const_view src, const_view condition, view dst, span<double> logdet,
                                     workspace& ws, const output_map& map, pass_mode mode) const {
  if (!map.source || !map.scale || !map.shift) throw error(errc::invalid_argument, "affine_coupling: incomplete output map");
  run_forward(src, condition, dst, logdet, ws, mode, &map);
}

// With `map`, no y is written: each pixel row of y is assembled in a per-thread buffer (group 1 from
// x, middle groups from a scratch y, the last group straight from the coupling) and mapped into dst
// while it is in cache, saving the full-tensor passes a separate affine layer and permutation take.
void affine_coupling::run_forward(const_view src, const_view condition, view dst, span<double> logdet, workspace& ws,
                                  pass_mode mode, const output_map* map) const {
  check(src, "src", dst, "dst");
  check_condition(condition, src.shape());
  detail::require_size(logdet.size(), static_cast<std::size_t>(src.n()), "logdet");
  const shape4 s = src.shape();
  const index_t C = s.c, pixels = s.pixels(), rows = s.n * s.h;
  const shape4 cs = conv_shape(s, cfg_.kernel);
  const bool training = mode == pass_mode::training;
  state& st = ws.state<state>(id());
  const std::size_t nk = conditioners_.size();
  if (training) {
    st.cond.resize(nk);
    st.hidden.resize(nk);
    st.raw.resize(nk);
    st.has_training = false;
  }
  st.row_sums.resize(static_cast<std::size_t>(rows));

  const float* x = kernels::dense_nhwc(src, ws.scratch(src_copy));
  tensor& dst_buffer = ws.scratch(dst_copy);
  const bool dst_dense = dst.is_dense(layout::nhwc);
  if (!dst_dense) dst_buffer.resize(s, layout::nhwc);
  float* out = dst_dense ? dst.data() : dst_buffer.data();
  // y: the coupling's output; with a map, only its middle groups, in scratch.
  float* y = out;
  if (map && nk > 1) {
    tensor& middle = ws.scratch(mapped_y);
    middle.resize(s, layout::nhwc);
    y = middle.data();
  }
  float* row_buffers = nullptr;
  if (map) {
    tensor& rows_tensor = ws.scratch(mapped_rows);
    rows_tensor.resize({static_cast<index_t>(omp_get_max_threads()), C, 1, s.w}, layout::nhwc);
    row_buffers = rows_tensor.data();
  }
  detail::exec_context& ctx = ws.exec();

  auto cond_buffer = [&](std::size_t k) -> tensor& {
    return training ? st.cond[k] : ws.scratch(k % 2 == 0 ? cond_a : cond_b);
  };

  // y_1 = x_1, which is also the first conditioner's input (followed by the condition, if any).
  const index_t w0 = group_sizes_[0], first_in = conditioners_[0]->in_width;
  tensor& first_cond = cond_buffer(0);
  first_cond.resize({s.n, first_in, s.h, s.w}, layout::nhwc);
  if (map) kernels::copy_pixels(x, C, first_cond.data(), first_in, pixels, w0);
  else kernels::copy_pixels_to_two(x, C, y, C, first_cond.data(), first_in, pixels, w0);
  if (first_in > w0) {
    const float* c = kernels::dense_nhwc(condition, ws.scratch(condition_copy));
    kernels::copy_pixels(c, first_in - w0, first_cond.data() + w0, first_in, pixels, first_in - w0);
  }

  for (std::size_t k = 0; k < nk; ++k) {
    const conditioner& c = *conditioners_[k];
    tensor& hidden = training ? st.hidden[k] : ws.scratch(hidden_slot);
    tensor& raw = training ? st.raw[k] : ws.scratch(raw_slot);
    hidden.resize({s.n, cfg_.hidden, s.h, s.w}, layout::nhwc);
    raw.resize({s.n, 2 * c.out_width, s.h, s.w}, layout::nhwc);
    tensor* next_cond = nullptr;
    if (k + 1 < nk) {
      next_cond = &cond_buffer(k + 1);
      next_cond->resize({s.n, c.out_width, s.h, s.w}, layout::nhwc);
    }

    if (training) {  // backward reads the hidden activation
      c.conv1.forward(cond_buffer(k).data(), hidden.data(), cs.n, cs.h, cs.w, c.w1, &c.b1, ctx);
      c.conv2.forward(hidden.data(), raw.data(), cs.n, cs.h, cs.w, c.w2, &c.b2, ctx);
    } else {
      c.conv1.forward_into(c.conv2, cond_buffer(k).data(), hidden.data(), raw.data(), cs.n, cs.h, cs.w, c.w1, &c.b1,
                           c.w2, &c.b2, ctx);
    }

    const kernels::coupling_row row{s.w, c.out_width, gain(k), cfg_.clamp};
    const index_t offset = group_offsets_[k + 1];
    const float* raw_data = raw.data();
    float* next = next_cond ? next_cond->data() : nullptr;
    double* sums = st.row_sums.data();
    if (map && k + 1 == nk) {
#pragma omp parallel if (pixels * C >= detail::parallel_threshold)
      {
        float* assembled = row_buffers + static_cast<index_t>(omp_get_thread_num()) * s.w * C;
#pragma omp for schedule(static)
        for (index_t r = 0; r < rows; ++r) {
          const index_t p0 = r * s.w;
          kernels::copy_pixels_serial(x + p0 * C, C, assembled, C, s.w, w0);
          if (offset > w0) kernels::copy_pixels_serial(y + p0 * C + w0, C, assembled + w0, C, s.w, offset - w0);
          sums[r] = kernels::coupling_forward(row, x + p0 * C + offset, C, raw_data + p0 * 2 * c.out_width,
                                              assembled + offset, C, nullptr);
          kernels::gather_affine_pixels(assembled, out + p0 * C, s.w, C, map->source, map->scale, map->shift);
        }
      }
    } else {
#pragma omp parallel for schedule(static) if (pixels * c.out_width >= detail::parallel_threshold)
      for (index_t r = 0; r < rows; ++r) {
        const index_t p0 = r * s.w;
        sums[r] = kernels::coupling_forward(row, x + p0 * C + offset, C, raw_data + p0 * 2 * c.out_width,
                                            y + p0 * C + offset, C, next ? next + p0 * c.out_width : nullptr);
      }
    }
    // Fixed summation order: the log-determinant does not depend on the thread count.
    for (index_t n = 0; n < s.n; ++n) {
      double total = 0.0;
      for (index_t h = 0; h < s.h; ++h) total += sums[n * s.h + h];
      logdet[static_cast<std::size_t>(n)] += total;
    }
  }

  if (!dst_dense) copy(dst_buffer.view(), dst);
  if (training) {
    st.trained_shape = s;
    st.has_training = true;
  }
}

void affine_coupling::inverse(const_view dst, view src, workspace& ws) const { run_inverse(dst, {}, src, ws); }

void affine_coupling::inverse(const_view dst, const_view condition, view src, workspace& ws) const {
  run_inverse(dst, condition, src, ws);
}

void affine_coupling::run_inverse(const_view dst, const_view condition, view src, workspace& ws) const {
  check(dst, "dst", src, "src");
  check_condition(condition, dst.shape());
  const shape4 s = dst.shape();
  const index_t C = s.c, pixels = s.pixels(), rows = s.n * s.h;
  const shape4 cs = conv_shape(s, cfg_.kernel);
  const float* y = kernels::dense_nhwc(dst, ws.scratch(dst_copy));
  tensor& src_buffer = ws.scratch(src_copy);
  const bool src_dense = src.is_dense(layout::nhwc);
  if (!src_dense) src_buffer.resize(s, layout::nhwc);
  float* x = src_dense ? src.data() : src_buffer.data();
  detail::exec_context& ctx = ws.exec();

  kernels::copy_pixels(y, C, x, C, pixels, group_sizes_[0]);
  // Every conditioner reads an already-known y_k, so the groups invert independently.
  tensor& cond = ws.scratch(cond_a);
  tensor& hidden = ws.scratch(hidden_slot);
  tensor& raw = ws.scratch(raw_slot);
  for (std::size_t k = 0; k < conditioners_.size(); ++k) {
    const conditioner& c = *conditioners_[k];
    cond.resize({s.n, c.in_width, s.h, s.w}, layout::nhwc);
    hidden.resize({s.n, cfg_.hidden, s.h, s.w}, layout::nhwc);
    raw.resize({s.n, 2 * c.out_width, s.h, s.w}, layout::nhwc);
    const index_t group = group_sizes_[k];
    kernels::copy_pixels(y + group_offsets_[k], C, cond.data(), c.in_width, pixels, group);
    if (c.in_width > group) {
      const float* condition_data = kernels::dense_nhwc(condition, ws.scratch(condition_copy));
      kernels::copy_pixels(condition_data, c.in_width - group, cond.data() + group, c.in_width, pixels, c.in_width - group);
    }
    c.conv1.forward_into(c.conv2, cond.data(), hidden.data(), raw.data(), cs.n, cs.h, cs.w, c.w1, &c.b1, c.w2, &c.b2,
                         ctx);

    const kernels::coupling_row row{s.w, c.out_width, gain(k), cfg_.clamp};
    const index_t offset = group_offsets_[k + 1];
    const float* raw_data = raw.data();
#pragma omp parallel for schedule(static) if (pixels * c.out_width >= detail::parallel_threshold)
    for (index_t r = 0; r < rows; ++r) {
      const index_t p0 = r * s.w;
      kernels::coupling_inverse(row, y + p0 * C + offset, C, raw_data + p0 * 2 * c.out_width, x + p0 * C + offset, C);
    }
  }
  if (!src_dense) copy(src_buffer.view(), src);
}

void affine_coupling::backward(const_view src, const_view dst, const_view diff_dst, span<const double> diff_logdet,
                               view diff_src, workspace& ws) {
  state& st = ws.state<state>(id());
  detail::require_backward("affine_coupling", cfg_.channels, src, dst, diff_dst, diff_src, diff_logdet.size(), st.has_training,
                           st.trained_shape);
  const shape4 s = src.shape();
  const index_t C = s.c, pixels = s.pixels(), rows = s.n * s.h;
  const shape4 cs = conv_shape(s, cfg_.kernel);
  const float* x = kernels::dense_nhwc(src, ws.scratch(src_copy));
  const float* dy = kernels::dense_nhwc(diff_dst, ws.scratch(diff_dst_copy));
  tensor& dx_buffer = ws.scratch(diff_src_copy);
  const bool dx_dense = diff_src.is_dense(layout::nhwc);
  if (!dx_dense) dx_buffer.resize(s, layout::nhwc);
  float* dx = dx_dense ? diff_src.data() : dx_buffer.data();
  detail::exec_context& ctx = ws.exec();
  st.row_sums.resize(static_cast<std::size_t>(rows));

  // Going down the hierarchy, the gradient of y_{k+1} is complete once conditioner k+1 is done.
  const float* diff_cond_in = nullptr;  // dL/dy_{k+1} through conditioner k+1
  tensor& diff_raw = ws.scratch(raw_slot);
  tensor& diff_hidden = ws.scratch(hidden_slot);
  for (std::size_t k = conditioners_.size(); k-- > 0;) {
    conditioner& c = *conditioners_[k];
    diff_raw.resize({s.n, 2 * c.out_width, s.h, s.w}, layout::nhwc);
    diff_hidden.resize({s.n, cfg_.hidden, s.h, s.w}, layout::nhwc);
    tensor& diff_cond_out = ws.scratch(k % 2 == 0 ? cond_a : cond_b);
    diff_cond_out.resize({s.n, c.in_width, s.h, s.w}, layout::nhwc);

    const kernels::coupling_row row{s.w, c.out_width, gain(k), cfg_.clamp};
    const index_t offset = group_offsets_[k + 1];
    const float* raw = st.raw[k].data();
    float* draw = diff_raw.data();
    double* sums = st.row_sums.data();
#pragma omp parallel for schedule(static) if (pixels * c.out_width >= detail::parallel_threshold)
    for (index_t r = 0; r < rows; ++r) {
      const index_t p0 = r * s.w;
      sums[r] = kernels::coupling_backward(row, x + p0 * C + offset, C, dy + p0 * C + offset, C,
                                           diff_cond_in ? diff_cond_in + p0 * c.out_width : nullptr,
                                           raw + p0 * 2 * c.out_width, diff_logdet[static_cast<std::size_t>(r / s.h)],
                                           dx + p0 * C + offset, C, draw + p0 * 2 * c.out_width);
    }
    if (cfg_.learn_gain) {
      double total = 0.0;
      for (index_t r = 0; r < rows; ++r) total += sums[r];
      gain_.grad()[k] += static_cast<float>(total);
    }

    c.conv2.backward(st.hidden[k].data(), draw, diff_hidden.data(), cs.n, cs.h, cs.w, c.w2, &c.b2, ctx);
    const index_t hidden_count = diff_hidden.numel();
    const float* h = st.hidden[k].data();
    float* dh = diff_hidden.data();
    const index_t chunk = 1 << 14;
#pragma omp parallel for schedule(static) if (hidden_count >= detail::parallel_threshold)
    for (index_t i0 = 0; i0 < hidden_count; i0 += chunk)
      kernels::activation_backward(h + i0, dh + i0, std::min(chunk, hidden_count - i0),
                                   cfg_.activation == subnet_activation::relu ? 0.0f : cfg_.negative_slope);
    c.conv1.backward(st.cond[k].data(), dh, diff_cond_out.data(), cs.n, cs.h, cs.w, c.w1, &c.b1, ctx);
    diff_cond_in = diff_cond_out.data();
  }
  // Group 1 passes through and conditions group 2 (the condition's share of diff_cond_in is dropped).
  kernels::add_pixels(dy, C, diff_cond_in, conditioners_[0]->in_width, dx, C, pixels, group_sizes_[0]);
  if (!dx_dense) copy(dx_buffer.view(), diff_src);
}

}  // namespace v0
}  // namespace flowad
