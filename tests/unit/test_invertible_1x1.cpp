#include <catch2/catch.hpp>

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "flowad/layers/invertible_1x1.hpp"
#include "support/layer_checks.hpp"

using namespace flowad;
using namespace flowad::testing;

namespace {

// W = P·L·U rebuilt independently from the layer's float factors, in double.
struct reference_factors {
  Eigen::MatrixXd p, l, u, w;
};

reference_factors reference(const invertible_1x1& f) {
  const index_t c = f.channels();
  reference_factors r;
  r.p = Eigen::MatrixXd::Zero(c, c);
  r.l = Eigen::MatrixXd::Identity(c, c);
  r.u = Eigen::MatrixXd::Zero(c, c);
  for (index_t i = 0; i < c; ++i) {
    r.p(i, f.permutation()[static_cast<std::size_t>(i)]) = 1.0;  // (P x)[i] = x[permutation[i]]
    r.u(i, i) = f.signs()[static_cast<std::size_t>(i)] * std::exp(static_cast<double>(f.log_s().data()[i]));
    for (index_t j = 0; j < c; ++j) {
      if (j < i) r.l(i, j) = f.lower().data()[i * c + j];
      if (j > i) r.u(i, j) = f.upper().data()[i * c + j];
    }
  }
  r.w = r.p * r.l * r.u;
  return r;
}

double sum_log_s(const invertible_1x1& f) {
  double s = 0.0;
  for (float v : f.log_s().values()) s += v;
  return s;
}

// Moves W away from a rotation so that log|det| and every factor matter. The noise on L and U is scaled
// by 1/sqrt(C) so that W stays reasonably conditioned at every C (cond(W) ~ 30 at C = 76, ~ 260 at 304);
// float results are only as accurate as cond(W) allows.
// The entries outside the triangles that are used get noise too: they must be ignored.
void perturb(invertible_1x1& f, std::uint64_t seed, double factor_noise = 0.3, double log_s_noise = 0.2) {
  detail::rng r(seed);
  const double per_entry = factor_noise / std::sqrt(static_cast<double>(f.channels()));
  for (parameter* p : {&f.lower(), &f.upper()})
    for (float& v : p->values()) v += static_cast<float>(per_entry * r.normal());
  for (float& v : f.log_s().values()) v += static_cast<float>(log_s_noise * r.normal());
  for (parameter* p : f.parameters()) p->mark_updated();
}

// out(n, :, h, w) = m · in(n, :, h, w), in double.
dtensor apply_per_pixel(const Eigen::MatrixXd& m, const_view in) {
  dtensor out(in.n(), m.rows(), in.h(), in.w());
  for (index_t n = 0; n < in.n(); ++n)
    for (index_t h = 0; h < in.h(); ++h)
      for (index_t w = 0; w < in.w(); ++w)
        for (index_t i = 0; i < m.rows(); ++i) {
          double acc = 0.0;
          for (index_t j = 0; j < m.cols(); ++j) acc += m(i, j) * in(n, j, h, w);
          out.at(n, i, h, w) = acc;
        }
  return out;
}

double relative_error(const float* actual, const Eigen::MatrixXd& expected, bool (*used)(index_t, index_t)) {
  double diff = 0.0, scale = 0.0;
  for (index_t i = 0; i < expected.rows(); ++i)
    for (index_t j = 0; j < expected.cols(); ++j) {
      const double e = used(i, j) ? expected(i, j) : 0.0;
      diff = std::max(diff, std::abs(actual[i * expected.cols() + j] - e));
      scale = std::max(scale, std::abs(e));
    }
  return diff / std::max(scale, std::numeric_limits<double>::min());
}

const shape4 test_shapes[] = {{1, 76, 5, 3}, {3, 152, 4, 4}, {2, 304, 2, 3}};

}  // namespace

TEST_CASE("invertible_1x1 starts as a seeded random rotation", "[inv1x1]") {
  for (const index_t c : {4, 76, 304}) {
    const invertible_1x1 a(c, 3), b(c, 3), other(c, 4);
    CHECK(a.permutation() == b.permutation());
    CHECK(std::equal(a.lower().data(), a.lower().data() + a.lower().size(), b.lower().data()));
    CHECK_FALSE(std::equal(a.lower().data(), a.lower().data() + a.lower().size(), other.lower().data()));
    for (float s : a.signs()) CHECK((s == 1.0f || s == -1.0f));

    const Eigen::MatrixXd w = reference(a).w;
    const double orthogonality = (w * w.transpose() - Eigen::MatrixXd::Identity(c, c)).cwiseAbs().maxCoeff();
    INFO("C = " << c << ": max |W W^T - I| = " << orthogonality << ", sum log_s = " << sum_log_s(a));
    CHECK(orthogonality <= 1e-5);
    CHECK(std::abs(sum_log_s(a)) <= 1e-4);  // log|det Q| = 0
    // Unused triangle entries start at zero.
    for (index_t i = 0; i < c; ++i) {
      CHECK(a.lower().data()[i * c + i] == 0.0f);
      CHECK(a.upper().data()[i * c + i] == 0.0f);
    }
  }
}

TEST_CASE("invertible_1x1 matches a naive per-pixel product in every layout", "[inv1x1]") {
  for (const shape4 s : test_shapes) {
    for (const layout in_layout : {layout::nchw, layout::nhwc}) {
      const layout out_layout = in_layout == layout::nchw ? layout::nhwc : layout::nchw;
      invertible_1x1 f(s.c, 11);
      perturb(f, 12);
      const reference_factors ref = reference(f);
      const tensor x = random_tensor(s, in_layout, 5);
      workspace ws;

      // Forward and log-determinant.
      tensor z;
      const std::vector<double> logdet = run_forward(f, x.view(), z, ws, pass_mode::training, out_layout);
      const double expected_logdet = static_cast<double>(s.h * s.w) * sum_log_s(f);
      const Eigen::JacobiSVD<Eigen::MatrixXd> svd(ref.w);
      INFO("shape " << s.str() << ", input " << (in_layout == layout::nchw ? "NCHW" : "NHWC") << ", cond(W) = "
                    << svd.singularValues()(0) / svd.singularValues()(s.c - 1));
      CHECK(relative_error(z.view(), apply_per_pixel(ref.w, x.view())) <= 1e-4);
      for (double v : logdet) CHECK(v == Approx(expected_logdet).epsilon(1e-9).margin(1e-9));

      // Inverse against W^-1 from Eigen.
      tensor x_back(s, in_layout);
      f.inverse(z.view(), x_back.view(), ws);
      CHECK(relative_error(x_back.view(), apply_per_pixel(ref.w.inverse(), z.view())) <= 1e-4);

      // Backward: dL/dx = W^T dz; dL/dW = Σ dz x^T chained through W = P·L·U.
      const tensor diff_z = random_tensor(s, in_layout, 6);
      std::vector<double> diff_logdet(static_cast<std::size_t>(s.n));
      for (std::size_t n = 0; n < diff_logdet.size(); ++n) diff_logdet[n] = 0.25 * static_cast<double>(n) - 0.5;
      for (parameter* p : f.parameters()) p->zero_grad();
      tensor diff_x(s, out_layout);
      f.backward(x.view(), z.view(), diff_z.view(), diff_logdet, diff_x.view(), ws);
      CHECK(relative_error(diff_x.view(), apply_per_pixel(ref.w.transpose(), diff_z.view())) <= 1e-4);

      Eigen::MatrixXd diff_w = Eigen::MatrixXd::Zero(s.c, s.c);
      for (index_t n = 0; n < s.n; ++n)
        for (index_t h = 0; h < s.h; ++h)
          for (index_t w = 0; w < s.w; ++w)
            for (index_t i = 0; i < s.c; ++i)
              for (index_t j = 0; j < s.c; ++j) diff_w(i, j) += double(diff_z(n, i, h, w)) * x(n, j, h, w);
      const Eigen::MatrixXd diff_a = ref.p.transpose() * diff_w;
      const Eigen::MatrixXd diff_l = diff_a * ref.u.transpose(), diff_u = ref.l.transpose() * diff_a;
      Eigen::MatrixXd diff_log_s(s.c, 1);
      const double logdet_weight = double(s.h * s.w) * std::accumulate(diff_logdet.begin(), diff_logdet.end(), 0.0);
      for (index_t i = 0; i < s.c; ++i) diff_log_s(i, 0) = diff_u(i, i) * ref.u(i, i) + logdet_weight;
      CHECK(relative_error(f.lower().grad(), diff_l, [](index_t i, index_t j) { return j < i; }) <= 1e-4);
      CHECK(relative_error(f.upper().grad(), diff_u, [](index_t i, index_t j) { return j > i; }) <= 1e-4);
      CHECK(relative_error(f.log_s().grad(), diff_log_s, [](index_t, index_t) { return true; }) <= 1e-4);
    }
  }
}

TEST_CASE("invertible_1x1 inverse recovers the input", "[inv1x1]") {
  for (const shape4 s : {shape4{1, 76, 5, 3}, shape4{4, 152, 3, 3}, shape4{2, 304, 4, 2}, shape4{16, 304, 3, 2}}) {
    for (const layout l : {layout::nchw, layout::nhwc}) {
      invertible_1x1 f(s.c, 21);
      perturb(f, 22);
      check_round_trip(f, random_tensor(s, l, 23).view());
    }
  }
}

TEST_CASE("invertible_1x1 log-determinant equals the brute-force Jacobian", "[inv1x1]") {
  invertible_1x1 f(4, 1);
  perturb(f, 2, 0.4, 0.5);
  REQUIRE(std::abs(sum_log_s(f)) > 0.1);  // a log-det of zero would prove little
  check_logdet(f, random_tensor({1, 4, 3, 3}, layout::nchw, 3).view());
  check_logdet(f, random_tensor({1, 4, 3, 3}, layout::nhwc, 4).view());
}

TEST_CASE("invertible_1x1 gradients match finite differences", "[inv1x1]") {
  invertible_1x1 f(4, 5);
  perturb(f, 6, 0.4, 0.5);
  check_gradients(f, random_tensor({2, 4, 3, 3}, layout::nchw, 7).view());
  check_gradients(f, random_tensor({1, 4, 3, 3}, layout::nhwc, 8).view());
  invertible_1x1 odd(5, 9);
  perturb(odd, 10, 0.4, 0.5);
  check_gradients(odd, random_tensor({3, 5, 2, 3}, layout::nhwc, 11).view());
}

TEST_CASE("invertible_1x1 rebuilds W when a parameter's stamp changes", "[inv1x1]") {
  invertible_1x1 f(8, 1);
  const tensor x = random_tensor({2, 8, 3, 3}, layout::nhwc, 2);
  workspace ws;
  tensor z;
  const double before = run_forward(f, x.view(), z, ws)[0];
  f.log_s().data()[3] += 0.5f;
  f.lower().data()[5 * 8 + 2] += 0.25f;
  f.lower().mark_updated();
  f.log_s().mark_updated();
  const double after = run_forward(f, x.view(), z, ws)[0];
  CHECK(after - before == Approx(9 * 0.5).epsilon(1e-6));
  CHECK(relative_error(z.view(), apply_per_pixel(reference(f).w, x.view())) <= 1e-5);

  // A copy owns its parameters and its derived weights.
  invertible_1x1 copy_of_f(f);
  f.log_s().data()[0] += 1.0f;
  f.log_s().mark_updated();
  tensor z_copy;
  run_forward(copy_of_f, x.view(), z_copy, ws);
  CHECK(max_abs_diff(z.view(), z_copy.view()) == 0.0);
  CHECK(copy_of_f.id() != f.id());
}

TEST_CASE("invertible_1x1 with explicit fixed factors", "[inv1x1]") {
  // L = I, U = diag(sign): W = P·diag(sign), so z[i] = sign[p[i]]·x[p[i]] with p = {2, 0, 1}.
  const invertible_1x1 f(std::vector<index_t>{2, 0, 1}, std::vector<float>{1.0f, -1.0f, 1.0f});
  const tensor x = random_tensor({1, 3, 2, 2}, layout::nchw, 1);
  workspace ws;
  tensor z;
  const std::vector<double> logdet = run_forward(f, x.view(), z, ws, pass_mode::inference, layout::nchw);
  CHECK(logdet[0] == 0.0);
  for (index_t h = 0; h < 2; ++h)
    for (index_t w = 0; w < 2; ++w) {
      CHECK(z(0, 0, h, w) == Approx(x(0, 2, h, w)));
      CHECK(z(0, 1, h, w) == Approx(x(0, 0, h, w)));
      CHECK(z(0, 2, h, w) == Approx(-x(0, 1, h, w)));
    }
}

TEST_CASE("invertible_1x1 rejects bad input", "[inv1x1]") {
  CHECK_THROWS_AS(invertible_1x1(0, 1), error);
  CHECK_THROWS_AS(invertible_1x1(-3, 1), error);
  CHECK_THROWS_AS(invertible_1x1(std::vector<index_t>{0, 0, 1}, std::vector<float>{1, 1, 1}), error);
  CHECK_THROWS_AS(invertible_1x1(std::vector<index_t>{0, 1}, std::vector<float>{1}), error);
  CHECK_THROWS_AS(invertible_1x1(std::vector<index_t>{0, 1}, std::vector<float>{1, 0.5f}), error);

  invertible_1x1 f(8, 1);
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
  try {
    f.forward(x.view(), wrong_hw.view(), logdet, ws);
    FAIL("expected an error");
  } catch (const error& e) {
    CHECK(e.code() == errc::shape_mismatch);
    CHECK_THAT(e.what(), Catch::Contains("2x8x3x3") && Catch::Contains("2x8x3x4"));
  }
  std::vector<double> none;
  CHECK_THROWS_AS(f.forward(empty.view(), empty.view(), none, ws), error);
  CHECK_THROWS_AS(f.forward(x.view(), x.view(), logdet, ws), error);  // in place is rejected
  std::vector<double> short_logdet(1);
  CHECK_THROWS_AS(f.forward(x.view(), y.view(), short_logdet, ws), error);
  CHECK_THROWS_AS(f.inverse(wrong_c.view(), y.view(), ws), error);
  std::vector<double> diff_logdet(2);
  CHECK_THROWS_AS(f.backward(x.view(), y.view(), wrong_hw.view(), diff_logdet, y.view(), ws), error);
  CHECK_THROWS_AS(f.backward(x.view(), y.view(), y.view(), diff_logdet, x.view(), ws), error);  // diff_src aliases src

  // Non-finite factors cannot give a usable W.
  const auto expect_non_finite = [&](const char* needle) {
    try {
      f.forward(x.view(), y.view(), logdet, ws);
      FAIL("expected an error");
    } catch (const error& e) {
      CHECK(e.code() == errc::non_finite);
      CHECK_THAT(e.what(), Catch::Contains(needle));
    }
    CHECK_THROWS_AS(f.inverse(x.view(), y.view(), ws), error);
  };
  const float saved_lower = f.lower().data()[3 * 8 + 1];
  f.lower().data()[3 * 8 + 1] = std::numeric_limits<float>::quiet_NaN();
  f.lower().mark_updated();
  expect_non_finite("lower");
  f.lower().data()[3 * 8 + 1] = saved_lower;
  f.lower().data()[1 * 8 + 3] = std::numeric_limits<float>::quiet_NaN();  // upper triangle of "lower": unused
  f.lower().mark_updated();
  CHECK_NOTHROW(f.forward(x.view(), y.view(), logdet, ws));

  f.upper().data()[2 * 8 + 6] = std::numeric_limits<float>::infinity();
  f.upper().mark_updated();
  expect_non_finite("upper");
  f.upper().data()[2 * 8 + 6] = 0.0f;
  f.upper().mark_updated();

  f.log_s().data()[4] = std::numeric_limits<float>::quiet_NaN();
  f.log_s().mark_updated();
  expect_non_finite("log_s");
  f.log_s().data()[4] = 200.0f;  // exp(200) is finite in double but not in float
  f.log_s().mark_updated();
  expect_non_finite("overflows float");
  f.log_s().data()[4] = -100.0f;  // W is finite, W^-1 is not: only inverse() needs it
  f.log_s().mark_updated();
  CHECK_NOTHROW(f.forward(x.view(), y.view(), logdet, ws));
  try {
    f.inverse(y.view(), x.view(), ws);
    FAIL("expected an error");
  } catch (const error& e) {
    CHECK(e.code() == errc::non_finite);
    CHECK_THAT(e.what(), Catch::Contains("W^-1"));
  }
  f.log_s().data()[4] = 0.0f;
  f.log_s().mark_updated();
  CHECK_NOTHROW(f.forward(x.view(), y.view(), logdet, ws));
  CHECK_NOTHROW(f.inverse(y.view(), x.view(), ws));
}
