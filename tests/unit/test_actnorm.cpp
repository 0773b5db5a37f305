#include <omp.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <numeric>

#include "flowad/layers/actnorm.hpp"
#include "support/layer_checks.hpp"

using namespace flowad;
using namespace flowad::testing;

namespace {

const shape4 test_shapes[] = {{1, 76, 5, 3}, {3, 152, 4, 4}, {2, 304, 2, 3}};

// Per-channel mean and population std over (n, h, w), in double.
void channel_statistics(const_view x, std::vector<double>& mean, std::vector<double>& std_dev) {
  const auto c_count = static_cast<std::size_t>(x.c());
  mean.assign(c_count, 0.0);
  std_dev.assign(c_count, 0.0);
  const double count = static_cast<double>(x.n() * x.h() * x.w());
  for (index_t c = 0; c < x.c(); ++c) {
    double s = 0.0, q = 0.0;
    for (index_t n = 0; n < x.n(); ++n)
      for (index_t h = 0; h < x.h(); ++h)
        for (index_t w = 0; w < x.w(); ++w) s += x(n, c, h, w);
    const double m = s / count;
    for (index_t n = 0; n < x.n(); ++n)
      for (index_t h = 0; h < x.h(); ++h)
        for (index_t w = 0; w < x.w(); ++w) q += (x(n, c, h, w) - m) * (x(n, c, h, w) - m);
    mean[static_cast<std::size_t>(c)] = m;
    std_dev[static_cast<std::size_t>(c)] = std::sqrt(q / count);
  }
}

// out(n, c, h, w) = a[c]·in(n, c, h, w) + t[c] in double.
dtensor affine_reference(const_view in, const std::vector<double>& a, const std::vector<double>& t) {
  dtensor out(in.n(), in.c(), in.h(), in.w());
  for (index_t n = 0; n < in.n(); ++n)
    for (index_t c = 0; c < in.c(); ++c)
      for (index_t h = 0; h < in.h(); ++h)
        for (index_t w = 0; w < in.w(); ++w)
          out.at(n, c, h, w) = a[static_cast<std::size_t>(c)] * in(n, c, h, w) + t[static_cast<std::size_t>(c)];
  return out;
}

double relative_error(const float* actual, const std::vector<double>& expected) {
  double diff = 0.0, scale = 0.0;
  for (std::size_t i = 0; i < expected.size(); ++i) {
    diff = std::max(diff, std::abs(actual[i] - expected[i]));
    scale = std::max(scale, std::abs(expected[i]));
  }
  return diff / std::max(scale, std::numeric_limits<double>::min());
}

void randomize(parameter& p, std::uint64_t seed, double scale, double offset = 0.0) {
  detail::rng r(seed);
  for (float& v : p.values()) v = static_cast<float>(offset + scale * r.normal());
  p.mark_updated();
}

actnorm random_actnorm(index_t channels, std::uint64_t seed) {
  actnorm f(channels);
  randomize(f.bias(), seed, 0.5);
  randomize(f.log_scale(), seed + 1, 0.3);
  f.mark_initialized();
  return f;
}

global_affine random_global_affine(index_t channels, global_scale_activation act, std::uint64_t seed) {
  global_affine f(channels, act, 1.0);
  // Around the initial pre-activation, so Ψ stays in a well-conditioned range for every activation.
  const double g0 = f.global_scale().data()[0];
  randomize(f.global_scale(), seed, 0.3, g0);
  randomize(f.global_offset(), seed + 1, 0.5);
  return f;
}

// The layer's coefficients y = a·x + t, from its parameters in double.
void coefficients(const actnorm& f, std::vector<double>& a, std::vector<double>& t) {
  a.clear();
  t.clear();
  for (index_t c = 0; c < f.channels(); ++c) {
    a.push_back(std::exp(static_cast<double>(f.log_scale().data()[c])));
    t.push_back(f.bias().data()[c] * a.back());
  }
}

double psi(global_scale_activation act, double g) {
  switch (act) {
    case global_scale_activation::softplus: return 0.2 * std::log1p(std::exp(0.5 * g));
    case global_scale_activation::sigmoid: return 10.0 / (1.0 + std::exp(-(g - 2.0)));
    case global_scale_activation::exp: return std::exp(g);
  }
  return 0.0;
}

void coefficients(const global_affine& f, std::vector<double>& a, std::vector<double>& t) {
  a.clear();
  t.clear();
  for (index_t c = 0; c < f.channels(); ++c) {
    a.push_back(psi(f.activation(), f.global_scale().data()[c]));
    t.push_back(f.global_offset().data()[c]);
  }
}

// Checks forward, inverse and backward of a per-channel affine layer against double loops on y = a·x + t.
template <class Layer>
void check_against_reference(Layer& f, const shape4 s, layout in_layout, layout out_layout) {
  INFO(f.kind() << " on " << s.str() << ", input " << (in_layout == layout::nchw ? "NCHW" : "NHWC") << ", output "
                << (out_layout == layout::nchw ? "NCHW" : "NHWC"));
  std::vector<double> a, t;
  coefficients(f, a, t);
  const tensor x = random_tensor(s, in_layout, 31, 1.5f, 0.25f);
  workspace ws;
  tensor y;
  const std::vector<double> logdet = run_forward(f, x.view(), y, ws, pass_mode::training, out_layout);
  CHECK(relative_error(y.view(), affine_reference(x.view(), a, t)) <= 1e-4);
  double log_det = 0.0;
  for (double v : a) log_det += std::log(v);
  for (double v : logdet) CHECK(v == Approx(static_cast<double>(s.h * s.w) * log_det).epsilon(1e-6).margin(1e-6));

  // Inverse: x = (y − t)/a.
  std::vector<double> inv_a(a.size()), inv_t(a.size());
  for (std::size_t c = 0; c < a.size(); ++c) inv_a[c] = 1.0 / a[c], inv_t[c] = -t[c] / a[c];
  tensor x_back(s, in_layout);
  f.inverse(y.view(), x_back.view(), ws);
  CHECK(relative_error(x_back.view(), affine_reference(y.view(), inv_a, inv_t)) <= 1e-4);

  // Backward: diff_src = a·dy; Σ dy and Σ dy·x per channel feed the parameter gradients, checked against
  // finite differences elsewhere; here the sums themselves are checked through dL/da and dL/dt.
  const tensor diff_y = random_tensor(s, out_layout, 32);
  std::vector<double> diff_logdet(static_cast<std::size_t>(s.n), 0.0);
  tensor diff_x(s, in_layout);
  for (parameter* p : f.parameters()) p->zero_grad();
  f.backward(x.view(), y.view(), diff_y.view(), diff_logdet, diff_x.view(), ws);
  CHECK(relative_error(diff_x.view(), affine_reference(diff_y.view(), a, std::vector<double>(a.size(), 0.0))) <= 1e-4);
}

}  // namespace

TEST_CASE("actnorm data-dependent initialisation normalises the batch", "[actnorm]") {
  for (const shape4 s : test_shapes) {
    for (const layout l : {layout::nchw, layout::nhwc}) {
      actnorm f(s.c);
      CHECK_FALSE(f.initialized());
      const tensor x = random_tensor(s, l, 3, 2.0f, 3.0f);
      f.initialize(x.view());
      CHECK(f.initialized());
      std::vector<double> mean, std_dev;
      channel_statistics(x.view(), mean, std_dev);
      std::vector<double> expected_bias, expected_log_scale;
      for (std::size_t c = 0; c < mean.size(); ++c) {
        expected_bias.push_back(-mean[c]);
        expected_log_scale.push_back(std::log(1.0 / (std_dev[c] + 1e-6)));
      }
      INFO("shape " << s.str());
      CHECK(relative_error(f.bias().data(), expected_bias) <= 1e-6);
      CHECK(relative_error(f.log_scale().data(), expected_log_scale) <= 1e-6);

      workspace ws;
      tensor y;
      run_forward(f, x.view(), y, ws, pass_mode::inference, l);
      channel_statistics(y.view(), mean, std_dev);
      if (s.n * s.h * s.w > 1) {
        for (std::size_t c = 0; c < mean.size(); ++c) {
          CHECK(std::abs(mean[c]) <= 1e-5);
          CHECK(std::abs(std_dev[c] - 1.0) <= 1e-4);
        }
      }
    }
  }
}

TEST_CASE("actnorm initialises on its first training forward and refuses inference before", "[actnorm]") {
  const tensor x = random_tensor({4, 12, 3, 3}, layout::nhwc, 4, 3.0f, -1.0f);
  workspace ws;
  tensor y;
  const actnorm untouched(12);
  try {
    run_forward(untouched, x.view(), y, ws);
    FAIL("expected an error");
  } catch (const error& e) {
    CHECK(e.code() == errc::not_fitted);
  }
  tensor x_back(x.shape(), layout::nhwc);
  CHECK_THROWS_AS(untouched.inverse(x.view(), x_back.view(), ws), error);

  const actnorm lazy(12);  // const: the first training forward may still initialise it
  run_forward(lazy, x.view(), y, ws, pass_mode::training);
  CHECK(lazy.initialized());
  actnorm eager(12);
  eager.initialize(x.view());
  CHECK(std::equal(lazy.bias().data(), lazy.bias().data() + 12, eager.bias().data()));
  CHECK(std::equal(lazy.log_scale().data(), lazy.log_scale().data() + 12, eager.log_scale().data()));

  // Later training batches do not re-initialise.
  const tensor other = random_tensor({4, 12, 3, 3}, layout::nhwc, 5);
  run_forward(lazy, other.view(), y, ws, pass_mode::training);
  CHECK(std::equal(lazy.bias().data(), lazy.bias().data() + 12, eager.bias().data()));

  // A single pixel per channel has std 0: log_scale = log(1e6), still finite.
  actnorm single(3);
  single.initialize(random_tensor({1, 3, 1, 1}, layout::nchw, 6).view());
  for (float v : single.log_scale().values()) CHECK(v == Approx(std::log(1e6)));
}

TEST_CASE("actnorm and global_affine match naive loops in every layout", "[actnorm]") {
  for (const shape4 s : test_shapes) {
    for (const layout in_layout : {layout::nchw, layout::nhwc}) {
      for (const layout out_layout : {layout::nchw, layout::nhwc}) {
        actnorm a = random_actnorm(s.c, 40);
        check_against_reference(a, s, in_layout, out_layout);
        for (const auto act :
             {global_scale_activation::softplus, global_scale_activation::sigmoid, global_scale_activation::exp}) {
          global_affine g = random_global_affine(s.c, act, 41);
          check_against_reference(g, s, in_layout, out_layout);
        }
      }
    }
  }
  // Strided views that are neither dense layout: every other channel of a wider tensor.
  const tensor wide = random_tensor({2, 24, 3, 5}, layout::nhwc, 42);
  const const_view x{wide.data(), {2, 12, 3, 5}, {wide.view().strides().n, 2, wide.view().strides().h, 24}};
  actnorm a = random_actnorm(12, 43);
  std::vector<double> coef, shift;
  coefficients(a, coef, shift);
  workspace ws;
  tensor y;
  run_forward(a, x, y, ws);
  CHECK(relative_error(y.view(), affine_reference(x, coef, shift)) <= 1e-4);
}

TEST_CASE("actnorm and global_affine inverse recovers the input", "[actnorm]") {
  for (const shape4 s : {shape4{1, 76, 5, 3}, shape4{4, 152, 3, 3}, shape4{2, 304, 4, 2}}) {
    for (const layout l : {layout::nchw, layout::nhwc}) {
      const tensor x = random_tensor(s, l, 50);
      actnorm a(s.c);
      a.initialize(random_tensor(s, l, 51, 0.5f, 2.0f).view());  // a non-trivial scale and shift
      check_round_trip(a, x.view());
      check_round_trip(random_actnorm(s.c, 52), x.view());
      for (const auto act :
           {global_scale_activation::softplus, global_scale_activation::sigmoid, global_scale_activation::exp})
        check_round_trip(random_global_affine(s.c, act, 53), x.view());
    }
  }
}

TEST_CASE("actnorm and global_affine log-determinants equal the brute-force Jacobian", "[actnorm]") {
  const tensor x = random_tensor({1, 4, 3, 3}, layout::nchw, 60);
  check_logdet(random_actnorm(4, 61), x.view());
  for (const auto act :
       {global_scale_activation::softplus, global_scale_activation::sigmoid, global_scale_activation::exp})
    check_logdet(random_global_affine(4, act, 62), x.view());
}

TEST_CASE("actnorm and global_affine gradients match finite differences", "[actnorm]") {
  for (const shape4 s : {shape4{2, 4, 3, 3}, shape4{1, 5, 2, 3}}) {
    for (const layout l : {layout::nchw, layout::nhwc}) {
      const tensor x = random_tensor(s, l, 70);
      actnorm a = random_actnorm(s.c, 71);
      check_gradients(a, x.view());
      for (const auto act :
           {global_scale_activation::softplus, global_scale_activation::sigmoid, global_scale_activation::exp}) {
        global_affine g = random_global_affine(s.c, act, 72);
        check_gradients(g, x.view());
      }
    }
  }
}

// Channel-last batches with more pixels than one reduction chunk (512) reduce in several chunks,
// the last one partial; the sums must be exact and not depend on how many threads run them.
TEST_CASE("actnorm reductions over many pixels are exact and the same on any thread count", "[actnorm]") {
  const shape4 s{3, 76, 19, 21};  // 1197 pixels: chunks of 512, 512 and 173
  const tensor x = random_tensor(s, layout::nhwc, 90, 1.5f, 0.25f);
  const tensor diff_y = random_tensor(s, layout::nhwc, 91);
  const int threads_before = omp_get_max_threads();

  struct outcome {
    std::vector<float> bias, log_scale, bias_grad, log_scale_grad;
  };
  const auto run = [&](int threads) {
    omp_set_num_threads(threads);
    actnorm f(s.c);
    f.initialize(x.view());
    outcome o;
    o.bias.assign(f.bias().data(), f.bias().data() + s.c);
    o.log_scale.assign(f.log_scale().data(), f.log_scale().data() + s.c);
    workspace ws;
    tensor y;
    run_forward(f, x.view(), y, ws, pass_mode::training);
    for (parameter* p : f.parameters()) p->zero_grad();
    const std::vector<double> diff_logdet(static_cast<std::size_t>(s.n), 0.0);
    tensor diff_x(s, layout::nhwc);
    f.backward(x.view(), y.view(), diff_y.view(), diff_logdet, diff_x.view(), ws);
    o.bias_grad.assign(f.bias().grad(), f.bias().grad() + s.c);
    o.log_scale_grad.assign(f.log_scale().grad(), f.log_scale().grad() + s.c);
    return o;
  };
  const outcome one = run(1), two = run(2), three = run(3);
  omp_set_num_threads(threads_before);
  for (const outcome* other : {&two, &three}) {
    CHECK(other->bias == one.bias);
    CHECK(other->log_scale == one.log_scale);
    CHECK(other->bias_grad == one.bias_grad);
    CHECK(other->log_scale_grad == one.log_scale_grad);
  }

  // Against double loops: the statistics of the batch, and with y = (x + b)·a the gradients
  // dL/db = a·Σ dy and dL/ds = Σ dy·y.
  std::vector<double> mean, std_dev;
  channel_statistics(x.view(), mean, std_dev);
  for (index_t c = 0; c < s.c; ++c) {
    const auto k = static_cast<std::size_t>(c);
    CHECK(one.bias[k] == Approx(-mean[k]).epsilon(1e-6));
    CHECK(one.log_scale[k] == Approx(-std::log(std_dev[k] + 1e-6)).epsilon(1e-6));
    const double a = std::exp(static_cast<double>(one.log_scale[k])), b = one.bias[k];
    double sum = 0.0, dot = 0.0;
    for (index_t n = 0; n < s.n; ++n)
      for (index_t h = 0; h < s.h; ++h)
        for (index_t w = 0; w < s.w; ++w) {
          sum += diff_y(n, c, h, w);
          dot += static_cast<double>(diff_y(n, c, h, w)) * (x(n, c, h, w) + b) * a;
        }
    CHECK(one.bias_grad[k] == Approx(a * sum).epsilon(1e-5).margin(1e-4));
    CHECK(one.log_scale_grad[k] == Approx(dot).epsilon(1e-5).margin(1e-4));
  }
}

TEST_CASE("global_affine starts at the requested scale", "[actnorm]") {
  const tensor x = random_tensor({2, 6, 3, 2}, layout::nhwc, 80);
  for (const auto act :
       {global_scale_activation::softplus, global_scale_activation::sigmoid, global_scale_activation::exp}) {
    for (const double init : {1.0, 0.5, 2.0}) {
      const global_affine g(6, act, init);
      workspace ws;
      tensor y;
      const std::vector<double> logdet = run_forward(g, x.view(), y, ws);
      const std::vector<double> a(6, init), t(6, 0.0);
      CHECK(relative_error(y.view(), affine_reference(x.view(), a, t)) <= 1e-6);
      CHECK(logdet[0] == Approx(6.0 * 6.0 * std::log(init)).margin(1e-5));
    }
  }
}

TEST_CASE("actnorm and global_affine reject bad input", "[actnorm]") {
  CHECK_THROWS_AS(actnorm(0), error);
  CHECK_THROWS_AS(global_affine(0), error);
  CHECK_THROWS_AS(global_affine(4, global_scale_activation::softplus, 0.0), error);
  CHECK_THROWS_AS(global_affine(4, global_scale_activation::exp, -1.0), error);
  CHECK_THROWS_AS(global_affine(4, global_scale_activation::sigmoid, 10.0), error);

  actnorm f = random_actnorm(8, 1);
  workspace ws;
  tensor x({2, 8, 3, 3}), y({2, 8, 3, 3}), wrong_c({2, 7, 3, 3}), wrong_hw({2, 8, 3, 4}), empty({0, 8, 3, 3});
  x.fill(0.5f);
  std::vector<double> logdet(2);
  try {
    f.forward(wrong_c.view(), y.view(), logdet, ws);
    FAIL("expected an error");
  } catch (const error& e) {
    CHECK(e.code() == errc::shape_mismatch);
    CHECK_THAT(e.what(), Catch::Contains("2x7x3x3"));
  }
  CHECK_THROWS_AS(f.forward(x.view(), wrong_hw.view(), logdet, ws), error);
  std::vector<double> none;
  CHECK_THROWS_AS(f.forward(empty.view(), empty.view(), none, ws), error);
  CHECK_THROWS_AS(f.forward(x.view(), x.view(), logdet, ws), error);
  std::vector<double> short_logdet(1);
  CHECK_THROWS_AS(f.forward(x.view(), y.view(), short_logdet, ws), error);
  CHECK_THROWS_AS(f.backward(x.view(), y.view(), wrong_hw.view(), logdet, y.view(), ws), error);
  CHECK_THROWS_AS(f.backward(x.view(), y.view(), y.view(), logdet, x.view(), ws), error);  // diff_src aliases src
  CHECK_THROWS_AS(f.initialize(wrong_c.view()), error);
  CHECK_THROWS_AS(f.initialize(empty.view()), error);

  // A batch with NaN or Inf has no statistics; the parameters stay as they were.
  actnorm fresh(8);
  tensor bad = random_tensor({2, 8, 3, 3}, layout::nhwc, 2);
  bad(1, 5, 2, 0) = std::numeric_limits<float>::infinity();
  try {
    fresh.initialize(bad.view());
    FAIL("expected an error");
  } catch (const error& e) {
    CHECK(e.code() == errc::non_finite);
    CHECK_THAT(e.what(), Catch::Contains("channel 5") && Catch::Contains("2x8x3x3"));
  }
  CHECK_FALSE(fresh.initialized());
  CHECK(std::all_of(fresh.bias().data(), fresh.bias().data() + 8, [](float v) { return v == 0.0f; }));
  bad(1, 5, 2, 0) = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_AS(run_forward(fresh, bad.view(), y, ws, pass_mode::training), error);
  CHECK_FALSE(fresh.initialized());

  // Parameters that give no finite positive scale.
  const auto expect_non_finite = [&](flow_layer& layer, const char* needle) {
    try {
      layer.forward(x.view(), y.view(), logdet, ws);
      FAIL("expected an error");
    } catch (const error& e) {
      CHECK(e.code() == errc::non_finite);
      CHECK_THAT(e.what(), Catch::Contains(needle));
    }
  };
  f.log_scale().data()[2] = std::numeric_limits<float>::quiet_NaN();
  expect_non_finite(f, "channel 2");
  f.log_scale().data()[2] = 100.0f;  // exp(100) overflows float
  expect_non_finite(f, "channel 2");
  f.log_scale().data()[2] = 0.0f;
  f.bias().data()[6] = std::numeric_limits<float>::infinity();
  expect_non_finite(f, "channel 6");
  f.bias().data()[6] = 0.0f;
  CHECK_NOTHROW(f.forward(x.view(), y.view(), logdet, ws));

  global_affine g(8);
  g.global_scale().data()[3] = -2000.0f;  // softplus underflows: Ψ = 0 is not invertible
  expect_non_finite(g, "channel 3");
  g.global_scale().data()[3] = std::numeric_limits<float>::quiet_NaN();
  expect_non_finite(g, "channel 3");
}
