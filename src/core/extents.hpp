// Extents of per-position layers (layer_norm, position_norm): what they allocate and how messages
// print them.
#pragma once

#include <algorithm>
#include <string>

#include "flowad/tensor.hpp"

namespace flowad {
inline namespace v0 {
namespace detail {

// A negative extent (refused by the constructor right after) allocates nothing meanwhile.
inline index_t positive_extent(index_t v) { return std::max<index_t>(v, 0); }

// "CxHxW".
inline std::string extents_text(index_t c, index_t h, index_t w) {
  return std::to_string(c) + "x" + std::to_string(h) + "x" + std::to_string(w);
}

}  // namespace detail
}  // namespace v0
}  // namespace flowad
