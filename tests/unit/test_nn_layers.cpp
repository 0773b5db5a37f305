// The teacher-student network layers (nn::conv, deconv, batch_norm, max pool, element-wise, bilinear
// resize) against naive double-precision loops, their gradients against central differences of those
// loops, and their argument checks. Sizes are odd and non-square, batches larger than one, channel counts
// not multiples of the SIMD width, so that an index, stride or transpose error shows.
#include <catch2/catch.hpp>

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "flowad/detail/random.hpp"
#include "flowad/detail/strided_conv2d.hpp"
#include "flowad/nn/batch_norm.hpp"
#include "flowad/nn/conv.hpp"
#include "flowad/nn/deconv.hpp"
#include "flowad/nn/elementwise.hpp"
#include "flowad/nn/pooling.hpp"
#include "flowad/nn/resize_bilinear.hpp"
#include "support/numeric_gradient.hpp"

using namespace flowad;
using namespace flowad::testing;

namespace {

std::vector<float> random_values(std::size_t count, std::uint64_t seed, double lo = -1.0, double hi = 1.0) {
  detail::rng r(seed);
  std::vector<float> v(count);
  for (float& x : v) x = static_cast<float>(r.uniform(lo, hi));
  return v;
}

void fill(parameter& p, std::uint64_t seed, double lo = -1.0, double hi = 1.0) {
  const std::vector<float> v = random_values(p.size(), seed, lo, hi);
  std::copy(v.begin(), v.end(), p.values().begin());
  p.mark_updated();
}

std::vector<double> to_double(const std::vector<float>& v) { return {v.begin(), v.end()}; }
std::vector<double> to_double(const parameter& p) { return {p.values().begin(), p.values().end()}; }

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// max |actual − expected| / max |expected|.
template <class A>
double relative_error(const A& actual, const std::vector<double>& expected) {
  REQUIRE(actual.size() == expected.size());
  double diff = 0.0, scale = std::numeric_limits<double>::min();
  for (std::size_t i = 0; i < expected.size(); ++i) {
    diff = std::max(diff, std::abs(static_cast<double>(actual[i]) - expected[i]));
    scale = std::max(scale, std::abs(expected[i]));
  }
  return diff / scale;
}

template <class F>
void expect_error(F&& f, errc code, const std::string& fragment) {
  try {
    f();
    FAIL("no error thrown; expected one mentioning \"" << fragment << "\"");
  } catch (const error& e) {
    INFO(e.what());
    CHECK(e.code() == code);
    CHECK(std::string(e.what()).find(fragment) != std::string::npos);
  }
}

// NHWC index of (n, c, y, x) in an n x channels x h x w buffer.
inline std::size_t nhwc(index_t n, index_t c, index_t y, index_t x, index_t channels, index_t h, index_t w) {
  return static_cast<std::size_t>(((n * h + y) * w + x) * channels + c);
}

// ------------------------------------------------------------------------------------------------ conv
struct conv_shape {
  index_t n, in, out, h, w, kernel, stride;
  index_t oh() const { return (h - 1) / stride + 1; }
  index_t ow() const { return (w - 1) / stride + 1; }
};

// PyTorch's Conv2d(padding = k/2) on NHWC, weights OIHW.
std::vector<double> naive_conv(const conv_shape& s, const std::vector<double>& x, const std::vector<double>& weight,
                               const std::vector<double>* bias) {
  const index_t pad = s.kernel / 2;
  std::vector<double> y(static_cast<std::size_t>(s.n * s.out * s.oh() * s.ow()), 0.0);
  for (index_t n = 0; n < s.n; ++n)
    for (index_t o = 0; o < s.out; ++o)
      for (index_t oy = 0; oy < s.oh(); ++oy)
        for (index_t ox = 0; ox < s.ow(); ++ox) {
          double acc = bias ? (*bias)[static_cast<std::size_t>(o)] : 0.0;
          for (index_t i = 0; i < s.in; ++i)
            for (index_t ky = 0; ky < s.kernel; ++ky)
              for (index_t kx = 0; kx < s.kernel; ++kx) {
                const index_t y0 = oy * s.stride + ky - pad, x0 = ox * s.stride + kx - pad;
                if (y0 < 0 || y0 >= s.h || x0 < 0 || x0 >= s.w) continue;
                acc += weight[static_cast<std::size_t>(((o * s.in + i) * s.kernel + ky) * s.kernel + kx)] *
                       x[nhwc(n, i, y0, x0, s.in, s.h, s.w)];
              }
          y[nhwc(n, o, oy, ox, s.out, s.oh(), s.ow())] = acc;
        }
  return y;
}

}  // namespace

TEST_CASE("nn::conv forward matches a naive convolution at strides 1 and 2", "[nn]") {
  for (const index_t kernel : {1, 3, 7})
    for (const index_t stride : {1, 2})
      for (const bool with_bias : {false, true}) {
        const conv_shape s{2, 3, 5, 7, 10, kernel, stride};
        nn::conv layer({s.in, s.out, kernel, stride, with_bias, 11}, "c");
        if (with_bias) fill(*layer.bias(), 12);
        const std::vector<float> x = random_values(static_cast<std::size_t>(s.n * s.in * s.h * s.w), 13);
        std::vector<float> y(static_cast<std::size_t>(s.n * s.out * s.oh() * s.ow()));
        workspace ws;
        layer.forward(x.data(), y.data(), s.n, s.h, s.w, ws);
        const std::vector<double> bias = with_bias ? to_double(*layer.bias()) : std::vector<double>();
        const auto expected = naive_conv(s, to_double(x), to_double(layer.weight()), with_bias ? &bias : nullptr);
        INFO("kernel " << kernel << ", stride " << stride << ", bias " << with_bias);
        CHECK(layer.output_size(7) == s.oh());
        CHECK(relative_error(y, expected) < 1e-5);
        CHECK(layer.macs(s.n, s.h, s.w) == Approx(double(s.n * s.oh() * s.ow() * s.out * s.in * kernel * kernel)));
      }
}

TEST_CASE("nn::conv gradients match central differences", "[nn]") {
  for (const index_t kernel : {1, 3, 7})
    for (const index_t stride : {1, 2}) {
      const conv_shape s{2, 3, 4, 7, 6, kernel, stride};
      nn::conv layer({s.in, s.out, kernel, stride, true, 21}, "c");
      fill(*layer.bias(), 22);
      std::vector<double> x = to_double(random_values(static_cast<std::size_t>(s.n * s.in * s.h * s.w), 23));
      std::vector<double> weight = to_double(layer.weight()), bias = to_double(*layer.bias());
      const std::vector<double> a = to_double(random_values(static_cast<std::size_t>(s.n * s.out * s.oh() * s.ow()), 24));
      auto loss = [&] { return dot(a, naive_conv(s, x, weight, &bias)); };

      const std::vector<float> xf(x.begin(), x.end()), af(a.begin(), a.end());
      std::vector<float> diff_x(xf.size(), 7.0f);  // overwritten
      layer.weight().zero_grad();
      layer.bias()->zero_grad();
      workspace ws;
      layer.backward(xf.data(), af.data(), diff_x.data(), s.n, s.h, s.w, ws);
      INFO("kernel " << kernel << ", stride " << stride);
      CHECK(relative_error(diff_x, numeric_gradient_fixed_step(x, loss, 1e-3)) < 1e-5);
      CHECK(relative_error(layer.weight().gradients(), numeric_gradient_fixed_step(weight, loss, 1e-3)) < 1e-5);
      CHECK(relative_error(layer.bias()->gradients(), numeric_gradient_fixed_step(bias, loss, 1e-3)) < 1e-5);

      // Gradients accumulate; a null diff_src computes only the parameters'.
      const std::vector<float> first(layer.weight().gradients().begin(), layer.weight().gradients().end());
      layer.backward(xf.data(), af.data(), nullptr, s.n, s.h, s.w, ws);
      for (std::size_t i = 0; i < first.size(); ++i) CHECK(layer.weight().grad()[i] == Approx(2.0 * first[i]).margin(1e-5));
    }
}

namespace {

// The exact gradients of Σ a ⊙ conv(x) in double (the transpose loops of naive_conv).
void naive_conv_backward(const conv_shape& s, const std::vector<double>& x, const std::vector<double>& weight,
                         const std::vector<double>& a, std::vector<double>& grad_x, std::vector<double>& grad_w) {
  const index_t pad = s.kernel / 2;
  grad_x.assign(x.size(), 0.0);
  grad_w.assign(weight.size(), 0.0);
  for (index_t n = 0; n < s.n; ++n)
    for (index_t o = 0; o < s.out; ++o)
      for (index_t oy = 0; oy < s.oh(); ++oy)
        for (index_t ox = 0; ox < s.ow(); ++ox) {
          const double g = a[nhwc(n, o, oy, ox, s.out, s.oh(), s.ow())];
          for (index_t i = 0; i < s.in; ++i)
            for (index_t ky = 0; ky < s.kernel; ++ky)
              for (index_t kx = 0; kx < s.kernel; ++kx) {
                const index_t y0 = oy * s.stride + ky - pad, x0 = ox * s.stride + kx - pad;
                if (y0 < 0 || y0 >= s.h || x0 < 0 || x0 >= s.w) continue;
                const auto wi = static_cast<std::size_t>(((o * s.in + i) * s.kernel + ky) * s.kernel + kx);
                const std::size_t xi = nhwc(n, i, y0, x0, s.in, s.h, s.w);
                grad_x[xi] += weight[wi] * g;
                grad_w[wi] += x[xi] * g;
              }
        }
}

}  // namespace

TEST_CASE("nn::conv on ResNet-like channel counts (Winograd at stride 1) matches the naive passes", "[nn]") {
  for (const index_t stride : {1, 2}) {
    const conv_shape s{4, 32, 48, 16, 13, 3, stride};  // at stride 1, 64 output tiles: Winograd
    nn::conv layer({s.in, s.out, 3, stride, false, 71}, "c");
    const std::vector<float> x = random_values(static_cast<std::size_t>(s.n * s.in * s.h * s.w), 72);
    const std::vector<float> a = random_values(static_cast<std::size_t>(s.n * s.out * s.oh() * s.ow()), 73);
    std::vector<float> y(a.size()), diff_x(x.size());
    workspace ws;
    layer.forward(x.data(), y.data(), s.n, s.h, s.w, ws);
    const auto weight = to_double(layer.weight());
    INFO("stride " << stride);
    CHECK(relative_error(y, naive_conv(s, to_double(x), weight, nullptr)) < 1e-5);
    layer.backward(x.data(), a.data(), diff_x.data(), s.n, s.h, s.w, ws);
    std::vector<double> grad_x, grad_w;
    naive_conv_backward(s, to_double(x), weight, to_double(a), grad_x, grad_w);
    CHECK(relative_error(diff_x, grad_x) < 1e-5);
    CHECK(relative_error(layer.weight().gradients(), grad_w) < 1e-5);
  }
}

TEST_CASE("nn::conv initialises like torchvision's ResNet (kaiming normal, fan out)", "[nn]") {
  nn::conv layer({64, 128, 3, 1, true, 5}, "layer1.0.conv1");
  CHECK(layer.weight().name() == "layer1.0.conv1.weight");
  CHECK(layer.bias()->name() == "layer1.0.conv1.bias");
  CHECK(layer.parameters().size() == 2);
  const auto w = to_double(layer.weight());
  double mean = 0.0, sq = 0.0;
  for (double v : w) mean += v;
  mean /= static_cast<double>(w.size());
  for (double v : w) sq += (v - mean) * (v - mean);
  const double std_dev = std::sqrt(sq / static_cast<double>(w.size()));
  const double expected = std::sqrt(2.0 / (128.0 * 9.0));
  CHECK(std::abs(std_dev / expected - 1.0) < 0.02);
  CHECK(std::abs(mean) < 4.0 * expected / std::sqrt(static_cast<double>(w.size())));  // four standard errors
  for (float b : layer.bias()->values()) CHECK(b == 0.0f);
  // The seed decides the draw.
  nn::conv same({64, 128, 3, 1, true, 5}, "x"), other({64, 128, 3, 1, true, 6}, "x");
  CHECK(std::equal(same.weight().values().begin(), same.weight().values().end(), layer.weight().values().begin()));
  CHECK(other.weight().data()[0] != layer.weight().data()[0]);
  nn::conv no_bias({4, 4, 1, 1, false, 0}, "y");
  CHECK(no_bias.bias() == nullptr);
  CHECK(no_bias.parameters().size() == 1);
}

TEST_CASE("nn::conv rejects bad arguments", "[nn]") {
  expect_error([] { nn::conv({0, 4, 3, 1, false, 0}, "c"); }, errc::invalid_argument, "channels");
  expect_error([] { nn::conv({4, -1, 3, 1, false, 0}, "c"); }, errc::invalid_argument, "channels");
  expect_error([] { nn::conv({4, 4, 2, 1, false, 0}, "c"); }, errc::invalid_argument, "kernel");
  expect_error([] { nn::conv({4, 4, 3, 0, false, 0}, "c"); }, errc::invalid_argument, "stride");
  nn::conv layer({2, 2, 3, 2, false, 0}, "c");
  workspace ws;
  std::vector<float> buffer(64);
  expect_error([&] { layer.forward(nullptr, buffer.data(), 1, 4, 4, ws); }, errc::invalid_argument, "src");
  expect_error([&] { layer.forward(buffer.data(), buffer.data(), 1, 0, 4, ws); }, errc::invalid_argument, "positive");
  expect_error([&] { layer.backward(buffer.data(), nullptr, nullptr, 1, 4, 4, ws); }, errc::invalid_argument,
               "diff_dst");
}

// ---------------------------------------------------------------------------------------------- deconv
namespace {

struct deconv_shape {
  index_t n, in, out, h, w, stride;
};

// PyTorch's ConvTranspose2d(kernel = stride = s) on NHWC, weights [in, out, s, s].
std::vector<double> naive_deconv(const deconv_shape& s, const std::vector<double>& x,
                                 const std::vector<double>& weight, const std::vector<double>* bias) {
  const index_t k = s.stride, oh = s.h * k, ow = s.w * k;
  std::vector<double> y(static_cast<std::size_t>(s.n * s.out * oh * ow), 0.0);
  for (index_t n = 0; n < s.n; ++n)
    for (index_t o = 0; o < s.out; ++o)
      for (index_t yy = 0; yy < oh; ++yy)
        for (index_t xx = 0; xx < ow; ++xx) {
          double acc = bias ? (*bias)[static_cast<std::size_t>(o)] : 0.0;
          const index_t iy = yy / k, ix = xx / k, ky = yy % k, kx = xx % k;
          for (index_t i = 0; i < s.in; ++i)
            acc += weight[static_cast<std::size_t>(((i * s.out + o) * k + ky) * k + kx)] *
                   x[nhwc(n, i, iy, ix, s.in, s.h, s.w)];
          y[nhwc(n, o, yy, xx, s.out, oh, ow)] = acc;
        }
  return y;
}

}  // namespace

TEST_CASE("nn::deconv forward and gradients match a naive transposed convolution", "[nn]") {
  for (const index_t stride : {1, 2, 3})
    for (const bool with_bias : {false, true}) {
      const deconv_shape s{2, 5, 3, 3, 4, stride};
      nn::deconv layer({s.in, s.out, stride, with_bias, 31}, "up");
      CHECK(layer.weight().dims() == std::vector<index_t>{s.in, s.out, stride, stride});
      if (with_bias) fill(*layer.bias(), 32);
      std::vector<double> x = to_double(random_values(static_cast<std::size_t>(s.n * s.in * s.h * s.w), 33));
      std::vector<double> weight = to_double(layer.weight());
      std::vector<double> bias = with_bias ? to_double(*layer.bias()) : std::vector<double>();
      const std::vector<float> xf(x.begin(), x.end());
      const index_t oh = layer.output_size(s.h), ow = layer.output_size(s.w);
      std::vector<float> y(static_cast<std::size_t>(s.n * s.out * oh * ow));
      workspace ws;
      layer.forward(xf.data(), y.data(), s.n, s.h, s.w, ws);
      INFO("stride " << stride << ", bias " << with_bias);
      CHECK(relative_error(y, naive_deconv(s, x, weight, with_bias ? &bias : nullptr)) < 1e-5);

      const std::vector<double> a = to_double(random_values(y.size(), 34));
      const std::vector<float> af(a.begin(), a.end());
      auto loss = [&] { return dot(a, naive_deconv(s, x, weight, with_bias ? &bias : nullptr)); };
      std::vector<float> diff_x(xf.size(), 3.0f);
      layer.backward(xf.data(), af.data(), diff_x.data(), s.n, s.h, s.w, ws);
      CHECK(relative_error(diff_x, numeric_gradient_fixed_step(x, loss, 1e-3)) < 1e-5);
      CHECK(relative_error(layer.weight().gradients(), numeric_gradient_fixed_step(weight, loss, 1e-3)) < 1e-5);
      if (with_bias) CHECK(relative_error(layer.bias()->gradients(), numeric_gradient_fixed_step(bias, loss, 1e-3)) < 1e-5);
      CHECK(layer.macs(s.n, s.h, s.w) == Approx(double(s.n * s.h * s.w * s.in * s.out * stride * stride)));
    }
}

TEST_CASE("nn::deconv on decoder-like channel counts matches the naive passes", "[nn]") {
  const deconv_shape s{2, 64, 32, 5, 7, 2};
  nn::deconv layer({s.in, s.out, 2, true, 35}, "up");
  const std::vector<float> x = random_values(static_cast<std::size_t>(s.n * s.in * s.h * s.w), 36);
  const std::vector<float> a = random_values(static_cast<std::size_t>(s.n * s.out * 4 * s.h * s.w), 37);
  std::vector<float> y(a.size()), diff_x(x.size());
  workspace ws;
  layer.forward(x.data(), y.data(), s.n, s.h, s.w, ws);
  const auto weight = to_double(layer.weight()), bias = to_double(*layer.bias());
  CHECK(relative_error(y, naive_deconv(s, to_double(x), weight, &bias)) < 1e-5);
  layer.backward(x.data(), a.data(), diff_x.data(), s.n, s.h, s.w, ws);
  // Every output cell reads one input cell: the exact gradients in a single sweep.
  std::vector<double> grad_x(x.size(), 0.0), grad_w(weight.size(), 0.0), grad_b(bias.size(), 0.0);
  for (index_t n = 0; n < s.n; ++n)
    for (index_t o = 0; o < s.out; ++o)
      for (index_t yy = 0; yy < 2 * s.h; ++yy)
        for (index_t xx = 0; xx < 2 * s.w; ++xx) {
          const double g = a[nhwc(n, o, yy, xx, s.out, 2 * s.h, 2 * s.w)];
          grad_b[static_cast<std::size_t>(o)] += g;
          for (index_t i = 0; i < s.in; ++i) {
            const auto wi = static_cast<std::size_t>(((i * s.out + o) * 2 + yy % 2) * 2 + xx % 2);
            const std::size_t xi = nhwc(n, i, yy / 2, xx / 2, s.in, s.h, s.w);
            grad_x[xi] += weight[wi] * g;
            grad_w[wi] += x[xi] * g;
          }
        }
  CHECK(relative_error(diff_x, grad_x) < 1e-5);
  CHECK(relative_error(layer.weight().gradients(), grad_w) < 1e-5);
  CHECK(relative_error(layer.bias()->gradients(), grad_b) < 1e-5);
}

TEST_CASE("nn::deconv initialises like PyTorch's ConvTranspose2d and rejects bad arguments", "[nn]") {
  nn::deconv layer({32, 16, 2, true, 3}, "decoder.up");
  CHECK(layer.weight().name() == "decoder.up.weight");
  const double bound = 1.0 / std::sqrt(16.0 * 4.0);
  double largest = 0.0;
  for (float v : layer.weight().values()) largest = std::max(largest, std::abs(double(v)));
  CHECK(largest <= bound);
  CHECK(largest > 0.95 * bound);
  for (float v : layer.bias()->values()) CHECK(std::abs(v) <= bound);
  expect_error([] { nn::deconv({0, 4, 2, false, 0}, "d"); }, errc::invalid_argument, "channels");
  expect_error([] { nn::deconv({4, 4, 0, false, 0}, "d"); }, errc::invalid_argument, "stride");
  workspace ws;
  std::vector<float> buffer(64);
  expect_error([&] { layer.forward(buffer.data(), nullptr, 1, 1, 1, ws); }, errc::invalid_argument, "dst");
  expect_error([&] { layer.backward(buffer.data(), buffer.data(), nullptr, 1, -1, 1, ws); }, errc::invalid_argument,
               "positive");
}

// ------------------------------------------------------------------------------------------ batch norm
namespace {

// BatchNorm2d in training mode (batch statistics, biased variance), then ReLU when asked; NHWC.
std::vector<double> naive_batch_norm(const std::vector<double>& x, index_t cells, index_t channels,
                                     const std::vector<double>& gamma, const std::vector<double>& beta, bool relu,
                                     double eps, std::vector<double>* mean_out = nullptr,
                                     std::vector<double>* var_out = nullptr) {
  std::vector<double> y(x.size());
  for (index_t c = 0; c < channels; ++c) {
    double mean = 0.0, var = 0.0;
    for (index_t p = 0; p < cells; ++p) mean += x[static_cast<std::size_t>(p * channels + c)];
    mean /= static_cast<double>(cells);
    for (index_t p = 0; p < cells; ++p) {
      const double d = x[static_cast<std::size_t>(p * channels + c)] - mean;
      var += d * d;
    }
    var /= static_cast<double>(cells);
    if (mean_out) (*mean_out)[static_cast<std::size_t>(c)] = mean;
    if (var_out) (*var_out)[static_cast<std::size_t>(c)] = var;
    for (index_t p = 0; p < cells; ++p) {
      const auto i = static_cast<std::size_t>(p * channels + c);
      const double v = (x[i] - mean) / std::sqrt(var + eps) * gamma[static_cast<std::size_t>(c)] +
                       beta[static_cast<std::size_t>(c)];
      y[i] = relu ? std::max(v, 0.0) : v;
    }
  }
  return y;
}

}  // namespace

TEST_CASE("nn::batch_norm training output, running statistics and inference match BatchNorm2d", "[nn]") {
  for (const bool relu : {false, true}) {
    const index_t n = 3, h = 5, w = 7, channels = 19, cells = n * h * w;
    nn::batch_norm bn(channels, relu, "bn1");
    CHECK(bn.weight().name() == "bn1.weight");
    CHECK(bn.running_var().name() == "bn1.running_var");
    CHECK(bn.parameters().size() == 4);
    CHECK(bn.trained().size() == 2);
    for (float v : bn.weight().values()) CHECK(v == 1.0f);
    for (float v : bn.running_var().values()) CHECK(v == 1.0f);
    for (float v : bn.running_mean().values()) CHECK(v == 0.0f);
    fill(bn.weight(), 41, 0.5, 1.5);
    fill(bn.bias(), 42);
    const auto gamma = to_double(bn.weight()), beta = to_double(bn.bias());
    std::vector<double> expected_running_mean(channels, 0.0), expected_running_var(channels, 1.0);
    workspace ws;
    for (int step = 0; step < 2; ++step) {
      // Offsets far from zero: a one-pass variance in float would lose them.
      std::vector<float> x = random_values(static_cast<std::size_t>(cells * channels), 43 + step, 2.0, 5.0);
      std::vector<float> y(x.size());
      bn.forward_training(x.data(), y.data(), cells, ws);
      std::vector<double> mean(channels), var(channels);
      const auto expected = naive_batch_norm(to_double(x), cells, channels, gamma, beta, relu, 1e-5, &mean, &var);
      INFO("relu " << relu << ", step " << step);
      CHECK(relative_error(y, expected) < 1e-5);
      for (index_t c = 0; c < channels; ++c) {
        expected_running_mean[c] = 0.9 * expected_running_mean[c] + 0.1 * mean[c];
        expected_running_var[c] = 0.9 * expected_running_var[c] + 0.1 * var[c] * cells / (cells - 1.0);  // unbiased
      }
      CHECK(relative_error(bn.running_mean().values(), expected_running_mean) < 1e-6);
      CHECK(relative_error(bn.running_var().values(), expected_running_var) < 1e-6);
    }

    // Inference uses the running statistics, and may run in place.
    std::vector<float> x = random_values(static_cast<std::size_t>(cells * channels), 47);
    std::vector<double> expected(x.size());
    for (index_t p = 0; p < cells; ++p)
      for (index_t c = 0; c < channels; ++c) {
        const auto i = static_cast<std::size_t>(p * channels + c);
        const double v = (x[i] - expected_running_mean[c]) / std::sqrt(expected_running_var[c] + 1e-5) * gamma[c] +
                         beta[c];
        expected[i] = relu ? std::max(v, 0.0) : v;
      }
    std::vector<float> y(x.size());
    bn.forward_inference(x.data(), y.data(), cells, ws);
    CHECK(relative_error(y, expected) < 1e-5);
    bn.forward_inference(x.data(), x.data(), cells, ws);
    CHECK(x == y);
  }
}

TEST_CASE("nn::batch_norm gradients through the batch statistics match central differences", "[nn]") {
  for (const bool relu : {false, true})
    for (const bool in_place : {false, true}) {
      const index_t n = 2, h = 3, w = 5, channels = 6, cells = n * h * w;
      nn::batch_norm bn(channels, relu, "bn");
      fill(bn.weight(), 51, 0.5, 1.5);
      fill(bn.bias(), 52, -0.5, 0.5);
      std::vector<double> x = to_double(random_values(static_cast<std::size_t>(cells * channels), 53, -2.0, 3.0));
      std::vector<double> gamma = to_double(bn.weight()), beta = to_double(bn.bias());
      const std::vector<double> a = to_double(random_values(x.size(), 54));
      auto loss = [&] { return dot(a, naive_batch_norm(x, cells, channels, gamma, beta, relu, 1e-5)); };

      const std::vector<float> xf(x.begin(), x.end());
      std::vector<float> y(xf.size()), diff(a.begin(), a.end()), diff_x(xf.size());
      workspace ws;
      bn.forward_training(xf.data(), y.data(), cells, ws);
      float* diff_src = in_place ? diff.data() : diff_x.data();
      bn.backward(xf.data(), y.data(), diff.data(), diff_src, cells, ws);
      INFO("relu " << relu << ", in place " << in_place);
      const std::vector<float> got(diff_src, diff_src + xf.size());
      CHECK(relative_error(got, numeric_gradient_fixed_step(x, loss, 1e-5)) < 1e-4);
      CHECK(relative_error(bn.weight().gradients(), numeric_gradient_fixed_step(gamma, loss, 1e-5)) < 1e-4);
      CHECK(relative_error(bn.bias().gradients(), numeric_gradient_fixed_step(beta, loss, 1e-5)) < 1e-4);
    }
}

TEST_CASE("nn::batch_norm results do not depend on the thread count", "[nn]") {
  const index_t cells = 4 * 33 * 31, channels = 40;
  const std::vector<float> x = random_values(static_cast<std::size_t>(cells * channels), 61, -1.0, 4.0);
  const std::vector<float> g = random_values(x.size(), 62);
  std::vector<std::vector<float>> outputs, gradients;
  const int threads = omp_get_max_threads();
  for (const int t : {1, std::max(threads, 2)}) {
    omp_set_num_threads(t);
    nn::batch_norm bn(channels, true, "bn");
    workspace ws;
    std::vector<float> y(x.size()), dx(x.size());
    bn.forward_training(x.data(), y.data(), cells, ws);
    bn.backward(x.data(), y.data(), g.data(), dx.data(), cells, ws);
    outputs.push_back(y);
    gradients.push_back(dx);
  }
  omp_set_num_threads(threads);
  CHECK(relative_error(outputs[1], to_double(outputs[0])) < 1e-6);
  CHECK(relative_error(gradients[1], to_double(gradients[0])) < 1e-5);
}

TEST_CASE("nn::batch_norm rejects bad arguments", "[nn]") {
  expect_error([] { nn::batch_norm(0, false, "bn"); }, errc::invalid_argument, "channels");
  expect_error([] { nn::batch_norm(4, false, "bn", 0.0); }, errc::invalid_argument, "epsilon");
  expect_error([] { nn::batch_norm(4, false, "bn", 1e-5, 1.5); }, errc::invalid_argument, "momentum");
  nn::batch_norm bn(4, true, "bn");
  workspace ws;
  std::vector<float> x(40, 1.0f), y(40);
  expect_error([&] { bn.backward(x.data(), y.data(), y.data(), y.data(), 10, ws); }, errc::invalid_argument,
               "forward_training");
  expect_error([&] { bn.forward_training(x.data(), y.data(), 1, ws); }, errc::invalid_argument, "more than one");
  expect_error([&] { bn.forward_training(x.data(), x.data(), 10, ws); }, errc::invalid_argument, "dst");
  bn.forward_training(x.data(), y.data(), 10, ws);
  expect_error([&] { bn.backward(x.data(), y.data(), y.data(), y.data(), 9, ws); }, errc::invalid_argument, "9 cells");
  expect_error([&] { bn.backward(x.data(), nullptr, y.data(), y.data(), 10, ws); }, errc::invalid_argument, "dst");
  expect_error([&] { bn.forward_inference(x.data(), y.data(), 0, ws); }, errc::invalid_argument, "cells");
}

// -------------------------------------------------------------------------------------------- max pool
namespace {

// MaxPool2d(3, 2, 1): the maximum over the window's real cells; *winner gets the first maximum in
// row-major window order.
std::vector<double> naive_max_pool(const std::vector<double>& x, index_t n, index_t c, index_t h, index_t w,
                                   std::vector<std::size_t>* winner = nullptr) {
  const index_t oh = (h - 1) / 2 + 1, ow = (w - 1) / 2 + 1;
  std::vector<double> y(static_cast<std::size_t>(n * c * oh * ow));
  if (winner) winner->assign(y.size(), 0);
  for (index_t i = 0; i < n; ++i)
    for (index_t k = 0; k < c; ++k)
      for (index_t oy = 0; oy < oh; ++oy)
        for (index_t ox = 0; ox < ow; ++ox) {
          double best = -std::numeric_limits<double>::infinity();
          std::size_t at = 0;
          for (index_t y0 = 2 * oy - 1; y0 <= 2 * oy + 1; ++y0)
            for (index_t x0 = 2 * ox - 1; x0 <= 2 * ox + 1; ++x0) {
              if (y0 < 0 || y0 >= h || x0 < 0 || x0 >= w) continue;
              const std::size_t j = nhwc(i, k, y0, x0, c, h, w);
              if (x[j] > best) {
                best = x[j];
                at = j;
              }
            }
          const std::size_t o = nhwc(i, k, oy, ox, c, oh, ow);
          y[o] = best;
          if (winner) (*winner)[o] = at;
        }
  return y;
}

}  // namespace

TEST_CASE("nn::max_pool matches MaxPool2d(3, 2, 1), padded borders and ties included", "[nn]") {
  struct size {
    index_t n, c, h, w;
  };
  for (const size s : {size{2, 5, 7, 10}, size{1, 19, 8, 9}, size{3, 2, 1, 2}, size{2, 3, 2, 1}}) {
    INFO(s.n << "x" << s.c << "x" << s.h << "x" << s.w);
    const index_t oh = nn::max_pool_output_size(s.h), ow = nn::max_pool_output_size(s.w);
    const std::size_t count = static_cast<std::size_t>(s.n * s.c * s.h * s.w);
    // All negative: a padded zero must never win.
    for (const bool ties : {false, true}) {
      std::vector<float> x = random_values(count, 71, -5.0, -1.0);
      if (ties)
        for (float& v : x) v = std::round(v);  // many equal values per window
      std::vector<float> y(static_cast<std::size_t>(s.n * s.c * oh * ow));
      nn::max_pool_forward(x.data(), y.data(), s.n, s.c, s.h, s.w);
      std::vector<std::size_t> winner;
      const auto expected = naive_max_pool(to_double(x), s.n, s.c, s.h, s.w, &winner);
      CHECK(relative_error(y, expected) == 0.0);

      const std::vector<float> g = random_values(y.size(), 72);
      std::vector<double> expected_grad(count, 0.0);
      for (std::size_t o = 0; o < y.size(); ++o) expected_grad[winner[o]] += g[o];
      std::vector<float> dx(count, 9.0f);
      nn::max_pool_backward(x.data(), g.data(), dx.data(), s.n, s.c, s.h, s.w);
      CHECK(relative_error(dx, expected_grad) < 1e-6);
      if (!ties) {  // distinct values: also the central differences of the maximum
        std::vector<double> xd = to_double(x);
        const std::vector<double> gd = to_double(g);
        auto loss = [&] { return dot(gd, naive_max_pool(xd, s.n, s.c, s.h, s.w)); };
        CHECK(relative_error(dx, numeric_gradient_fixed_step(xd, loss, 1e-6)) < 1e-6);
      }
    }
  }
  // Constant input: each window's first real cell (row-major) takes the gradient.
  std::vector<float> x(16, 2.0f), g(4, 1.0f), dx(16);
  nn::max_pool_backward(x.data(), g.data(), dx.data(), 1, 1, 4, 4);
  const std::vector<float> expected{1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  CHECK(dx == expected);
  expect_error([] { nn::max_pool_forward(nullptr, nullptr, 1, 1, 1, 1); }, errc::invalid_argument, "null");
  expect_error([&] { nn::max_pool_forward(x.data(), g.data(), 1, 0, 4, 4); }, errc::invalid_argument, "positive");
}

// ------------------------------------------------------------------------------------------ element-wise
TEST_CASE("nn element-wise relu, add and accumulate", "[nn]") {
  const std::size_t count = 100003;  // above the parallel threshold, not a multiple of the chunk
  const std::vector<float> a = random_values(count, 81), b = random_values(count, 82);
  std::vector<float> y(count), d(count);
  nn::relu_forward(a.data(), y.data(), count);
  for (std::size_t i = 0; i < count; ++i) REQUIRE(y[i] == std::max(a[i], 0.0f));
  nn::relu_backward(y.data(), b.data(), d.data(), count);
  for (std::size_t i = 0; i < count; ++i) REQUIRE(d[i] == (y[i] > 0.0f ? b[i] : 0.0f));
  std::vector<float> in_place = a;
  nn::relu_forward(in_place.data(), in_place.data(), count);
  CHECK(in_place == y);
  nn::add(a.data(), b.data(), y.data(), count);
  for (std::size_t i = 0; i < count; ++i) REQUIRE(y[i] == a[i] + b[i]);
  std::vector<float> acc = a;
  nn::accumulate(b.data(), acc.data(), count);
  CHECK(acc == y);
  nn::add(acc.data(), b.data(), acc.data(), count);
  for (std::size_t i = 0; i < count; ++i) REQUIRE(acc[i] == y[i] + b[i]);
  nn::relu_forward(nullptr, nullptr, 0);  // nothing to do
  expect_error([&] { nn::add(a.data(), nullptr, y.data(), count); }, errc::invalid_argument, "b");
}

// ------------------------------------------------------------------------------------------ resize
namespace {

std::vector<double> naive_resize(const std::vector<double>& x, index_t n, index_t c, index_t h, index_t w,
                                 index_t oh, index_t ow) {
  auto source = [](index_t o, index_t in, index_t out, index_t& i0, index_t& i1, double& l1) {
    const double r = std::max((o + 0.5) * double(in) / double(out) - 0.5, 0.0);
    i0 = std::min(static_cast<index_t>(std::floor(r)), in - 1);
    i1 = std::min(i0 + 1, in - 1);
    l1 = r - double(i0);
  };
  std::vector<double> y(static_cast<std::size_t>(n * c * oh * ow));
  for (index_t i = 0; i < n; ++i)
    for (index_t k = 0; k < c; ++k)
      for (index_t oy = 0; oy < oh; ++oy)
        for (index_t ox = 0; ox < ow; ++ox) {
          index_t y0, y1, x0, x1;
          double ly, lx;
          source(oy, h, oh, y0, y1, ly);
          source(ox, w, ow, x0, x1, lx);
          auto at = [&](index_t yy, index_t xx) { return x[nhwc(i, k, yy, xx, c, h, w)]; };
          y[nhwc(i, k, oy, ox, c, oh, ow)] = (1 - ly) * ((1 - lx) * at(y0, x0) + lx * at(y0, x1)) +
                                             ly * ((1 - lx) * at(y1, x0) + lx * at(y1, x1));
        }
  return y;
}

}  // namespace

TEST_CASE("nn::resize_bilinear matches F.interpolate(bilinear, align_corners=False) and its adjoint", "[nn]") {
  // PyTorch: F.interpolate([[1, 2], [3, 4]], size=(4, 4), mode="bilinear", align_corners=False).
  const std::vector<float> small{1, 2, 3, 4};
  std::vector<float> big(16);
  nn::resize_bilinear_forward(small.data(), big.data(), 1, 1, 2, 2, 4, 4);
  const std::vector<float> torch{1.0f, 1.25f, 1.75f, 2.0f, 1.5f, 1.75f, 2.25f, 2.5f,
                                 2.5f, 2.75f, 3.25f, 3.5f, 3.0f, 3.25f, 3.75f, 4.0f};
  for (std::size_t i = 0; i < 16; ++i) CHECK(big[i] == Approx(torch[i]).margin(1e-6));

  struct size {
    index_t n, c, h, w, oh, ow;
  };
  for (const size s : {size{2, 3, 5, 7, 3, 11}, size{1, 19, 7, 10, 7, 10}, size{2, 5, 9, 6, 4, 5},
                       size{3, 2, 1, 1, 3, 2}, size{1, 33, 64, 64, 256, 256}}) {
    INFO(s.n << "x" << s.c << "x" << s.h << "x" << s.w << " -> " << s.oh << "x" << s.ow);
    const std::vector<float> x = random_values(static_cast<std::size_t>(s.n * s.c * s.h * s.w), 91);
    std::vector<float> y(static_cast<std::size_t>(s.n * s.c * s.oh * s.ow));
    nn::resize_bilinear_forward(x.data(), y.data(), s.n, s.c, s.h, s.w, s.oh, s.ow);
    CHECK(relative_error(y, naive_resize(to_double(x), s.n, s.c, s.h, s.w, s.oh, s.ow)) < 1e-6);
    if (s.h == s.oh && s.w == s.ow) CHECK(y == x);
    // <resize(x), g> = <x, resize_backward(g)>.
    const std::vector<float> g = random_values(y.size(), 92);
    std::vector<float> back(x.size(), 5.0f);
    nn::resize_bilinear_backward(g.data(), back.data(), s.n, s.c, s.h, s.w, s.oh, s.ow);
    const double lhs = dot(to_double(y), to_double(g)), rhs = dot(to_double(x), to_double(back));
    CHECK(std::abs(lhs - rhs) <= 1e-5 * std::max(1.0, std::abs(lhs)));
    // And the transpose column by column on a small case (catches errors the inner product could hide).
    if (x.size() <= 200) {
      const auto gd = to_double(g);
      std::vector<double> xd = to_double(x);
      auto loss = [&] { return dot(gd, naive_resize(xd, s.n, s.c, s.h, s.w, s.oh, s.ow)); };
      CHECK(relative_error(back, numeric_gradient_fixed_step(xd, loss, 1e-3)) < 1e-5);
    }
  }
  expect_error([&] { nn::resize_bilinear_forward(small.data(), big.data(), 1, 1, 2, 2, 0, 4); },
               errc::invalid_argument, "positive");
  expect_error([&] { nn::resize_bilinear_backward(nullptr, big.data(), 1, 1, 2, 2, 4, 4); }, errc::invalid_argument,
               "null");
}

// ------------------------------------------------------------------------------------------ probe
// Hidden: which oneDNN convolution nn::conv should take at stride 1 (a ResNet 3x3 64 -> 64 layer at
// n = 16, 64 x 64, forward + backward). Run: flowad_unit_tests "[.nn_conv_probe]".
TEST_CASE("probe: stride-1 convolution paths for nn::conv", "[.nn_conv_probe]") {
  const index_t n = 16, c = 64, h = 64, w = 64;
  const std::vector<float> x = random_values(static_cast<std::size_t>(n * c * h * w), 1);
  std::vector<float> y(x.size()), dx(x.size());
  parameter weight("w", {c, c, 3, 3});
  fill(weight, 2, -0.05, 0.05);
  workspace ws;
  auto time = [&](const char* what, const std::function<void()>& pass) {
    pass();
    double best = 1e30;
    for (int round = 0; round < 3; ++round) {
      const auto start = std::chrono::steady_clock::now();
      pass();
      best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    WARN(what << ": " << best * 1e3 << " ms");
  };
  detail::strided_conv2d strided({c, c, 3, 1, false});
  time("strided_conv2d (direct) fwd+bwd", [&] {
    strided.forward(x.data(), y.data(), n, h, w, weight, nullptr, ws.exec());
    strided.backward_weights(x.data(), y.data(), n, h, w, weight, nullptr, ws.exec());
    strided.backward_data(y.data(), dx.data(), n, h, w, weight, ws.exec());
  });
  for (const auto algorithm : {detail::conv_algorithm::automatic, detail::conv_algorithm::direct}) {
    detail::conv2d same({c, c, 3, detail::activation::none, 0.0f, false, algorithm});
    time(algorithm == detail::conv_algorithm::automatic ? "conv2d automatic (Winograd) fwd+bwd" : "conv2d direct fwd+bwd",
         [&] {
           same.forward(x.data(), y.data(), n, h, w, weight, nullptr, ws.exec());
           same.backward(x.data(), y.data(), dx.data(), n, h, w, weight, nullptr, ws.exec());
         });
  }
}

TEST_CASE("probe: nn::batch_norm throughput", "[.nn_bn_probe]") {
  const index_t cells = 16 * 64 * 64, channels = 64;
  const std::vector<float> x = random_values(static_cast<std::size_t>(cells * channels), 1);
  const std::vector<float> g = random_values(x.size(), 2);
  std::vector<float> y(x.size()), dx(x.size());
  nn::batch_norm bn(channels, true, "bn");
  workspace ws;
  for (const bool backward : {false, true}) {
    double best = 1e30;
    for (int round = 0; round < 4; ++round) {
      const auto start = std::chrono::steady_clock::now();
      if (backward)
        bn.backward(x.data(), y.data(), g.data(), dx.data(), cells, ws);
      else
        bn.forward_training(x.data(), y.data(), cells, ws);
      best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    WARN((backward ? "backward" : "forward_training") << " on 16 x 64 x 64 x 64: " << best * 1e3 << " ms");
  }
}
