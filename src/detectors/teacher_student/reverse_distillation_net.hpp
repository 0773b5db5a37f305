// Reverse Distillation's student (hq-deng/RD4AD, resnet.py BN_layer and de_resnet.py, for ResNet18):
//
//   OCBE     a = ReLU(BN(conv3x3/2(ReLU(BN(conv3x3/2(f1))))))   c1 → c2 → c3 channels
//            b = ReLU(BN(conv3x3/2(f2)))                         c2 → c3
//            e = two BasicBlocks on cat(a, b, f3), the first at stride 2: 3·c3 → 2·c3 channels
//   decoder  per level, deepest first, two decoder BasicBlocks (the first upsampling by a 2x2 transposed
//            convolution): 2·c3 → c3 → c2 → c1 channels, each level cropped to its teacher level's size.
//
// The decoder's levels D1..D3 are compared with the teacher's f1..f3.
#pragma once

#include <cstdint>
#include <vector>

#include "detectors/teacher_student/residual_block.hpp"
#include "flowad/detector.hpp"

namespace flowad {
inline namespace v0 {
namespace detail {

class reverse_distillation_net {
 public:
  struct activations {
    tensor a1_conv, a1, a2_conv, a2, b_conv, b, joined;
    std::vector<residual_block::activations> bottleneck, decoder;
    tensor levels[3];  // decoder outputs cropped to the teacher's sizes, finest first
    // Whether level() reads level l's decoder output itself instead of levels[l]: in inference, when
    // that output already has the teacher's size (no copy).
    bool level_in_place[3] = {false, false, false};
    tensor grad[2], d_joined, d_a1, d_tmp;
  };

  // teacher: the three levels' shapes, finest first; each level's size is the previous one's halved
  // (rounded up). Throws errc::invalid_argument otherwise.
  reverse_distillation_net(const std::vector<scale_shape>& teacher, std::uint64_t seed);

  static double parameter_count(const std::vector<scale_shape>& teacher);

  // teacher_levels: dense NHWC tensors of the three levels, same batch.
  void forward_training(const tensor* teacher_levels, activations& a, workspace& ws);
  void forward_inference(const tensor* teacher_levels, activations& a, workspace& ws) const;
  const tensor& level(const activations& a, std::size_t l) const {
    return a.level_in_place[l] ? a.decoder[2 * (2 - l) + 1].out : a.levels[l];
  }
  // d_levels[l] = dL/d level(l) (clobbered).
  void backward(const tensor* teacher_levels, activations& a, std::vector<tensor>& d_levels, workspace& ws);

  std::vector<parameter*> trained();
  std::vector<parameter*> parameters();
  double macs() const;

 private:
  std::vector<scale_shape> teacher_;
  nn::conv a1_conv_, a2_conv_, b_conv_;
  nn::batch_norm a1_bn_, a2_bn_, b_bn_;
  std::vector<residual_block> bottleneck_;  // 2
  std::vector<residual_block> decoder_;     // 6: two per level, deepest level first
};

}  // namespace detail
}  // namespace v0
}  // namespace flowad
