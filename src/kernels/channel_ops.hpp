// Channel gathers and scatters on strided views (private to src/).
#pragma once

#include "flowad/tensor.hpp"

namespace flowad {
inline namespace v0 {
namespace kernels {

// dst(:, c) = src(:, index[c]) for c in [0, dst.c()).
void gather_channels(const_view src, view dst, const index_t* index);

}  // namespace kernels
}  // namespace v0
}  // namespace flowad
