// Confidence intervals for a proportion measured by counting: a false-positive rate (flagged good
// images / good images) or a recall (detected defective images / defective images).
#pragma once

#include <cstddef>

namespace flowad {
inline namespace v0 {

struct binomial_interval {
  double lo = 0.0;
  double hi = 1.0;
};

// The Clopper-Pearson ("exact") interval for `successes` out of `trials` at `confidence` (two-sided):
// lo solves P(X >= successes | p) = (1 - confidence)/2 (0 when successes = 0), hi solves
// P(X <= successes | p) = (1 - confidence)/2 (1 when successes = trials); X ~ Binomial(trials, p).
// It covers the true rate with at least `confidence` probability, whatever the rate (conservative).
// 0 of 26 gives [0, 0.1323], 7 of 26 gives [0.1157, 0.4779]. Throws errc::invalid_argument for no
// trials, successes > trials, or confidence outside (0, 1).
binomial_interval clopper_pearson(std::size_t successes, std::size_t trials, double confidence = 0.95);

}  // namespace v0
}  // namespace flowad
