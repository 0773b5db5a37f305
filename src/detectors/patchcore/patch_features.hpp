// PatchCore's locally aware patch features: every scale averaged over its k x k neighbourhood (zero
// padding, divided by k²: AvgPool2d(k, 1, k/2) with count_include_pad), the deeper scales upsampled
// bilinearly (align_corners=False) to the first scale's grid, concatenated over channels.
#pragma once

#include <vector>

#include "flowad/detector.hpp"
#include "flowad/scoring/anomaly_map.hpp"

namespace flowad {
inline namespace v0 {
namespace detail {

struct patch_feature_buffers {
  std::vector<tensor> pooled;  // per deeper scale, its pooled maps before upsampling
  map_buffers maps;
};

// Samples [start, start + count) of `features` into `rows`: count x D x H0 x W0 in NHWC, so that every
// position of the first scale is one contiguous row of D = Σ C_s values. Resizes rows and the buffers
// (no allocation once they have held this size).
void patch_features(const feature_maps& features, index_t start, index_t count, index_t patch_size, tensor& rows,
                    patch_feature_buffers& buffers);

}  // namespace detail
}  // namespace v0
}  // namespace flowad
