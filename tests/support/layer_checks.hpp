// Property checks every flow layer must pass: round trip, brute-force log-determinant, and gradients
// against finite differences. Shared by the per-layer test files.
#pragma once

#include <catch2/catch.hpp>

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "flowad/detail/random.hpp"
#include "flowad/layers/flow_layer.hpp"
#include "support/naive.hpp"

namespace flowad {
namespace testing {

inline tensor random_tensor(shape4 s, layout l, std::uint64_t seed, float scale = 1.0f, float offset = 0.0f) {
  tensor t(s, l);
  detail::rng r(seed);
  float* p = t.data();
  for (index_t i = 0; i < t.numel(); ++i) p[i] = offset + scale * static_cast<float>(r.normal());
  return t;
}

inline double max_abs_diff(const_view a, const_view b) {
  REQUIRE(a.shape() == b.shape());
  double m = 0.0;
  for (index_t n = 0; n < a.n(); ++n)
    for (index_t c = 0; c < a.c(); ++c)
      for (index_t h = 0; h < a.h(); ++h)
        for (index_t w = 0; w < a.w(); ++w)
          m = std::max(m, std::abs(static_cast<double>(a(n, c, h, w)) - static_cast<double>(b(n, c, h, w))));
  return m;
}

inline double max_abs(const_view a) {
  double m = 0.0;
  for (index_t n = 0; n < a.n(); ++n)
    for (index_t c = 0; c < a.c(); ++c)
      for (index_t h = 0; h < a.h(); ++h)
        for (index_t w = 0; w < a.w(); ++w) m = std::max(m, std::abs(static_cast<double>(a(n, c, h, w))));
  return m;
}

// dst = f(src) into y (resized to src's shape in layout l); returns log|det J| per sample.
inline std::vector<double> run_forward(const flow_layer& f, const_view x, tensor& y, workspace& ws,
                                       pass_mode mode = pass_mode::inference, layout l = layout::nhwc) {
  y.resize(x.shape(), l);
  std::vector<double> logdet(static_cast<std::size_t>(x.n()), 0.0);
  f.forward(x, y.view(), logdet, ws, mode);
  return logdet;
}

// inverse(forward(x)) == x within tolerance.
inline void check_round_trip(const flow_layer& f, const_view x, double tolerance = 1e-4) {
  workspace ws;
  tensor y, x_back(x.shape(), layout::nhwc);
  run_forward(f, x, y, ws);
  f.inverse(y.view(), x_back.view(), ws);
  const double err = max_abs_diff(x, x_back.view());
  INFO(f.kind() << " round trip on " << x.shape().str() << ": max |x - f^-1(f(x))| = " << err);
  CHECK(err <= tolerance);
}

// log|det J| of sample 0 of x from a Jacobian built by five-point central differences, LU in double.
// Meant for tiny shapes (C*H*W up to a few hundred).
inline double brute_force_logdet(const flow_layer& f, const_view x0, double step = 1.0 / 128) {
  REQUIRE(x0.n() == 1);
  const index_t d = x0.numel();
  workspace ws;
  tensor x(x0.shape(), layout::nhwc), y;
  copy(x0, x.view());
  auto out = [&](index_t i, double delta) {
    float* p = x.data() + i;
    const float saved = *p;
    *p = static_cast<float>(saved + delta);
    run_forward(f, x.view(), y, ws);
    *p = saved;
    return Eigen::Map<const Eigen::VectorXf>(y.data(), d).cast<double>().eval();
  };
  Eigen::MatrixXd jacobian(d, d);
  for (index_t i = 0; i < d; ++i)
    jacobian.col(i) = (-out(i, 2 * step) + 8.0 * out(i, step) - 8.0 * out(i, -step) + out(i, -2 * step)) / (12.0 * step);
  // Both x and y are dense NHWC, so row/column order agree; the determinant does not depend on it.
  const Eigen::PartialPivLU<Eigen::MatrixXd> lu(jacobian);
  return lu.matrixLU().diagonal().array().abs().log().sum();
}

inline void check_logdet(const flow_layer& f, const_view x, double tolerance = 1e-3) {
  REQUIRE(x.n() == 1);
  workspace ws;
  tensor y;
  const double reported = run_forward(f, x, y, ws)[0];
  const double brute = brute_force_logdet(f, x);
  INFO(f.kind() << " on " << x.shape().str() << ": reported log|det J| = " << reported << ", brute force = " << brute);
  CHECK(std::abs(reported - brute) <= tolerance);
}

// A double-precision reference forward pass of a layer (reading the layer's current float parameters):
// dst in NCHW double and log|det J| per sample.
struct reference_output {
  dtensor y;
  std::vector<double> logdet;
};
using reference_forward = std::function<reference_output(const_view x)>;

struct gradient_check_options {
  double step = 1.0 / 128;
  int samples_per_tensor = 24;  // coordinates checked per tensor (all if the tensor is smaller)
  double tolerance = 1e-2;      // on |analytic - numeric| / max(|analytic|, |numeric|, floor)
  std::uint64_t seed = 7;
};

// Checks dL/dsrc and dL/dθ for every parameter, where L = Σ a ⊙ dst + Σ_n b_n logdet_n with random a, b,
// against central differences. Without a reference, the differences are five-point stencils of the
// layer's own float forward pass (evaluated in double). With a double-precision reference, they are
// two-point differences of the reference with a tiny step (1e-5, divided by the exactly representable
// float perturbation), which is what layers with kinks (ReLU subnets) need: a float-sized step would
// cross kinks and measure a one-sided mixture.
inline void check_gradients(flow_layer& f, const_view x0, const gradient_check_options& opt = {},
                            const reference_forward& reference = {}) {
  const shape4 s = x0.shape();
  workspace ws;
  tensor x(s, layout::nhwc), y;
  copy(x0, x.view());
  const tensor a = random_tensor(s, layout::nhwc, opt.seed + 1);
  detail::rng r(opt.seed + 2);
  std::vector<double> b(static_cast<std::size_t>(s.n));
  for (double& v : b) v = r.uniform(-1.0, 1.0);

  auto loss = [&]() {
    const std::vector<double> logdet = run_forward(f, x.view(), y, ws);
    double l = 0.0;
    for (index_t i = 0; i < y.numel(); ++i) l += static_cast<double>(a.data()[i]) * y.data()[i];
    for (std::size_t n = 0; n < b.size(); ++n) l += b[n] * logdet[n];
    return l;
  };

  auto reference_loss = [&]() {
    const reference_output out = reference(x.view());
    double l = 0.0;
    for (index_t n = 0; n < s.n; ++n)
      for (index_t c = 0; c < s.c; ++c)
        for (index_t h = 0; h < s.h; ++h)
          for (index_t w = 0; w < s.w; ++w) l += static_cast<double>(a(n, c, h, w)) * out.y.at(n, c, h, w);
    for (std::size_t n = 0; n < b.size(); ++n) l += b[n] * out.logdet[n];
    return l;
  };

  // Analytic gradients.
  for (parameter* p : f.parameters()) p->zero_grad();
  run_forward(f, x.view(), y, ws, pass_mode::training);
  tensor diff_src(s, layout::nhwc);
  f.backward(x.view(), y.view(), a.view(), b, diff_src.view(), ws);

  auto numeric = [&](float* target, parameter* owner) {
    const float saved = *target;
    auto at = [&](double delta, bool use_reference) {
      *target = static_cast<float>(saved + delta);
      if (owner) owner->mark_updated();
      return use_reference ? reference_loss() : loss();
    };
    double g;
    if (reference) {
      constexpr double tiny = 1e-5;
      const double up = static_cast<double>(static_cast<float>(saved + tiny)) - saved;
      const double down = saved - static_cast<double>(static_cast<float>(saved - tiny));
      g = (at(up, true) - at(-down, true)) / (up + down);
    } else {
      g = (-at(2 * opt.step, false) + 8.0 * at(opt.step, false) - 8.0 * at(-opt.step, false) +
           at(-2 * opt.step, false)) / (12.0 * opt.step);
    }
    *target = saved;
    if (owner) owner->mark_updated();
    return g;
  };

  auto compare = [&](const std::string& name, float* values, const float* analytic, std::size_t count, parameter* owner) {
    std::vector<std::size_t> picks(count);
    for (std::size_t i = 0; i < count; ++i) picks[i] = i;
    if (count > static_cast<std::size_t>(opt.samples_per_tensor)) {
      r.shuffle(picks);
      picks.resize(static_cast<std::size_t>(opt.samples_per_tensor));
    }
    std::vector<double> num(picks.size());
    double scale = 0.0;
    for (std::size_t k = 0; k < picks.size(); ++k) {
      num[k] = numeric(values + picks[k], owner);
      scale = std::max({scale, std::abs(num[k]), std::abs(static_cast<double>(analytic[picks[k]]))});
    }
    const double floor = 1e-2 * scale + 1e-6;
    double worst = 0.0;
    std::size_t worst_k = 0;
    for (std::size_t k = 0; k < picks.size(); ++k) {
      const double an = analytic[picks[k]];
      const double rel = std::abs(an - num[k]) / std::max({std::abs(an), std::abs(num[k]), floor});
      if (rel > worst) worst = rel, worst_k = k;
    }
    INFO(f.kind() << " gradient of " << name << " on " << s.str() << ": worst relative error " << worst << " at entry "
                  << (picks.empty() ? 0 : picks[worst_k]) << " (analytic "
                  << (picks.empty() ? 0.0 : analytic[picks[worst_k]]) << ", numeric "
                  << (picks.empty() ? 0.0 : num[worst_k]) << ")");
    CHECK(worst <= opt.tolerance);
  };

  compare("src", x.data(), diff_src.data(), static_cast<std::size_t>(x.numel()), nullptr);
  for (parameter* p : f.parameters()) {
    const std::vector<float> analytic(p->grad(), p->grad() + p->size());
    compare(p->name(), p->data(), analytic.data(), p->size(), p);
  }
}

}  // namespace testing
}  // namespace flowad
