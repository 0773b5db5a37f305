// Initialisation of layer parameters shared by the coupling layers.
#pragma once

#include "flowad/detail/random.hpp"
#include "flowad/parameter.hpp"

namespace flowad {
inline namespace v0 {
namespace detail {

// Every value of p drawn from U(-bound, bound): PyTorch's default convolution initialisation with
// bound = 1/sqrt(fan_in), for weights and biases alike.
inline void init_uniform(parameter& p, double bound, rng& r) {
  for (float& v : p.values()) v = static_cast<float>(r.uniform(-bound, bound));
  p.mark_updated();
}

}  // namespace detail
}  // namespace v0
}  // namespace flowad
