#include "flowad/metrics/binomial.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "flowad/error.hpp"

namespace flowad {
inline namespace v0 {

namespace {

// P(X >= k) for X ~ Binomial(n, p), 0 < p < 1, summed in log space term by term (exact enough for the
// image counts this is for; n up to millions stays O(n)).
double upper_tail(std::size_t k, std::size_t n, double p) {
  const double log_p = std::log(p), log_q = std::log1p(-p);
  const double log_n_factorial = std::lgamma(static_cast<double>(n) + 1.0);
  double sum = 0.0;
  for (std::size_t i = k; i <= n; ++i) {
    const double x = static_cast<double>(i), rest = static_cast<double>(n - i);
    sum += std::exp(log_n_factorial - std::lgamma(x + 1.0) - std::lgamma(rest + 1.0) + x * log_p + rest * log_q);
  }
  return std::min(1.0, sum);
}

// The p in (0, 1) where the increasing function f(p) crosses `target`, by bisection: f is a binomial
// tail, monotone in p, and 100 halvings reach double precision.
template <class F>
double crossing(F f, double target) {
  double lo = 0.0, hi = 1.0;
  for (int i = 0; i < 100; ++i) {
    const double mid = 0.5 * (lo + hi);
    if (f(mid) < target)
      lo = mid;
    else
      hi = mid;
  }
  return 0.5 * (lo + hi);
}

}  // namespace

binomial_interval clopper_pearson(std::size_t successes, std::size_t trials, double confidence) {
  if (trials == 0) throw error(errc::invalid_argument, "clopper_pearson: no trials");
  if (successes > trials)
    throw error(errc::invalid_argument, "clopper_pearson: " + std::to_string(successes) + " successes out of " +
                                            std::to_string(trials) + " trials");
  if (!(confidence > 0.0 && confidence < 1.0))
    throw error(errc::invalid_argument, "clopper_pearson: confidence must be in (0, 1), got " + std::to_string(confidence));
  const double alpha_half = 0.5 * (1.0 - confidence);
  binomial_interval r;
  // P(X >= successes | p) rises with p: lo is where it reaches alpha/2.
  if (successes > 0) r.lo = crossing([&](double p) { return upper_tail(successes, trials, p); }, alpha_half);
  // P(X <= successes | p) = 1 - P(X >= successes + 1 | p) falls with p: hi is where it drops to alpha/2.
  if (successes < trials)
    r.hi = crossing([&](double p) { return upper_tail(successes + 1, trials, p); }, 1.0 - alpha_half);
  return r;
}

}  // namespace v0
}  // namespace flowad
