// Connected-component labelling of binary masks (private to src/metrics).
#pragma once

#include <cstdint>
#include <vector>

#include "flowad/tensor.hpp"

namespace flowad {
inline namespace v0 {
namespace metrics_detail {

// Labels the 8-connected components of the non-zero pixels of mask (a 1 x 1 x H x W view) into
// labels (resized to H*W, row-major): 0 for background, 1..count in raster order of each component's
// first pixel (scipy.ndimage.label with a 3x3 structure). parent is scratch. Returns count.
std::int32_t label_plane(const const_view& mask, std::vector<std::int32_t>& labels, std::vector<std::int32_t>& parent);

}  // namespace metrics_detail
}  // namespace v0
}  // namespace flowad
