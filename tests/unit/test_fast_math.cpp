#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

#include "flowad/detail/random.hpp"
#include "kernels/fast_math.hpp"

using namespace flowad;

namespace {
// Relative error in units of float epsilon, against the double-precision function.
template <class Fast, class Exact>
double worst_ulps(Fast fast, Exact exact, double lo, double hi, int samples) {
  detail::rng r(1);
  double worst = 0.0;
  for (int i = 0; i < samples; ++i) {
    const float x = static_cast<float>(r.uniform(lo, hi));
    const double want = exact(static_cast<double>(x));
    const double got = fast(x);
    const double denom = std::max(std::abs(want), 1e-30);
    worst = std::max(worst, std::abs(got - want) / denom / std::numeric_limits<float>::epsilon());
  }
  return worst;
}
}  // namespace

TEST_CASE("fast exp, atan and tanh are accurate to a few ulp", "[fast_math]") {
  using kernels::fast_atan;
  using kernels::fast_exp;
  using kernels::fast_tanh;
  const auto exp_d = [](double x) { return std::exp(x); };
  const auto atan_d = [](double x) { return std::atan(x); };
  const auto tanh_d = [](double x) { return std::tanh(x); };
  CHECK(worst_ulps(fast_exp, exp_d, -87.0, 88.0, 200000) < 4.0);
  CHECK(worst_ulps(fast_exp, exp_d, -1.0, 1.0, 200000) < 4.0);
  CHECK(worst_ulps(fast_atan, atan_d, -1e4, 1e4, 200000) < 4.0);
  CHECK(worst_ulps(fast_atan, atan_d, -3.0, 3.0, 200000) < 4.0);
  CHECK(worst_ulps(fast_tanh, tanh_d, -10.0, 10.0, 200000) < 6.0);
  CHECK(worst_ulps(fast_tanh, tanh_d, -0.7, 0.7, 200000) < 6.0);
}

TEST_CASE("fast math handles the edges", "[fast_math]") {
  using kernels::fast_atan;
  using kernels::fast_exp;
  using kernels::fast_tanh;
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  CHECK(std::isnan(fast_exp(nan)));
  CHECK(std::isnan(fast_atan(nan)));
  CHECK(std::isnan(fast_tanh(nan)));
  CHECK(fast_exp(100.0f) == inf);
  CHECK(fast_exp(inf) == inf);
  CHECK(fast_exp(-100.0f) == 0.0f);
  CHECK(fast_exp(-inf) == 0.0f);
  CHECK(fast_exp(0.0f) == 1.0f);
  CHECK(fast_atan(0.0f) == 0.0f);
  CHECK(fast_atan(inf) == Approx(1.5707963f));
  CHECK(fast_atan(-inf) == Approx(-1.5707963f));
  CHECK(fast_tanh(inf) == 1.0f);
  CHECK(fast_tanh(-inf) == -1.0f);
  CHECK(fast_tanh(0.0f) == 0.0f);
}
