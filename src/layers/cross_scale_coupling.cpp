#include "flowad/layers/cross_scale_coupling.hpp"

#include <algorithm>
#include <cmath>
#include <optional>
#include <string>

#include "flowad/detail/backend.hpp"
#include "flowad/detail/checks.hpp"
#include "flowad/detail/random.hpp"
#include "flowad/detail/strided_conv2d.hpp"
#include "kernels/channel_ops.hpp"
#include "kernels/coupling_kernels.hpp"
#include "kernels/upsample2x.hpp"
#include "layers/parameter_init.hpp"

namespace flowad {
inline namespace v0 {

namespace {

// a[i] += b[i], in parallel for large tensors.
void add_into(float* a, const float* b, index_t count) {
#pragma omp parallel for schedule(static) if (count >= detail::parallel_threshold)
  for (index_t i = 0; i < count; ++i) a[i] += b[i];
}

}  // namespace

// One CrossConvolutions: per scale j, in_j → hidden → out_j, plus the cross terms between neighbours.
// Its outputs are the raw r_j, before the coupling's γ_j (kept here as a parameter of S values).
struct cross_scale_coupling::cross_convolutions {
  struct scale_convs {
    scale_convs(const std::string& prefix, index_t in, index_t out, const cross_scale_coupling_config& c, bool up,
                bool down)
        : in_weight(prefix + "conv_in.weight", {c.hidden, in, c.kernel, c.kernel}),
          in_bias(prefix + "conv_in.bias", {c.hidden}),
          out_weight(prefix + "conv_out.weight", {out, c.hidden, c.kernel, c.kernel}),
          out_bias(prefix + "conv_out.bias", {out}),
          conv_in({in, c.hidden, c.kernel, detail::activation::leaky_relu, c.negative_slope, true}),
          conv_out({c.hidden, out, c.kernel, detail::activation::none, 0.0f, true}) {
      if (up) {
        up_weight.emplace(prefix + "up_conv.weight", std::vector<index_t>{out, c.hidden, c.kernel, c.kernel});
        up_bias.emplace(prefix + "up_conv.bias", std::vector<index_t>{out});
        up_conv.emplace(detail::conv2d::config{c.hidden, out, c.kernel, detail::activation::none, 0.0f, true});
      }
      if (down) {
        down_weight.emplace(prefix + "down_conv.weight", std::vector<index_t>{out, c.hidden, c.kernel, c.kernel});
        down_bias.emplace(prefix + "down_conv.bias", std::vector<index_t>{out});
        down_conv.emplace(detail::strided_conv2d::config{c.hidden, out, c.kernel, 2, true});
      }
    }
    index_t in_width = 0, out_width = 0;
    parameter in_weight, in_bias, out_weight, out_bias;
    std::optional<parameter> up_weight, up_bias, down_weight, down_bias;
    detail::conv2d conv_in, conv_out;
    std::optional<detail::conv2d> up_conv;            // reads Up×2(h_{j+1})
    std::optional<detail::strided_conv2d> down_conv;  // reads h_{j−1}
  };

  cross_convolutions(const std::string& name, const std::vector<index_t>& in, const std::vector<index_t>& out,
                     const cross_scale_coupling_config& c, detail::rng& r)
      : gamma(name + "gamma", {static_cast<index_t>(in.size())}) {
    const std::size_t S = in.size();
    for (std::size_t j = 0; j < S; ++j) {
      auto sc =
          std::make_unique<scale_convs>(name + "scale" + std::to_string(j) + ".", in[j], out[j], c, j + 1 < S, j > 0);
      sc->in_width = in[j];
      sc->out_width = out[j];
      const double k2 = static_cast<double>(c.kernel * c.kernel);
      const double in_bound = 1.0 / std::sqrt(static_cast<double>(in[j]) * k2);
      const double hidden_bound = 1.0 / std::sqrt(static_cast<double>(c.hidden) * k2);
      detail::init_uniform(sc->in_weight, in_bound, r);
      detail::init_uniform(sc->in_bias, in_bound, r);
      detail::init_uniform(sc->out_weight, hidden_bound, r);
      detail::init_uniform(sc->out_bias, hidden_bound, r);
      if (sc->up_weight) {
        detail::init_uniform(*sc->up_weight, hidden_bound, r);
        detail::init_uniform(*sc->up_bias, hidden_bound, r);
      }
      if (sc->down_weight) {
        detail::init_uniform(*sc->down_weight, hidden_bound, r);
        detail::init_uniform(*sc->down_bias, hidden_bound, r);
      }
      convs.push_back(std::move(sc));
    }
    gamma.mark_updated();  // zeros: the identity at initialisation
  }

  std::vector<parameter*> parameters() {
    std::vector<parameter*> ps;
    for (auto& s : convs) ps.insert(ps.end(), {&s->in_weight, &s->in_bias, &s->out_weight, &s->out_bias});
    for (auto& s : convs)
      if (s->up_weight) ps.insert(ps.end(), {&*s->up_weight, &*s->up_bias});
    for (auto& s : convs)
      if (s->down_weight) ps.insert(ps.end(), {&*s->down_weight, &*s->down_bias});
    ps.push_back(&gamma);
    return ps;
  }

  // What forward keeps for backward, per scale: the hidden activation and the upsampled one of the next
  // scale (the up convolution's input).
  struct buffers {
    std::vector<tensor> hidden, upsampled;
  };

  // raw[j] (n x out_j x h_j x w_j) from in[j] (n x in_j x h_j x w_j), all dense NHWC.
  void forward(const std::vector<const float*>& in, const std::vector<float*>& raw, index_t n,
               const std::vector<index_t>& h, const std::vector<index_t>& w, index_t hidden, buffers& b, tensor& temp,
               detail::exec_context& ctx) const {
    const std::size_t S = convs.size();
    b.hidden.resize(S);
    b.upsampled.resize(S);
    for (std::size_t j = 0; j < S; ++j) {
      const scale_convs& c = *convs[j];
      b.hidden[j].resize({n, hidden, h[j], w[j]}, layout::nhwc);
      c.conv_in.forward(in[j], b.hidden[j].data(), n, h[j], w[j], c.in_weight, &c.in_bias, ctx);
    }
    for (std::size_t j = 0; j < S; ++j) {
      const scale_convs& c = *convs[j];
      c.conv_out.forward(b.hidden[j].data(), raw[j], n, h[j], w[j], c.out_weight, &c.out_bias, ctx);
      const index_t count = n * c.out_width * h[j] * w[j];
      if (c.up_conv) {
        b.upsampled[j].resize({n, hidden, h[j], w[j]}, layout::nhwc);
        kernels::upsample2x_bilinear(b.hidden[j + 1].data(), b.upsampled[j].data(), n, h[j + 1], w[j + 1], hidden, h[j],
                                     w[j]);
        temp.resize({n, c.out_width, h[j], w[j]}, layout::nhwc);
        c.up_conv->forward(b.upsampled[j].data(), temp.data(), n, h[j], w[j], *c.up_weight, &*c.up_bias, ctx);
        add_into(raw[j], temp.data(), count);
      }
      if (c.down_conv) {
        temp.resize({n, c.out_width, h[j], w[j]}, layout::nhwc);
        c.down_conv->forward(b.hidden[j - 1].data(), temp.data(), n, h[j - 1], w[j - 1], *c.down_weight, &*c.down_bias,
                             ctx);
        add_into(raw[j], temp.data(), count);
      }
    }
  }

  // Given draw[j] = dL/dr_j, writes diff_in[j] = dL/din_j and adds the weight gradients. `b` holds the
  // forward's buffers; diff_hidden and temps are scratch.
  void backward(const std::vector<const float*>& in, const std::vector<const float*>& draw,
                const std::vector<float*>& diff_in, index_t n, const std::vector<index_t>& h,
                const std::vector<index_t>& w, index_t hidden, float negative_slope, const buffers& b,
                std::vector<tensor>& diff_hidden, tensor& temp_up, tensor& temp, detail::exec_context& ctx) {
    const std::size_t S = convs.size();
    diff_hidden.resize(S);
    for (std::size_t j = 0; j < S; ++j) {
      scale_convs& c = *convs[j];
      diff_hidden[j].resize({n, hidden, h[j], w[j]}, layout::nhwc);
      c.conv_out.backward(b.hidden[j].data(), draw[j], diff_hidden[j].data(), n, h[j], w[j], c.out_weight, &c.out_bias,
                          ctx);
    }
    for (std::size_t j = 0; j < S; ++j) {
      scale_convs& c = *convs[j];
      if (c.up_conv) {
        temp_up.resize({n, hidden, h[j], w[j]}, layout::nhwc);
        c.up_conv->backward(b.upsampled[j].data(), draw[j], temp_up.data(), n, h[j], w[j], *c.up_weight, &*c.up_bias,
                            ctx);
        temp.resize({n, hidden, h[j + 1], w[j + 1]}, layout::nhwc);
        kernels::upsample2x_bilinear_adjoint(temp_up.data(), temp.data(), n, h[j + 1], w[j + 1], hidden, h[j], w[j]);
        add_into(diff_hidden[j + 1].data(), temp.data(), temp.numel());
      }
      if (c.down_conv) {
        c.down_conv->backward_weights(b.hidden[j - 1].data(), draw[j], n, h[j - 1], w[j - 1], *c.down_weight,
                                      &*c.down_bias, ctx);
        temp.resize({n, hidden, h[j - 1], w[j - 1]}, layout::nhwc);
        c.down_conv->backward_data(draw[j], temp.data(), n, h[j - 1], w[j - 1], *c.down_weight, ctx);
        add_into(diff_hidden[j - 1].data(), temp.data(), temp.numel());
      }
    }
    for (std::size_t j = 0; j < S; ++j) {
      scale_convs& c = *convs[j];
      const index_t count = diff_hidden[j].numel();
      const float* hv = b.hidden[j].data();
      float* dh = diff_hidden[j].data();
      const index_t chunk = 1 << 14;
#pragma omp parallel for schedule(static) if (count >= detail::parallel_threshold)
      for (index_t i0 = 0; i0 < count; i0 += chunk)
        kernels::activation_backward(hv + i0, dh + i0, std::min(chunk, count - i0), negative_slope);
      c.conv_in.backward(in[j], dh, diff_in[j], n, h[j], w[j], c.in_weight, &c.in_bias, ctx);
    }
  }

  double macs(index_t h0, index_t w0) const noexcept {
    double m = 0.0;
    index_t h = h0, w = w0, finer_h = 0, finer_w = 0;
    for (std::size_t j = 0; j < convs.size(); ++j) {
      const scale_convs& c = *convs[j];
      m += c.conv_in.macs(1, h, w) + c.conv_out.macs(1, h, w);
      if (c.up_conv) m += c.up_conv->macs(1, h, w);
      if (c.down_conv) m += c.down_conv->macs(1, finer_h, finer_w);
      finer_h = h;
      finer_w = w;
      h = half_size(h);
      w = half_size(w);
    }
    return m;
  }

  void clear_cache() {
    for (auto& c : convs) {
      c->conv_in.clear_cache();
      c->conv_out.clear_cache();
      if (c->up_conv) c->up_conv->clear_cache();
      if (c->down_conv) c->down_conv->clear_cache();
    }
  }

  std::vector<std::unique_ptr<scale_convs>> convs;
  parameter gamma;
};

// Per-workspace buffers. Training keeps, per scale, the dense input, the conditioner inputs and raw
// outputs of both steps, and the CrossConvolutions' hidden activations.
struct cross_scale_coupling::state : layer_state {
  std::vector<tensor> x_copy, y_dense, second_in, first_out, raw1, raw2, dy_dense, dx_dense, draw1, draw2, dcond1,
      dcond2;
  std::vector<tensor> diff_hidden;
  cross_convolutions::buffers b1, b2;
  tensor temp, temp_up;
  std::vector<double> row_sums;
  std::vector<const float*> in_ptrs, const_ptrs;
  std::vector<float*> out_ptrs, out_ptrs2, y_ptrs;
  std::vector<const float*> draw_ptrs;
  std::vector<index_t> h, w;
  std::vector<shape4> trained_shapes;
  bool has_training = false;

  void size(std::size_t S) {
    for (auto* v : {&x_copy, &y_dense, &second_in, &first_out, &raw1, &raw2, &dy_dense, &dx_dense, &draw1, &draw2,
                    &dcond1, &dcond2})
      v->resize(S);
    in_ptrs.resize(S);
    const_ptrs.resize(S);
    out_ptrs.resize(S);
    out_ptrs2.resize(S);
    y_ptrs.resize(S);
    draw_ptrs.resize(S);
    h.resize(S);
    w.resize(S);
  }
};

cross_scale_coupling::cross_scale_coupling(const cross_scale_coupling_config& cfg) : cfg_(cfg) {
  const auto fail = [](const std::string& what) {
    throw error(errc::invalid_argument, "cross_scale_coupling: " + what);
  };
  if (cfg.channels.empty() || cfg.channels.size() > 8)
    fail("needs 1 to 8 scales, got " + std::to_string(cfg.channels.size()));
  for (index_t c : cfg.channels)
    if (c < 2) fail("every scale needs at least 2 channels, got " + std::to_string(c));
  if (cfg.hidden <= 0) fail("hidden width must be positive, got " + std::to_string(cfg.hidden));
  if (cfg.kernel <= 0 || cfg.kernel % 2 == 0)
    fail("kernel must be odd and positive, got " + std::to_string(cfg.kernel));
  if (cfg.clamp.kind != clamp_kind::none && !(cfg.clamp.alpha > 0.0f && std::isfinite(cfg.clamp.alpha)))
    fail("soft clamp alpha must be positive and finite");
  if (!(cfg.output_limit > 0.0f)) fail("output_limit must be positive");
  for (index_t c : cfg.channels) {
    first_widths_.push_back(c / 2);
    second_widths_.push_back(c - c / 2);
  }
  std::vector<index_t> twice_first, twice_second;
  for (std::size_t j = 0; j < cfg.channels.size(); ++j) {
    twice_first.push_back(2 * first_widths_[j]);
    twice_second.push_back(2 * second_widths_[j]);
  }
  detail::rng r(cfg.seed);
  s1_ = std::make_unique<cross_convolutions>("s1.", first_widths_, twice_second, cfg, r);
  s2_ = std::make_unique<cross_convolutions>("s2.", second_widths_, twice_first, cfg, r);
}

cross_scale_coupling::~cross_scale_coupling() = default;

std::vector<parameter*> cross_scale_coupling::parameters() {
  std::vector<parameter*> ps = s1_->parameters();
  for (parameter* p : s2_->parameters()) ps.push_back(p);
  return ps;
}

std::vector<const parameter*> cross_scale_coupling::parameters() const {
  const std::vector<parameter*> ps = const_cast<cross_scale_coupling*>(this)->parameters();
  return {ps.begin(), ps.end()};
}

double cross_scale_coupling::macs_per_sample(index_t h, index_t w) const noexcept {
  return s1_->macs(h, w) + s2_->macs(h, w);
}

void cross_scale_coupling::clear_primitive_cache() {
  s1_->clear_cache();
  s2_->clear_cache();
}

void cross_scale_coupling::check(span<const const_view> in, const char* in_name, std::size_t outputs,
                                 const char* what) const {
  const std::size_t S = scales();
  if (in.size() != S || outputs != S)
    throw error(errc::shape_mismatch, std::string("cross_scale_coupling::") + what + ": the layer has " +
                                          std::to_string(S) + " scales, got " + std::to_string(in.size()) + " " +
                                          in_name + " and " + std::to_string(outputs) + " outputs");
  for (std::size_t j = 0; j < S; ++j) {
    detail::require_nonempty(in[j], in_name);
    if (in[j].c() != cfg_.channels[j] || in[j].n() != in[0].n())
      throw error(errc::shape_mismatch, std::string("cross_scale_coupling: ") + in_name + " scale " +
                                            std::to_string(j) + " is " + in[j].shape().str() + ", expected " +
                                            std::to_string(in[0].n()) + " samples of " +
                                            std::to_string(cfg_.channels[j]) + " channels");
    if (j > 0 && (in[j].h() != half_size(in[j - 1].h()) || in[j].w() != half_size(in[j - 1].w())))
      throw error(errc::shape_mismatch,
                  "cross_scale_coupling: every scale must be half of the previous one in height and width (rounded "
                  "up, as a stride-2 convolution gives); scale " +
                      std::to_string(j) + " is " + std::to_string(in[j].h()) + "x" + std::to_string(in[j].w()) +
                      " after " + std::to_string(in[j - 1].h()) + "x" + std::to_string(in[j - 1].w()));
  }
}

namespace {
void check_outputs(span<const const_view> in, span<const view> out, const char* out_name) {
  for (std::size_t j = 0; j < in.size(); ++j) {
    detail::require_same_shape(in[j], "input", out[j], out_name);
    if (detail::may_overlap(in[j], out[j]))
      throw error(errc::invalid_argument, std::string("cross_scale_coupling: ") + out_name + " overlaps its input");
  }
}
}  // namespace

void cross_scale_coupling::forward(span<const const_view> src, span<const view> dst, span<double> logdet, workspace& ws,
                                   pass_mode mode) const {
  check(src, "src", dst.size(), "forward");
  check_outputs(src, dst, "dst");
  const std::size_t S = scales();
  const index_t N = src[0].n();
  detail::require_size(logdet.size(), S * static_cast<std::size_t>(N), "logdet");
  state& st = ws.state<state>(id_);
  st.size(S);
  st.has_training = false;  // an inference pass reuses the buffers backward() reads
  detail::exec_context& ctx = ws.exec();

  // Step 1: y_1 = x_1·exp(φ(s)) + t with (s, t) from S2(x_2).
  for (std::size_t j = 0; j < S; ++j) {
    const shape4 s = src[j].shape();
    st.h[j] = s.h;
    st.w[j] = s.w;
    st.in_ptrs[j] = kernels::dense_nhwc(src[j], st.x_copy[j]);
    st.second_in[j].resize({N, second_widths_[j], s.h, s.w}, layout::nhwc);
    kernels::copy_pixels(st.in_ptrs[j] + first_widths_[j], s.c, st.second_in[j].data(), second_widths_[j], s.pixels(),
                         second_widths_[j]);
    st.raw2[j].resize({N, 2 * first_widths_[j], s.h, s.w}, layout::nhwc);
    if (dst[j].is_dense(layout::nhwc)) {
      st.y_ptrs[j] = dst[j].data();
    } else {
      st.y_dense[j].resize(s, layout::nhwc);
      st.y_ptrs[j] = st.y_dense[j].data();
    }
    st.first_out[j].resize({N, first_widths_[j], s.h, s.w}, layout::nhwc);
    st.const_ptrs[j] = st.second_in[j].data();
    st.out_ptrs[j] = st.raw2[j].data();
  }
  s2_->forward(st.const_ptrs, st.out_ptrs, N, st.h, st.w, cfg_.hidden, st.b2, st.temp, ctx);

  const auto couple = [&](std::size_t j, index_t offset, index_t width, float gamma, const float* raw, float* next) {
    const shape4 s = src[j].shape();
    const index_t rows = N * s.h, C = s.c;
    st.row_sums.resize(static_cast<std::size_t>(rows));
    const kernels::coupling_row row{s.w, width, gamma, cfg_.clamp};
    const float* x = st.in_ptrs[j];
    float* y = st.y_ptrs[j];
    double* sums = st.row_sums.data();
#pragma omp parallel for schedule(static) if (rows * s.w * width >= detail::parallel_threshold)
    for (index_t r = 0; r < rows; ++r) {
      const index_t p0 = r * s.w;
      sums[r] = kernels::coupling_forward(row, x + p0 * C + offset, C, raw + p0 * 2 * width, y + p0 * C + offset, C,
                                          next ? next + p0 * width : nullptr);
    }
    for (index_t n = 0; n < N; ++n) {  // fixed order: independent of the thread count
      double total = 0.0;
      for (index_t h = 0; h < s.h; ++h) total += sums[n * s.h + h];
      logdet[j * static_cast<std::size_t>(N) + static_cast<std::size_t>(n)] += total;
    }
  };
  for (std::size_t j = 0; j < S; ++j)
    couple(j, 0, first_widths_[j], s2_->gamma.data()[j], st.raw2[j].data(), st.first_out[j].data());

  // Step 2: y_2 = x_2·exp(φ(s)) + t with (s, t) from S1(y_1).
  for (std::size_t j = 0; j < S; ++j) {
    st.raw1[j].resize({N, 2 * second_widths_[j], st.h[j], st.w[j]}, layout::nhwc);
    st.const_ptrs[j] = st.first_out[j].data();
    st.out_ptrs[j] = st.raw1[j].data();
  }
  s1_->forward(st.const_ptrs, st.out_ptrs, N, st.h, st.w, cfg_.hidden, st.b1, st.temp, ctx);
  for (std::size_t j = 0; j < S; ++j)
    couple(j, first_widths_[j], second_widths_[j], s1_->gamma.data()[j], st.raw1[j].data(), nullptr);

  const float limit = cfg_.output_limit;
  for (std::size_t j = 0; j < S; ++j) {
    float* y = st.y_ptrs[j];
    const index_t count = src[j].numel();
#pragma omp parallel for schedule(static) if (count >= detail::parallel_threshold)
    for (index_t i = 0; i < count; ++i) y[i] = std::min(std::max(y[i], -limit), limit);
    if (y != dst[j].data()) copy(const_view(y, src[j].shape(), layout::nhwc), dst[j]);
  }
  if (mode == pass_mode::training) {
    st.trained_shapes.resize(S);
    for (std::size_t j = 0; j < S; ++j) st.trained_shapes[j] = src[j].shape();
    st.has_training = true;
  }
}

void cross_scale_coupling::inverse(span<const const_view> dst, span<const view> src, workspace& ws) const {
  check(dst, "dst", src.size(), "inverse");
  check_outputs(dst, src, "src");
  const std::size_t S = scales();
  const index_t N = dst[0].n();
  state& st = ws.state<state>(id_);
  st.size(S);
  st.has_training = false;  // the buffers below are reused
  detail::exec_context& ctx = ws.exec();

  // x_2 from y_2 with S1(y_1).
  for (std::size_t j = 0; j < S; ++j) {
    const shape4 s = dst[j].shape();
    st.h[j] = s.h;
    st.w[j] = s.w;
    st.in_ptrs[j] = kernels::dense_nhwc(dst[j], st.y_dense[j]);
    st.first_out[j].resize({N, first_widths_[j], s.h, s.w}, layout::nhwc);
    kernels::copy_pixels(st.in_ptrs[j], s.c, st.first_out[j].data(), first_widths_[j], s.pixels(), first_widths_[j]);
    st.raw1[j].resize({N, 2 * second_widths_[j], s.h, s.w}, layout::nhwc);
    st.x_copy[j].resize(s, layout::nhwc);
    st.const_ptrs[j] = st.first_out[j].data();
    st.out_ptrs[j] = st.raw1[j].data();
  }
  s1_->forward(st.const_ptrs, st.out_ptrs, N, st.h, st.w, cfg_.hidden, st.b1, st.temp, ctx);

  const auto uncouple = [&](std::size_t j, index_t offset, index_t width, float gamma, const float* raw) {
    const shape4 s = dst[j].shape();
    const index_t rows = N * s.h, C = s.c;
    const kernels::coupling_row row{s.w, width, gamma, cfg_.clamp};
    const float* y = st.in_ptrs[j];
    float* x = st.x_copy[j].data();
#pragma omp parallel for schedule(static) if (rows * s.w * width >= detail::parallel_threshold)
    for (index_t r = 0; r < rows; ++r) {
      const index_t p0 = r * s.w;
      kernels::coupling_inverse(row, y + p0 * C + offset, C, raw + p0 * 2 * width, x + p0 * C + offset, C);
    }
  };
  for (std::size_t j = 0; j < S; ++j) {
    uncouple(j, first_widths_[j], second_widths_[j], s1_->gamma.data()[j], st.raw1[j].data());
    // x_1 from y_1 with S2(x_2).
    const shape4 s = dst[j].shape();
    st.second_in[j].resize({N, second_widths_[j], s.h, s.w}, layout::nhwc);
    kernels::copy_pixels(st.x_copy[j].data() + first_widths_[j], s.c, st.second_in[j].data(), second_widths_[j],
                         s.pixels(), second_widths_[j]);
    st.raw2[j].resize({N, 2 * first_widths_[j], s.h, s.w}, layout::nhwc);
    st.const_ptrs[j] = st.second_in[j].data();
    st.out_ptrs[j] = st.raw2[j].data();
  }
  s2_->forward(st.const_ptrs, st.out_ptrs, N, st.h, st.w, cfg_.hidden, st.b2, st.temp, ctx);
  for (std::size_t j = 0; j < S; ++j) {
    uncouple(j, 0, first_widths_[j], s2_->gamma.data()[j], st.raw2[j].data());
    copy(st.x_copy[j].cview(), src[j]);
  }
}

void cross_scale_coupling::backward(span<const const_view> src, span<const const_view> dst,
                                    span<const const_view> diff_dst, span<const double> diff_logdet,
                                    span<const view> diff_src, workspace& ws) {
  check(src, "src", dst.size(), "backward");
  const std::size_t S = scales();
  const index_t N = src[0].n();
  if (diff_dst.size() != S || diff_src.size() != S)
    throw error(errc::shape_mismatch, "cross_scale_coupling::backward: one gradient per scale expected");
  for (std::size_t j = 0; j < S; ++j) {
    detail::require_same_shape(src[j], "src", dst[j], "dst");
    detail::require_same_shape(src[j], "src", diff_dst[j], "diff_dst");
    detail::require_same_shape(src[j], "src", diff_src[j], "diff_src");
  }
  detail::require_size(diff_logdet.size(), S * static_cast<std::size_t>(N), "diff_logdet");
  state& st = ws.state<state>(id_);
  bool same = st.has_training && st.trained_shapes.size() == S;
  for (std::size_t j = 0; same && j < S; ++j) same = st.trained_shapes[j] == src[j].shape();
  if (!same)
    throw error(
        errc::invalid_argument,
        "cross_scale_coupling::backward needs a training-mode forward on this workspace with the same shapes first");
  detail::exec_context& ctx = ws.exec();
  const float limit = cfg_.output_limit;

  // dL/dy through the hard clamp, then step 2's coupling.
  for (std::size_t j = 0; j < S; ++j) {
    const shape4 s = src[j].shape();
    st.in_ptrs[j] = kernels::dense_nhwc(src[j], st.x_copy[j]);
    st.dy_dense[j].resize(s, layout::nhwc);
    copy(diff_dst[j], st.dy_dense[j].view());
    float* dy = st.dy_dense[j].data();
    const float* y = kernels::dense_nhwc(dst[j], st.y_dense[j]);  // the forward's clamped output
    const index_t count = s.numel();
#pragma omp parallel for schedule(static) if (count >= detail::parallel_threshold)
    for (index_t i = 0; i < count; ++i)
      if (std::abs(y[i]) >= limit) dy[i] = 0.0f;
    st.dx_dense[j].resize(s, layout::nhwc);
  }

  const auto uncouple_gradient = [&](std::size_t j, index_t offset, index_t width, parameter& gamma, const float* raw,
                                     const float* dcond, tensor& draw) {
    const shape4 s = src[j].shape();
    const index_t rows = N * s.h, C = s.c;
    st.row_sums.resize(static_cast<std::size_t>(rows));
    draw.resize({N, 2 * width, s.h, s.w}, layout::nhwc);
    const kernels::coupling_row row{s.w, width, gamma.data()[j], cfg_.clamp};
    const float* x = st.in_ptrs[j];
    const float* dy = st.dy_dense[j].data();
    float* dx = st.dx_dense[j].data();
    float* dr = draw.data();
    double* sums = st.row_sums.data();
    const double* dlogdet = diff_logdet.data() + j * static_cast<std::size_t>(N);
#pragma omp parallel for schedule(static) if (rows * s.w * width >= detail::parallel_threshold)
    for (index_t r = 0; r < rows; ++r) {
      const index_t p0 = r * s.w;
      sums[r] = kernels::coupling_backward(row, x + p0 * C + offset, C, dy + p0 * C + offset, C,
                                           dcond ? dcond + p0 * width : nullptr, raw + p0 * 2 * width, dlogdet[r / s.h],
                                           dx + p0 * C + offset, C, dr + p0 * 2 * width);
    }
    double total = 0.0;
    for (index_t r = 0; r < rows; ++r) total += sums[r];
    gamma.grad()[j] += static_cast<float>(total);
  };

  for (std::size_t j = 0; j < S; ++j) {
    uncouple_gradient(j, first_widths_[j], second_widths_[j], s1_->gamma, st.raw1[j].data(), nullptr, st.draw1[j]);
    st.dcond1[j].resize({N, first_widths_[j], st.h[j], st.w[j]}, layout::nhwc);
    st.const_ptrs[j] = st.first_out[j].data();
    st.out_ptrs[j] = st.dcond1[j].data();
  }
  {
    for (std::size_t j = 0; j < S; ++j) st.draw_ptrs[j] = st.draw1[j].data();
    s1_->backward(st.const_ptrs, st.draw_ptrs, st.out_ptrs, N, st.h, st.w, cfg_.hidden, cfg_.negative_slope, st.b1,
                  st.diff_hidden, st.temp_up, st.temp, ctx);
  }
  // Step 1: y_1 also fed S1, so its gradient is dy_1 + dcond1.
  for (std::size_t j = 0; j < S; ++j) {
    uncouple_gradient(j, 0, first_widths_[j], s2_->gamma, st.raw2[j].data(), st.dcond1[j].data(), st.draw2[j]);
    st.dcond2[j].resize({N, second_widths_[j], st.h[j], st.w[j]}, layout::nhwc);
    st.const_ptrs[j] = st.second_in[j].data();
    st.out_ptrs2[j] = st.dcond2[j].data();
  }
  {
    for (std::size_t j = 0; j < S; ++j) st.draw_ptrs[j] = st.draw2[j].data();
    s2_->backward(st.const_ptrs, st.draw_ptrs, st.out_ptrs2, N, st.h, st.w, cfg_.hidden, cfg_.negative_slope, st.b2,
                  st.diff_hidden, st.temp_up, st.temp, ctx);
  }
  for (std::size_t j = 0; j < S; ++j) {
    const shape4 s = src[j].shape();
    float* dx = st.dx_dense[j].data() + first_widths_[j];
    kernels::add_pixels(dx, s.c, st.dcond2[j].data(), second_widths_[j], dx, s.c, s.pixels(), second_widths_[j]);
    copy(st.dx_dense[j].cview(), diff_src[j]);
  }
}

}  // namespace v0
}  // namespace flowad
