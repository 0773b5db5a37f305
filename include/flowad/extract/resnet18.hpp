// torchvision's ResNet18 (ImageNet), conv1 to layer3, with BatchNorm folded into the convolutions.
//
// Levels: "layer1" (64 channels, stride 4), "layer2" (128, stride 8), "layer3" (256, stride 16) -
// the outputs of torchvision's layer1..layer3 (timm's features_only out_indices [1, 2, 3]).
// Every convolution has a bias (the folded BatchNorm); ReLU and the residual add are fused into the
// second convolution of each block. Weights: torchvision key names, e.g. conv1.weight (64x3x7x7),
// layer2.0.downsample.0.weight (128x64x1x1); see required_weights(). Inputs: ImageNet-normalised RGB.
// By default the ten stride-1 3x3 convolutions run on oneDNN's Winograd kernels where it has them
// (detail::activation_format::winograd; 1.1x faster at batch 1, 1.4-1.6x at batch 16,
// docs/performance.md); `preferred` keeps every convolution on the direct method.
#pragma once

#include <string>
#include <vector>

#include "flowad/extract/extractor.hpp"

namespace flowad {
inline namespace v0 {

class resnet18_extractor final : public network_extractor {
 public:
  // From a directory of <name>.npy files (../shared/weights/resnet18) or an .npz archive.
  explicit resnet18_extractor(const std::string& weights_path,
                              detail::activation_format format = detail::activation_format::winograd);
  // From tensors in memory (`origin` names them in error messages).
  explicit resnet18_extractor(const weight_map& weights, const std::string& origin = "weight map",
                              detail::activation_format format = detail::activation_format::winograd);

  // The 30 tensors the extractor reads, with their exact shapes.
  static std::vector<weight_spec> required_weights();
  std::vector<weight_spec> weight_specs() const override { return required_weights(); }
  // The two deepest levels (strides 8 and 16), on which MS-Flow's defaults were validated.
  std::vector<std::string> default_levels() const override;
  // Per-position statistics won on all three development categories (docs/lab/positions-on-three-categories.md).
  bool position_statistics() const override { return true; }
};

}  // namespace v0
}  // namespace flowad
