// Index arithmetic for reflecting boundaries, shared by the map blur and the synthetic defects.
#pragma once

#include "flowad/tensor.hpp"

namespace flowad {
inline namespace v0 {
namespace detail {

// scipy.ndimage "reflect" boundary: d c b a | a b c d | d c b a, periodic with period 2n.
inline index_t reflect_index(index_t i, index_t n) noexcept {
  if (i >= 0 && i < n) return i;
  const index_t period = 2 * n;
  i %= period;
  if (i < 0) i += period;
  return i < n ? i : period - 1 - i;
}

}  // namespace detail
}  // namespace v0
}  // namespace flowad
