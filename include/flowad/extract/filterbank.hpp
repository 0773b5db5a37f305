// A weight-free multi-scale filter bank: the default extractor, usable on a fresh machine.
//
// Every filter is computed from a formula, so the extractor needs no file, is deterministic and is
// the same on every machine. It runs on the same oneDNN inference network as the backbones:
//
//   image (ImageNet-normalised RGB, H x W)
//   -> bank.level1 = 16 fine filters x {+, -} (7x7, 3 -> 32 channels), ReLU
//      -> two average pools 3x3 / stride 2                         level1: 32 ch, stride 4
//   -> pyramid.1 = blur + subsample (5x5 binomial, depthwise, stride 2)            H/2
//      -> bank.level2 = 28 coarse filters x {+, -} (11x11, 3 -> 56), ReLU, two pools
//                                                                  level2: 56 ch, stride 8
//   -> pyramid.2 = blur + subsample (pyramid.1)                                    H/4
//      -> bank.level3 = the same coarse filters, two pools         level3: 56 ch, stride 16
//
// So each level sees structure at about half its stride: 1-2 px lines at level1, 2-4 px at level2,
// 4-8 px at level3, each pooled over a window of about twice its stride. Filters act on an
// orthonormal colour-opponent basis of the input, L = (R+G+B)/sqrt3, RG = (R-G)/sqrt2,
// BY = (R+G-2B)/sqrt6, folded into the 3-channel weights:
//   fine (sigma 1, Gaussians 1.5)             coarse (on the 2x and 4x subsampled image)
//   L  first derivative, 4 orientations       L  first derivative (sigma 1), 4 orientations
//   L  second derivative, 4 orientations      L  second derivative (sigma 1), 4 orientations
//   L  Laplacian of Gaussian                  L  Gabor (sigma 2, wavelength 4), 6 orientations, even and odd
//   L  Gaussian                               L  Laplacian of Gaussian (sigma 1.5)
//   RG, BY Gaussian                           L  Gaussian (sigma 2); RG, BY Gaussian (sigma 2)
//   RG, BY first derivative in x and y        RG, BY first derivative (sigma 1.5) in x and y
// First derivatives respond to edges (crack borders), second derivatives to thin lines (scratches,
// cracks), Laplacians to spots and holes, Gabors to the local texture, Gaussians to brightness and
// colour (stains). Band-pass filters have zero mean (envelope-weighted DC correction) and unit L2
// norm; Gaussians sum to one. Filter i gives output channels 2i (+response) and 2i+1 (-response),
// both rectified by the fused ReLU, so the sign (bright versus dark line or spot) is kept and the
// average pools measure local energy. Cost: about 0.7 GMAC per 256x256 image (ResNet18 to layer3: 1.8).
#pragma once

#include <string>
#include <vector>

#include "flowad/extract/extractor.hpp"

namespace flowad {
inline namespace v0 {

class filterbank_extractor final : public network_extractor {
 public:
  static constexpr index_t fine_kernel_size = 7;
  static constexpr index_t coarse_kernel_size = 11;
  static constexpr index_t pyramid_kernel_size = 5;

  explicit filterbank_extractor(detail::activation_format format = detail::activation_format::preferred);

  // The tensors the network is built from (filter i as output channel 2i, its negation as 2i+1; no
  // biases): "pyramid.weight" (3 x 1 x 5 x 5, depthwise binomial), "fine.weight" (32 x 3 x 7 x 7)
  // and "coarse.weight" (56 x 3 x 11 x 11).
  static weight_map filters();
  // Short names of the 16 fine and 28 coarse filters ("L d1 0deg", "RG gauss", ...), in order.
  static std::vector<std::string> fine_filter_names();
  static std::vector<std::string> coarse_filter_names();
};

}  // namespace v0
}  // namespace flowad
