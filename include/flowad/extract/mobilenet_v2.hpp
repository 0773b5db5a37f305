// torchvision's MobileNetV2 (ImageNet) feature blocks features.0 to features.13, BatchNorm folded.
//
// Levels: "features.3" (24 channels, stride 4), "features.6" (32, stride 8) and "features.13" (96,
// stride 16): the last block at each of the three resolutions, so the levels line up with ResNet18's
// layer1..layer3 and a detector can switch backbones without changing its scales. Blocks with stride
// 32 (features.14 and later) and the classifier are not used; the weight file may contain them.
//
// Each inverted-residual block is expand 1x1 (+ReLU6), depthwise 3x3 (grouped convolution, +ReLU6),
// project 1x1 (linear), with the residual add fused into the projection when stride is 1 and the
// channel counts agree. Weights: torchvision key names (features.N.conv.0.0.weight, ...); see
// weight_specs(). Inputs: ImageNet-normalised RGB.
#pragma once

#include <string>
#include <vector>

#include "flowad/extract/extractor.hpp"

namespace flowad {
inline namespace v0 {

class mobilenet_v2_extractor final : public network_extractor {
 public:
  // From an .npz archive (../shared/weights/mobilenet_v2/mobilenet_v2_dequant_bnfolded.npz) or a
  // directory of <name>.npy files.
  explicit mobilenet_v2_extractor(const std::string& weights_path,
                                  detail::activation_format format = detail::activation_format::preferred);
  explicit mobilenet_v2_extractor(const weight_map& weights, const std::string& origin = "weight map",
                                  detail::activation_format format = detail::activation_format::preferred);

  // The 78 tensors of features.0 to features.13, with their exact shapes.
  static std::vector<weight_spec> required_weights();
  std::vector<weight_spec> weight_specs() const override { return required_weights(); }
  // The two deepest levels (strides 8 and 16), on which MS-Flow's defaults were validated.
  std::vector<std::string> default_levels() const override;
  // Per-position statistics won on all three development categories (docs/lab/positions-on-three-categories.md).
  bool position_statistics() const override { return true; }
};

}  // namespace v0
}  // namespace flowad
