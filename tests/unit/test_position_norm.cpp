#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <vector>

#include "flowad/layers/position_norm.hpp"
#include "support/layer_checks.hpp"

using namespace flowad;
using namespace flowad::testing;

namespace {

// Features whose mean and spread depend on the position, so that per-position statistics matter.
tensor positional_features(shape4 s, layout l, std::uint64_t seed) {
  tensor x = random_tensor(s, l, seed);
  for (index_t n = 0; n < s.n; ++n)
    for (index_t c = 0; c < s.c; ++c)
      for (index_t h = 0; h < s.h; ++h)
        for (index_t w = 0; w < s.w; ++w)
          x(n, c, h, w) = x(n, c, h, w) * static_cast<float>(0.5 + 0.2 * h + 0.1 * c) + static_cast<float>(h - 2 * w + c);
  return x;
}

// Mean and 1/sqrt(variance + floor) of element (c, h, w) over the samples at the positions within r of
// it, by direct sums in double.
std::pair<double, double> pooled_reference(const_view x, index_t c, index_t h, index_t w, index_t r, double floor) {
  double sum = 0.0, count = 0.0;
  for (index_t n = 0; n < x.n(); ++n)
    for (index_t hh = std::max<index_t>(0, h - r); hh <= std::min<index_t>(x.h() - 1, h + r); ++hh)
      for (index_t ww = std::max<index_t>(0, w - r); ww <= std::min<index_t>(x.w() - 1, w + r); ++ww) {
        sum += x(n, c, hh, ww);
        count += 1.0;
      }
  const double mean = sum / count;
  double squares = 0.0;
  for (index_t n = 0; n < x.n(); ++n)
    for (index_t hh = std::max<index_t>(0, h - r); hh <= std::min<index_t>(x.h() - 1, h + r); ++hh)
      for (index_t ww = std::max<index_t>(0, w - r); ww <= std::min<index_t>(x.w() - 1, w + r); ++ww)
        squares += (x(n, c, hh, ww) - mean) * (x(n, c, hh, ww) - mean);
  return {mean, 1.0 / std::sqrt(squares / count + floor)};
}

}  // namespace

TEST_CASE("position_norm sets each position's statistics from its window of the training set", "[position_norm]") {
  const shape4 s{7, 3, 4, 5};
  for (const layout l : {layout::nhwc, layout::nchw})
    for (const index_t r : {index_t{0}, index_t{1}, index_t{2}}) {
      INFO("layout " << (l == layout::nhwc ? "NHWC" : "NCHW") << ", radius " << r);
      const tensor x = positional_features(s, l, 11);
      position_norm f(s.c, s.h, s.w, r, 0.01);
      f.initialize(x.view());
      double worst = 0.0;
      for (index_t c = 0; c < s.c; ++c)
        for (index_t h = 0; h < s.h; ++h)
          for (index_t w = 0; w < s.w; ++w) {
            const auto [mean, scale] = pooled_reference(x.view(), c, h, w, r, 0.01);
            const auto i = static_cast<std::size_t>((h * s.w + w) * s.c + c);
            worst = std::max({worst, std::abs(f.mean().data()[i] - mean) / (1.0 + std::abs(mean)),
                              std::abs(f.scale().data()[i] - scale) / scale});
          }
      CHECK(worst <= 1e-6);
    }
}

TEST_CASE("position_norm with radius 0 standardises every position of its training set", "[position_norm]") {
  const shape4 s{40, 2, 3, 3};
  const tensor x = positional_features(s, layout::nhwc, 12);
  position_norm f(s.c, s.h, s.w, 0, 1e-9);
  f.initialize(x.view());
  workspace ws;
  tensor y;
  run_forward(f, x.view(), y, ws);
  for (index_t c = 0; c < s.c; ++c)
    for (index_t h = 0; h < s.h; ++h)
      for (index_t w = 0; w < s.w; ++w) {
        double sum = 0.0, squares = 0.0;
        for (index_t n = 0; n < s.n; ++n) sum += y(n, c, h, w), squares += y(n, c, h, w) * y(n, c, h, w);
        CHECK(std::abs(sum / s.n) <= 1e-5);
        CHECK(squares / s.n == Approx(1.0).epsilon(1e-4));
      }
}

TEST_CASE("position_norm is an exact flow layer", "[position_norm]") {
  const shape4 s{3, 4, 3, 2};
  position_norm f(s.c, s.h, s.w, 1);
  f.initialize(positional_features({9, s.c, s.h, s.w}, layout::nhwc, 13).view());
  const tensor x = positional_features(s, layout::nhwc, 14);
  check_round_trip(f, x.view(), 1e-4);
  check_round_trip(f, positional_features(s, layout::nchw, 15).view(), 1e-4);
  check_logdet(f, x.view().batch(0, 1), 1e-3);
  check_gradients(f, x.view());

  // The log-determinant is Σ log scale for every sample, whatever the input.
  double expected = 0.0;
  for (float a : f.scale().values()) expected += std::log(static_cast<double>(a));
  workspace ws;
  tensor y;
  for (double v : run_forward(f, x.view(), y, ws)) CHECK(v == Approx(expected).epsilon(1e-9));

  // NCHW output equals NHWC output.
  tensor y_nchw;
  run_forward(f, x.view(), y_nchw, ws, pass_mode::inference, layout::nchw);
  CHECK(max_abs_diff(y.view(), y_nchw.view()) == 0.0);
}

TEST_CASE("position_norm rejects bad arguments, shapes and data", "[position_norm]") {
  CHECK_THROWS_WITH(position_norm(0, 2, 2), Catch::Contains("position_norm needs positive extents, got 0x2x2"));
  CHECK_THROWS_AS(position_norm(2, 2, 2, -1), error);
  CHECK_THROWS_AS(position_norm(2, 2, 2, 1, 0.0), error);
  CHECK_THROWS_AS(position_norm(2, 2, 2, 1, std::numeric_limits<double>::infinity()), error);

  position_norm f(2, 3, 3, 1);
  const tensor x = positional_features({4, 2, 3, 3}, layout::nhwc, 16);
  workspace ws;
  tensor y;
  try {
    run_forward(f, x.view(), y, ws, pass_mode::training);
    FAIL("forward before initialize() did not throw");
  } catch (const error& e) {
    CHECK(e.code() == errc::not_fitted);
  }

  const tensor wrong = positional_features({4, 2, 3, 4}, layout::nhwc, 17);
  try {
    f.initialize(wrong.view());
    FAIL("a batch of another size did not throw");
  } catch (const error& e) {
    CHECK(e.code() == errc::shape_mismatch);
    CHECK_THAT(e.what(), Catch::Matchers::Contains("Nx2x3x3"));
  }

  tensor poisoned = positional_features({4, 2, 3, 3}, layout::nhwc, 18);
  poisoned.data()[5] = std::numeric_limits<float>::quiet_NaN();
  try {
    f.initialize(poisoned.view());
    FAIL("NaN in the initialisation batch did not throw");
  } catch (const error& e) {
    CHECK(e.code() == errc::non_finite);
  }
  CHECK_FALSE(f.initialized());

  f.initialize(x.view());
  try {
    run_forward(f, wrong.view(), y, ws);
    FAIL("maps of another size did not throw");
  } catch (const error& e) {
    CHECK(e.code() == errc::shape_mismatch);
  }
  f.scale().data()[3] = 0.0f;
  f.scale().mark_updated();
  try {
    run_forward(f, x.view(), y, ws);
    FAIL("a zero scale did not throw");
  } catch (const error& e) {
    CHECK(e.code() == errc::non_finite);
  }
}
