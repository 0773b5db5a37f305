// CS-Flow's building blocks: the strided convolution (detail::strided_conv2d), the bilinear x2
// upsampling and its adjoint (kernels/upsample2x.hpp), and the cross-scale coupling layer
// (layers/cross_scale_coupling.hpp) against naive double-precision references, its inverse, its
// brute-force log-determinant and finite-difference gradients.
#include <catch2/catch.hpp>
#include <map>
#include <string>

#include "flowad/detail/strided_conv2d.hpp"
#include "flowad/detector.hpp"
#include "flowad/layers/cross_scale_coupling.hpp"
#include "kernels/upsample2x.hpp"
#include "support/layer_checks.hpp"
#include "support/naive.hpp"

using namespace flowad;
using namespace flowad::testing;

namespace {

void fill_uniform(parameter& p, std::uint64_t seed, double bound = 0.5) {
  detail::rng r(seed);
  for (float& v : p.values()) v = static_cast<float>(r.uniform(-bound, bound));
  p.mark_updated();
}

// Convolution with stride s and zero padding k/2 on every side (PyTorch's Conv2d(k, stride=s, padding=k//2)).
dtensor naive_strided_conv(const dtensor& in, const parameter& weights, const parameter* bias, index_t out_channels,
                           index_t k, index_t stride) {
  const index_t pad = k / 2, oh = (in.h - 1) / stride + 1, ow = (in.w - 1) / stride + 1;
  dtensor out(in.n, out_channels, oh, ow);
  const float* wt = weights.data();
  for (index_t i = 0; i < in.n; ++i)
    for (index_t o = 0; o < out_channels; ++o)
      for (index_t y = 0; y < oh; ++y)
        for (index_t x = 0; x < ow; ++x) {
          double acc = bias ? bias->data()[o] : 0.0;
          for (index_t c = 0; c < in.c; ++c)
            for (index_t ky = 0; ky < k; ++ky)
              for (index_t kx = 0; kx < k; ++kx) {
                const index_t yy = y * stride + ky - pad, xx = x * stride + kx - pad;
                if (yy < 0 || yy >= in.h || xx < 0 || xx >= in.w) continue;
                acc += wt[((o * in.c + c) * k + ky) * k + kx] * in.at(i, c, yy, xx);
              }
          out.at(i, o, y, x) = acc;
        }
  return out;
}

// PyTorch's bilinear interpolation (align_corners=False) to twice the size, written from its formula.
dtensor naive_upsample2x(const dtensor& in) {
  dtensor out(in.n, in.c, 2 * in.h, 2 * in.w);
  auto source = [](index_t o, index_t length, index_t& i0, index_t& i1, double& lambda) {
    const double x = std::max(0.0, (o + 0.5) * 0.5 - 0.5);
    i0 = static_cast<index_t>(std::floor(x));
    i1 = std::min(i0 + 1, length - 1);
    lambda = x - static_cast<double>(i0);
  };
  for (index_t n = 0; n < in.n; ++n)
    for (index_t c = 0; c < in.c; ++c)
      for (index_t y = 0; y < out.h; ++y)
        for (index_t x = 0; x < out.w; ++x) {
          index_t y0, y1, x0, x1;
          double ly, lx;
          source(y, in.h, y0, y1, ly);
          source(x, in.w, x0, x1, lx);
          out.at(n, c, y, x) = (1 - ly) * ((1 - lx) * in.at(n, c, y0, x0) + lx * in.at(n, c, y0, x1)) +
                               ly * ((1 - lx) * in.at(n, c, y1, x0) + lx * in.at(n, c, y1, x1));
        }
  return out;
}

// The first h rows and w columns.
dtensor crop(const dtensor& in, index_t h, index_t w) {
  dtensor out(in.n, in.c, h, w);
  for (index_t n = 0; n < in.n; ++n)
    for (index_t c = 0; c < in.c; ++c)
      for (index_t y = 0; y < h; ++y)
        for (index_t x = 0; x < w; ++x) out.at(n, c, y, x) = in.at(n, c, y, x);
  return out;
}

dtensor add(dtensor a, const dtensor& b) {
  for (std::size_t i = 0; i < a.v.size(); ++i) a.v[i] += b.v[i];
  return a;
}

double dot(const_view a, const_view b) {
  double s = 0.0;
  for (index_t n = 0; n < a.n(); ++n)
    for (index_t c = 0; c < a.c(); ++c)
      for (index_t h = 0; h < a.h(); ++h)
        for (index_t w = 0; w < a.w(); ++w) s += static_cast<double>(a(n, c, h, w)) * b(n, c, h, w);
  return s;
}

}  // namespace

// ------------------------------------------------------------------------------------------------
// Strided convolution

TEST_CASE("strided_conv2d matches a naive stride-2 convolution, forward and backward", "[cross_scale][csflow]") {
  struct shape_case {
    index_t n, in, out, h, w, k;
  };
  for (const shape_case sc : {shape_case{2, 5, 7, 8, 6, 3}, shape_case{1, 3, 4, 7, 5, 5}, shape_case{3, 16, 8, 4, 4, 1},
                              shape_case{2, 6, 5, 2, 2, 3}}) {
    INFO("n " << sc.n << " in " << sc.in << " out " << sc.out << " " << sc.h << "x" << sc.w << " k " << sc.k);
    detail::strided_conv2d conv({sc.in, sc.out, sc.k, 2, true});
    parameter weights("w", {sc.out, sc.in, sc.k, sc.k}), bias("b", {sc.out});
    fill_uniform(weights, 1);
    fill_uniform(bias, 2);
    const index_t oh = conv.output_size(sc.h), ow = conv.output_size(sc.w);
    CHECK(oh == (sc.h + 1) / 2);
    const tensor x = random_tensor({sc.n, sc.in, sc.h, sc.w}, layout::nhwc, 3);
    tensor y({sc.n, sc.out, oh, ow}, layout::nhwc);
    workspace ws;
    conv.forward(x.data(), y.data(), sc.n, sc.h, sc.w, weights, &bias, ws.exec());
    const dtensor expected = naive_strided_conv(to_double(x.cview()), weights, &bias, sc.out, sc.k, 2);
    CHECK(relative_error(y.cview(), expected) < 1e-5);
    CHECK(conv.macs(sc.n, sc.h, sc.w) == static_cast<double>(sc.n * oh * ow * sc.out * sc.in * sc.k * sc.k));

    // Backward data is the adjoint of the linear part: <A x, g> = <x, Aᵀ g> for every x, g; checked
    // entry by entry through the naive forward of unit vectors on a few coordinates too.
    const tensor g = random_tensor({sc.n, sc.out, oh, ow}, layout::nhwc, 4);
    tensor dx({sc.n, sc.in, sc.h, sc.w}, layout::nhwc);
    conv.backward_data(g.data(), dx.data(), sc.n, sc.h, sc.w, weights, ws.exec());
    const dtensor linear = naive_strided_conv(to_double(x.cview()), weights, nullptr, sc.out, sc.k, 2);
    double lhs = 0.0;
    for (index_t n = 0; n < sc.n; ++n)
      for (index_t o = 0; o < sc.out; ++o)
        for (index_t yy = 0; yy < oh; ++yy)
          for (index_t xx = 0; xx < ow; ++xx) lhs += linear.at(n, o, yy, xx) * g(n, o, yy, xx);
    CHECK(dot(x.cview(), dx.cview()) == Approx(lhs).epsilon(1e-5));
    for (index_t i : {index_t{0}, x.numel() / 3, x.numel() - 1}) {
      tensor unit({sc.n, sc.in, sc.h, sc.w}, layout::nhwc);
      unit.fill(0.0f);
      unit.data()[i] = 1.0f;
      const dtensor column = naive_strided_conv(to_double(unit.cview()), weights, nullptr, sc.out, sc.k, 2);
      double expected_entry = 0.0;
      for (index_t n = 0; n < sc.n; ++n)
        for (index_t o = 0; o < sc.out; ++o)
          for (index_t yy = 0; yy < oh; ++yy)
            for (index_t xx = 0; xx < ow; ++xx) expected_entry += column.at(n, o, yy, xx) * g(n, o, yy, xx);
      CHECK(dx.data()[i] == Approx(expected_entry).margin(1e-5).epsilon(1e-5));
    }

    // Backward weights accumulates dL/dW = Σ g·x and dL/db = Σ g, for L = <conv(x), g>.
    weights.zero_grad();
    bias.zero_grad();
    weights.grad()[0] = 1.0f;  // accumulates onto what is there
    conv.backward_weights(x.data(), g.data(), sc.n, sc.h, sc.w, weights, &bias, ws.exec());
    const index_t pad = sc.k / 2;
    double worst = 0.0, scale = 0.0;
    for (index_t o = 0; o < sc.out; ++o)
      for (index_t c = 0; c < sc.in; ++c)
        for (index_t ky = 0; ky < sc.k; ++ky)
          for (index_t kx = 0; kx < sc.k; ++kx) {
            double expected_grad = (o == 0 && c == 0 && ky == 0 && kx == 0) ? 1.0 : 0.0;
            for (index_t n = 0; n < sc.n; ++n)
              for (index_t yy = 0; yy < oh; ++yy)
                for (index_t xx = 0; xx < ow; ++xx) {
                  const index_t iy = yy * 2 + ky - pad, ix = xx * 2 + kx - pad;
                  if (iy < 0 || iy >= sc.h || ix < 0 || ix >= sc.w) continue;
                  expected_grad += static_cast<double>(g(n, o, yy, xx)) * x(n, c, iy, ix);
                }
            const float actual = weights.grad()[((o * sc.in + c) * sc.k + ky) * sc.k + kx];
            worst = std::max(worst, std::abs(actual - expected_grad));
            scale = std::max(scale, std::abs(expected_grad));
          }
    CHECK(worst <= 1e-5 * std::max(scale, 1.0));
    for (index_t o = 0; o < sc.out; ++o) {
      double expected_bias = 0.0;
      for (index_t n = 0; n < sc.n; ++n)
        for (index_t yy = 0; yy < oh; ++yy)
          for (index_t xx = 0; xx < ow; ++xx) expected_bias += g(n, o, yy, xx);
      CHECK(bias.grad()[o] == Approx(expected_bias).margin(1e-5));
    }
  }
}

TEST_CASE("strided_conv2d rejects bad configurations", "[cross_scale][csflow]") {
  CHECK_THROWS_WITH(detail::strided_conv2d({0, 4, 3, 2, true}), Catch::Contains("channels must be positive"));
  CHECK_THROWS_WITH(detail::strided_conv2d({4, 4, 4, 2, true}), Catch::Contains("odd"));
  CHECK_THROWS_WITH(detail::strided_conv2d({4, 4, 3, 0, true}), Catch::Contains("stride"));
}

// ------------------------------------------------------------------------------------------------
// Bilinear x2 upsampling

TEST_CASE("upsample2x is PyTorch's bilinear x2 (align_corners=False) and its adjoint is exact",
          "[cross_scale][csflow]") {
  // torch.nn.Upsample(scale_factor=2, mode='bilinear')(torch.tensor([[[[1., 2.], [3., 4.]]]])).
  {
    const float in[4] = {1, 2, 3, 4};
    float out[16];
    kernels::upsample2x_bilinear(in, out, 1, 2, 2, 1);
    const float expected[16] = {1.0f, 1.25f, 1.75f, 2.0f, 1.5f, 1.75f, 2.25f, 2.5f,
                                2.5f, 2.75f, 3.25f, 3.5f, 3.0f, 3.25f, 3.75f, 4.0f};
    for (int i = 0; i < 16; ++i) CHECK(out[i] == expected[i]);
  }
  struct shape_case {
    index_t n, c, h, w;
  };
  for (const shape_case sc :
       {shape_case{2, 3, 3, 5}, shape_case{1, 17, 1, 1}, shape_case{3, 8, 6, 4}, shape_case{1, 2, 1, 7}}) {
    INFO(sc.n << "x" << sc.c << "x" << sc.h << "x" << sc.w);
    const tensor x = random_tensor({sc.n, sc.c, sc.h, sc.w}, layout::nhwc, 5);
    tensor y({sc.n, sc.c, 2 * sc.h, 2 * sc.w}, layout::nhwc);
    kernels::upsample2x_bilinear(x.data(), y.data(), sc.n, sc.h, sc.w, sc.c);
    CHECK(relative_error(y.cview(), naive_upsample2x(to_double(x.cview()))) < 1e-6);

    const tensor g = random_tensor(y.shape(), layout::nhwc, 6);
    tensor dx(x.shape(), layout::nhwc);
    kernels::upsample2x_bilinear_adjoint(g.data(), dx.data(), sc.n, sc.h, sc.w, sc.c);
    CHECK(dot(x.cview(), dx.cview()) == Approx(dot(y.cview(), g.cview())).epsilon(1e-5));

    // Cropped by the last row and column (a coarse scale of ceil(H/2) cells under an odd finer one).
    tensor cropped({sc.n, sc.c, 2 * sc.h - 1, 2 * sc.w - 1}, layout::nhwc);
    kernels::upsample2x_bilinear(x.data(), cropped.data(), sc.n, sc.h, sc.w, sc.c, 2 * sc.h - 1, 2 * sc.w - 1);
    CHECK(relative_error(cropped.cview(), crop(naive_upsample2x(to_double(x.cview())), 2 * sc.h - 1, 2 * sc.w - 1)) <
          1e-6);
    const tensor g_cropped = random_tensor(cropped.shape(), layout::nhwc, 7);
    kernels::upsample2x_bilinear_adjoint(g_cropped.data(), dx.data(), sc.n, sc.h, sc.w, sc.c, 2 * sc.h - 1,
                                         2 * sc.w - 1);
    CHECK(dot(x.cview(), dx.cview()) == Approx(dot(cropped.cview(), g_cropped.cview())).epsilon(1e-5));
    kernels::upsample2x_bilinear_adjoint(g.data(), dx.data(), sc.n, sc.h, sc.w, sc.c);
    // Entry by entry: dx_i = <U e_i, g>.
    for (index_t i = 0; i < x.numel(); i += std::max<index_t>(1, x.numel() / 7)) {
      tensor unit(x.shape(), layout::nhwc);
      unit.fill(0.0f);
      unit.data()[i] = 1.0f;
      tensor column(y.shape(), layout::nhwc);
      kernels::upsample2x_bilinear(unit.data(), column.data(), sc.n, sc.h, sc.w, sc.c);
      CHECK(dx.data()[i] == Approx(dot(column.cview(), g.cview())).margin(1e-6));
    }
  }
}

// ------------------------------------------------------------------------------------------------
// The cross-scale coupling

namespace {

// The layer seen as a flow_layer on N x D x 1 x 1 (each sample's scales packed one after another, each in
// NHWC order), with the scales' log-determinants summed: what the shared layer checks take.
class packed_coupling final : public flow_layer {
 public:
  packed_coupling(cross_scale_coupling& layer, std::vector<scale_shape> shapes)
      : layer_(layer), shapes_(std::move(shapes)) {}

  const char* kind() const noexcept override { return "cross_scale_coupling"; }
  index_t channels() const noexcept override {
    index_t d = 0;
    for (const scale_shape& s : shapes_) d += s.channels * s.height * s.width;
    return d;
  }

  void forward(const_view src, view dst, span<double> logdet, workspace& ws, pass_mode mode) const override {
    unpack(src, in_);
    size_like(in_, out_);
    std::vector<double> per_scale(shapes_.size() * static_cast<std::size_t>(src.n()), 0.0);
    const std::vector<const_view> in = const_views(in_);
    const std::vector<view> out = views(out_);
    layer_.forward(in, out, per_scale, ws, mode);
    pack(out_, dst);
    for (std::size_t j = 0; j < shapes_.size(); ++j)
      for (index_t n = 0; n < src.n(); ++n) logdet[static_cast<std::size_t>(n)] += per_scale[j * src.n() + n];
  }
  void inverse(const_view dst, view src, workspace& ws) const override {
    unpack(dst, out_);
    size_like(out_, in_);
    const std::vector<const_view> in = const_views(out_);
    const std::vector<view> out = views(in_);
    layer_.inverse(in, out, ws);
    pack(in_, src);
  }
  void backward(const_view src, const_view dst, const_view diff_dst, span<const double> diff_logdet, view diff_src,
                workspace& ws) override {
    std::vector<tensor> x, y, dy, dx;
    unpack(src, x);
    unpack(dst, y);
    unpack(diff_dst, dy);
    size_like(x, dx);
    std::vector<double> per_scale;
    for (std::size_t j = 0; j < shapes_.size(); ++j)
      per_scale.insert(per_scale.end(), diff_logdet.begin(), diff_logdet.end());
    const std::vector<const_view> xv = const_views(x), yv = const_views(y), dyv = const_views(dy);
    const std::vector<view> dxv = views(dx);
    layer_.backward(xv, yv, dyv, per_scale, dxv, ws);
    pack(dx, diff_src);
  }
  std::vector<parameter*> parameters() override { return layer_.parameters(); }

 private:
  static std::vector<const_view> const_views(const std::vector<tensor>& t) {
    std::vector<const_view> v;
    for (const tensor& x : t) v.push_back(x.cview());
    return v;
  }
  static std::vector<view> views(std::vector<tensor>& t) {
    std::vector<view> v;
    for (tensor& x : t) v.push_back(x.view());
    return v;
  }
  static void size_like(const std::vector<tensor>& from, std::vector<tensor>& to) {
    to.resize(from.size());
    for (std::size_t j = 0; j < from.size(); ++j) to[j].resize(from[j].shape(), layout::nhwc);
  }
  void unpack(const_view packed, std::vector<tensor>& scales) const {
    scales.resize(shapes_.size());
    for (index_t n = 0; n < packed.n(); ++n) {
      index_t offset = 0;
      for (std::size_t j = 0; j < shapes_.size(); ++j) {
        const scale_shape& s = shapes_[j];
        scales[j].resize({packed.n(), s.channels, s.height, s.width}, layout::nhwc);
        const index_t count = s.channels * s.height * s.width;
        for (index_t i = 0; i < count; ++i) scales[j].data()[n * count + i] = packed(n, offset + i, 0, 0);
        offset += count;
      }
    }
  }
  void pack(const std::vector<tensor>& scales, view packed) const {
    for (index_t n = 0; n < packed.n(); ++n) {
      index_t offset = 0;
      for (std::size_t j = 0; j < shapes_.size(); ++j) {
        const index_t count = scales[j].numel() / packed.n();
        for (index_t i = 0; i < count; ++i) packed(n, offset + i, 0, 0) = scales[j].data()[n * count + i];
        offset += count;
      }
    }
  }

  cross_scale_coupling& layer_;
  std::vector<scale_shape> shapes_;
  mutable std::vector<tensor> in_, out_;
};

std::map<std::string, const parameter*> parameters_by_name(cross_scale_coupling& layer) {
  std::map<std::string, const parameter*> m;
  for (parameter* p : layer.parameters()) m[p->name()] = p;
  return m;
}

// CrossConvolutions in double from the layer's parameters ("s1." or "s2.").
std::vector<dtensor> reference_cross_convolutions(const std::map<std::string, const parameter*>& p,
                                                  const std::string& name, const std::vector<dtensor>& in,
                                                  const cross_scale_coupling_config& cfg) {
  const std::size_t S = in.size();
  std::vector<dtensor> hidden, raw;
  auto at = [&](std::size_t j, const char* what) { return p.at(name + "scale" + std::to_string(j) + "." + what); };
  for (std::size_t j = 0; j < S; ++j)
    hidden.push_back(naive_conv(in[j], *at(j, "conv_in.weight"), at(j, "conv_in.bias"), cfg.hidden, cfg.kernel, true,
                                cfg.negative_slope));
  for (std::size_t j = 0; j < S; ++j) {
    const index_t out = at(j, "conv_out.bias")->dims()[0];
    dtensor r = naive_conv(hidden[j], *at(j, "conv_out.weight"), at(j, "conv_out.bias"), out, cfg.kernel);
    if (j + 1 < S)
      r = add(r, naive_conv(crop(naive_upsample2x(hidden[j + 1]), in[j].h, in[j].w), *at(j, "up_conv.weight"),
                            at(j, "up_conv.bias"), out, cfg.kernel));
    if (j > 0)
      r = add(r, naive_strided_conv(hidden[j - 1], *at(j, "down_conv.weight"), at(j, "down_conv.bias"), out, cfg.kernel,
                                    2));
    raw.push_back(r);
  }
  return raw;
}

// The whole layer in double on NCHW scales: outputs and log-determinant per scale and sample.
struct reference_result {
  std::vector<dtensor> y;
  std::vector<std::vector<double>> logdet;  // [scale][sample]
};
reference_result reference_coupling(cross_scale_coupling& layer, const std::vector<dtensor>& x) {
  const cross_scale_coupling_config& cfg = layer.config();
  const auto p = parameters_by_name(layer);
  const std::size_t S = x.size();
  reference_result out;
  std::vector<dtensor> first(S), second(S), y1(S);
  for (std::size_t j = 0; j < S; ++j) {
    const index_t c1 = x[j].c / 2, c2 = x[j].c - c1;
    first[j] = dtensor(x[j].n, c1, x[j].h, x[j].w);
    second[j] = dtensor(x[j].n, c2, x[j].h, x[j].w);
    for (index_t n = 0; n < x[j].n; ++n)
      for (index_t c = 0; c < x[j].c; ++c)
        for (index_t h = 0; h < x[j].h; ++h)
          for (index_t w = 0; w < x[j].w; ++w)
            (c < c1 ? first[j].at(n, c, h, w) : second[j].at(n, c - c1, h, w)) = x[j].at(n, c, h, w);
  }
  out.logdet.assign(S, std::vector<double>(static_cast<std::size_t>(x[0].n), 0.0));
  // (x, raw, γ) → x·exp(φ(γ·raw_s)) + γ·raw_t, adding Σφ to the scale's log-determinant.
  const auto couple = [&](std::size_t j, const dtensor& xs, const dtensor& raw, double gamma) {
    dtensor y(xs.n, xs.c, xs.h, xs.w);
    for (index_t n = 0; n < xs.n; ++n)
      for (index_t c = 0; c < xs.c; ++c)
        for (index_t h = 0; h < xs.h; ++h)
          for (index_t w = 0; w < xs.w; ++w) {
            const double s = cfg.clamp.apply(gamma * raw.at(n, c, h, w)), t = gamma * raw.at(n, xs.c + c, h, w);
            y.at(n, c, h, w) = xs.at(n, c, h, w) * std::exp(s) + t;
            out.logdet[j][static_cast<std::size_t>(n)] += s;
          }
    return y;
  };
  const std::vector<dtensor> raw2 = reference_cross_convolutions(p, "s2.", second, cfg);
  for (std::size_t j = 0; j < S; ++j) y1[j] = couple(j, first[j], raw2[j], p.at("s2.gamma")->data()[j]);
  const std::vector<dtensor> raw1 = reference_cross_convolutions(p, "s1.", y1, cfg);
  for (std::size_t j = 0; j < S; ++j) {
    const dtensor y2 = couple(j, second[j], raw1[j], p.at("s1.gamma")->data()[j]);
    dtensor y(x[j].n, x[j].c, x[j].h, x[j].w);
    const index_t c1 = y1[j].c;
    for (index_t n = 0; n < y.n; ++n)
      for (index_t c = 0; c < y.c; ++c)
        for (index_t h = 0; h < y.h; ++h)
          for (index_t w = 0; w < y.w; ++w) {
            const double v = c < c1 ? y1[j].at(n, c, h, w) : y2.at(n, c - c1, h, w);
            y.at(n, c, h, w) = std::min(std::max(v, -double(cfg.output_limit)), double(cfg.output_limit));
          }
    out.y.push_back(y);
  }
  return out;
}

cross_scale_coupling_config tiny_config(std::vector<index_t> channels, index_t kernel, index_t hidden = 6) {
  cross_scale_coupling_config cfg;
  cfg.channels = std::move(channels);
  cfg.hidden = hidden;
  cfg.kernel = kernel;
  cfg.seed = 11;
  return cfg;
}

// Non-zero γs (a new layer is the identity, which would test little).
void set_gammas(cross_scale_coupling& layer, std::uint64_t seed) {
  detail::rng r(seed);
  for (parameter* p : layer.parameters())
    if (p->name().find("gamma") != std::string::npos) {
      for (float& v : p->values()) v = static_cast<float>(r.uniform(0.3, 0.9) * (r.uniform() < 0.5 ? -1 : 1));
      p->mark_updated();
    }
}

std::vector<tensor> random_scales(index_t n, const std::vector<scale_shape>& shapes, std::uint64_t seed) {
  std::vector<tensor> t;
  for (std::size_t j = 0; j < shapes.size(); ++j)
    t.push_back(random_tensor({n, shapes[j].channels, shapes[j].height, shapes[j].width}, layout::nhwc, seed + j));
  return t;
}

}  // namespace

TEST_CASE("cross_scale_coupling starts as the identity and matches a naive double reference", "[cross_scale][csflow]") {
  for (const index_t kernel : {index_t{3}, index_t{5}}) {
    INFO("kernel " << kernel);
    // Channels differ per scale; with kernel 5, odd sizes (the upsampling cropped).
    const std::vector<scale_shape> shapes = kernel == 3 ? std::vector<scale_shape>{{6, 8, 4}, {5, 4, 2}, {4, 2, 1}}
                                                        : std::vector<scale_shape>{{6, 7, 5}, {5, 4, 3}, {4, 2, 2}};
    cross_scale_coupling layer(tiny_config({6, 5, 4}, kernel));
    const std::vector<tensor> x = random_scales(2, shapes, 21);
    std::vector<tensor> y(3);
    std::vector<const_view> in;
    std::vector<view> out;
    for (std::size_t j = 0; j < 3; ++j) {
      y[j].resize(x[j].shape(), layout::nchw);  // a non-NHWC output too
      in.push_back(x[j].cview());
      out.push_back(y[j].view());
    }
    std::vector<double> logdet(6, 0.0);
    workspace ws;
    layer.forward(in, out, logdet, ws);
    for (std::size_t j = 0; j < 3; ++j) CHECK(max_abs_diff(x[j].cview(), y[j].cview()) == 0.0);
    for (double v : logdet) CHECK(v == 0.0);

    set_gammas(layer, 5);
    std::fill(logdet.begin(), logdet.end(), 0.0);
    layer.forward(in, out, logdet, ws);
    std::vector<dtensor> xd;
    for (const tensor& t : x) xd.push_back(to_double(t.cview()));
    const reference_result expected = reference_coupling(layer, xd);
    for (std::size_t j = 0; j < 3; ++j) {
      CHECK(relative_error(y[j].cview(), expected.y[j]) < 1e-5);
      for (std::size_t n = 0; n < 2; ++n)
        CHECK(logdet[j * 2 + n] == Approx(expected.logdet[j][n]).epsilon(1e-4).margin(1e-4));
    }
    CHECK(layer.macs_per_sample(shapes[0].height, shapes[0].width) > 0.0);
  }
}

TEST_CASE("cross_scale_coupling inverts, and its log-determinant is the Jacobian's", "[cross_scale][csflow]") {
  const std::vector<scale_shape> shapes{{4, 4, 4}, {6, 2, 2}, {4, 1, 1}};
  cross_scale_coupling layer(tiny_config({4, 6, 4}, 3));
  set_gammas(layer, 7);
  packed_coupling packed(layer, shapes);
  const index_t d = packed.channels();
  check_round_trip(packed, random_tensor({3, d, 1, 1}, layout::nchw, 31).view(), 1e-4);
  check_logdet(packed, random_tensor({1, d, 1, 1}, layout::nchw, 32).view(), 2e-3);

  // Odd sizes: 3x5, 2x3, 1x2.
  const std::vector<scale_shape> odd{{4, 3, 5}, {6, 2, 3}, {4, 1, 2}};
  packed_coupling packed_odd(layer, odd);
  check_round_trip(packed_odd, random_tensor({2, packed_odd.channels(), 1, 1}, layout::nchw, 35).view(), 1e-4);
  check_logdet(packed_odd, random_tensor({1, packed_odd.channels(), 1, 1}, layout::nchw, 36).view(), 2e-3);

  // Two scales and kernel 5: the general case holds beyond CS-Flow's three.
  cross_scale_coupling two(tiny_config({5, 3}, 5));
  set_gammas(two, 8);
  packed_coupling packed_two(two, {{5, 4, 2}, {3, 2, 1}});
  check_round_trip(packed_two, random_tensor({2, packed_two.channels(), 1, 1}, layout::nchw, 33).view(), 1e-4);
  check_logdet(packed_two, random_tensor({1, packed_two.channels(), 1, 1}, layout::nchw, 34).view(), 2e-3);
}

TEST_CASE("cross_scale_coupling's gradients match finite differences", "[cross_scale][csflow]") {
  cross_scale_coupling layer(tiny_config({4, 6, 4}, 3));
  set_gammas(layer, 9);
  for (const std::vector<scale_shape>& shapes : {std::vector<scale_shape>{{4, 4, 4}, {6, 2, 2}, {4, 1, 1}},
                                                 std::vector<scale_shape>{{4, 3, 3}, {6, 2, 2}, {4, 1, 1}}}) {
    packed_coupling packed(layer, shapes);
    const reference_forward reference = [&](const_view x) {
      std::vector<dtensor> scales;
      index_t offset = 0;
      for (const scale_shape& s : shapes) {
        dtensor d(x.n(), s.channels, s.height, s.width);
        const index_t count = s.channels * s.height * s.width;
        for (index_t n = 0; n < x.n(); ++n)
          for (index_t h = 0; h < s.height; ++h)
            for (index_t w = 0; w < s.width; ++w)
              for (index_t c = 0; c < s.channels; ++c)
                d.at(n, c, h, w) = x(n, offset + (h * s.width + w) * s.channels + c, 0, 0);
        offset += count;
        scales.push_back(d);
      }
      const reference_result r = reference_coupling(layer, scales);
      reference_output out{dtensor(x.n(), x.c(), 1, 1), std::vector<double>(static_cast<std::size_t>(x.n()), 0.0)};
      offset = 0;
      for (std::size_t j = 0; j < shapes.size(); ++j) {
        const scale_shape& s = shapes[j];
        for (index_t n = 0; n < x.n(); ++n) {
          for (index_t h = 0; h < s.height; ++h)
            for (index_t w = 0; w < s.width; ++w)
              for (index_t c = 0; c < s.channels; ++c)
                out.y.at(n, offset + (h * s.width + w) * s.channels + c, 0, 0) = r.y[j].at(n, c, h, w);
          out.logdet[static_cast<std::size_t>(n)] += r.logdet[j][static_cast<std::size_t>(n)];
        }
        offset += s.channels * s.height * s.width;
      }
      return out;
    };
    gradient_check_options opt;
    opt.samples_per_tensor = 12;
    check_gradients(packed, random_tensor({2, packed.channels(), 1, 1}, layout::nchw, 41).view(), opt, reference);
  }
}

TEST_CASE("cross_scale_coupling rejects scales that do not halve, and wrong inputs", "[cross_scale][csflow]") {
  cross_scale_coupling layer(tiny_config({4, 4, 4}, 3));
  workspace ws;
  const auto run = [&](std::vector<scale_shape> shapes, std::size_t logdet_size) {
    std::vector<tensor> x = random_scales(1, shapes, 1), y(shapes.size());
    std::vector<const_view> in;
    std::vector<view> out;
    for (std::size_t j = 0; j < shapes.size(); ++j) {
      y[j].resize(x[j].shape(), layout::nhwc);
      in.push_back(x[j].cview());
      out.push_back(y[j].view());
    }
    std::vector<double> logdet(logdet_size, 0.0);
    layer.forward(in, out, logdet, ws);
  };
  CHECK_NOTHROW(run({{4, 8, 12}, {4, 4, 6}, {4, 2, 3}}, 3));
  CHECK_NOTHROW(run({{4, 7, 5}, {4, 4, 3}, {4, 2, 2}}, 3));  // odd sizes: halves rounded up
  CHECK_THROWS_WITH(run({{4, 8, 12}, {4, 4, 6}, {4, 2, 2}}, 3),
                    Catch::Contains("half of the previous one") && Catch::Contains("2x2 after 4x6"));
  CHECK_THROWS_WITH(run({{4, 8, 8}, {4, 5, 4}, {4, 3, 2}}, 3), Catch::Contains("half of the previous one"));
  CHECK_THROWS_WITH(run({{4, 7, 8}, {4, 3, 4}, {4, 2, 2}}, 3), Catch::Contains("3x4 after 7x8"));
  CHECK_THROWS_WITH(run({{4, 8, 8}, {4, 4, 4}}, 2), Catch::Contains("3 scales"));
  CHECK_THROWS_WITH(run({{4, 8, 8}, {5, 4, 4}, {4, 2, 2}}, 3),
                    Catch::Contains("5 channels") || Catch::Contains("4 channels"));
  CHECK_THROWS_WITH(run({{4, 8, 8}, {4, 4, 4}, {4, 2, 2}}, 2), Catch::Contains("logdet"));
  CHECK_THROWS_WITH(cross_scale_coupling(tiny_config({4, 1}, 3)), Catch::Contains("at least 2 channels"));
  CHECK_THROWS_WITH(cross_scale_coupling(tiny_config({4, 4}, 4)), Catch::Contains("kernel"));
  CHECK_THROWS_WITH(cross_scale_coupling(tiny_config({4, 4}, 3, 0)), Catch::Contains("hidden"));
}
