// STFPM's student: the ResNet18 layout up to the teacher's deepest level, randomly initialised.
//
//   conv 7x7 stride 2 → BN → ReLU → max pool 3x3 stride 2 → per level two BasicBlocks
//   (the first of every level after the first at stride 2),
//
// level l's width the teacher's (64, 128, 256 for ResNet18's layer1..3: then it is ResNet18 exactly).
#pragma once

#include <cstdint>
#include <vector>

#include "detectors/teacher_student/residual_block.hpp"

namespace flowad {
inline namespace v0 {
namespace detail {

class student_resnet {
 public:
  struct activations {
    tensor stem_conv, stem_out, pooled;
    std::vector<residual_block::activations> blocks;
    tensor grad[2], d_stem;
  };

  // widths: the teacher's channels, finest level first; image_channels: 3.
  student_resnet(const std::vector<index_t>& widths, index_t image_channels, std::uint64_t seed);

  static double parameter_count(const std::vector<index_t>& widths, index_t image_channels);

  std::size_t levels() const noexcept { return widths_.size(); }
  // The size of level 0 / each further level along an axis of `image` pixels.
  index_t level_size(std::size_t level, index_t image) const noexcept;

  void forward_training(const tensor& image, activations& a, workspace& ws);
  void forward_inference(const tensor& image, activations& a, workspace& ws) const;
  // Level l's output after a forward pass.
  const tensor& level(const activations& a, std::size_t l) const { return a.blocks[2 * l + 1].out; }
  // d_levels[l] = dL/d level(l) (clobbered): gradients of every parameter += dL/dθ.
  void backward(const tensor& image, activations& a, std::vector<tensor>& d_levels, workspace& ws);

  std::vector<parameter*> trained();
  std::vector<parameter*> parameters();
  double macs(index_t image_h, index_t image_w) const;

 private:
  std::vector<index_t> widths_;
  nn::conv stem_;
  nn::batch_norm stem_bn_;
  std::vector<residual_block> blocks_;  // 2 per level
};

}  // namespace detail
}  // namespace v0
}  // namespace flowad
