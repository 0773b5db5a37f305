// ResNet's BasicBlock and RD's decoder block (DeBasicBlock), trainable, on dense NHWC tensors:
//
//   out = ReLU( BN(conv3x3(ReLU(BN(first(x))))) + shortcut(x) )
//
// first: conv3x3 (stride 1), conv3x3 stride 2 (resample::down) or a 2x2 transposed convolution stride 2
// (resample::up, RD's decoder); shortcut: x itself when the block keeps size and width, else the same
// resampling as a 1x1 convolution (down or none) or 2x2 transposed convolution (up), then BN.
// Convolutions have no bias, as in torchvision and RD4AD.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "flowad/nn/batch_norm.hpp"
#include "flowad/nn/conv.hpp"
#include "flowad/nn/deconv.hpp"
#include "flowad/tensor.hpp"
#include "flowad/workspace.hpp"

namespace flowad {
inline namespace v0 {
namespace detail {

enum class resample { none, down, up };

// A convolution that keeps, halves (stride 2) or doubles (2x2 transposed, stride 2) the size.
class resampling_conv {
 public:
  resampling_conv(index_t in, index_t out, index_t kernel, resample how, const std::string& name, std::uint64_t seed);
  index_t output_size(index_t in) const noexcept;
  index_t out_channels() const noexcept;
  void forward(const tensor& src, tensor& dst, workspace& ws) const;
  // diff_src is overwritten unless null.
  void backward(const tensor& src, const tensor& diff_dst, tensor* diff_src, workspace& ws);
  std::vector<parameter*> parameters();
  double macs(index_t n, index_t h, index_t w) const noexcept;

 private:
  std::unique_ptr<nn::conv> conv_;
  std::unique_ptr<nn::deconv> deconv_;
};

class residual_block {
 public:
  // What one pass keeps for backward (and reuses between passes). backward's own gradients live in ws's
  // composite scratch slots 6-10, shared by every block (a network's blocks run backward one at a time).
  struct activations {
    tensor t1, u1, t2, u2, ts, us, out;
  };

  residual_block(index_t in, index_t out, resample how, const std::string& name, std::uint64_t seed);
  // Values parameters() holds, from the widths alone (what a model file is checked against before
  // anything is allocated).
  static double parameter_count(index_t in, index_t out, resample how);

  index_t output_size(index_t in) const noexcept { return first_.output_size(in); }
  index_t out_channels() const noexcept { return first_.out_channels(); }

  // a.out = block(x). training: batch statistics (and running-statistics updates), every intermediate
  // kept in `a` for backward. inference: running statistics; only a.out is written (the intermediates
  // live in ws's composite scratch slots 3-5).
  void forward_training(const tensor& x, activations& a, workspace& ws);
  void forward_inference(const tensor& x, activations& a, workspace& ws) const;
  // Given d_out = dL/d a.out (clobbered): parameter gradients += dL/dθ; *d_x = dL/dx unless null.
  void backward(const tensor& x, activations& a, tensor& d_out, tensor* d_x, workspace& ws);

  std::vector<parameter*> trained();
  std::vector<parameter*> parameters();  // trained + running statistics
  double macs(index_t n, index_t h, index_t w) const noexcept;

 private:
  resampling_conv first_;
  nn::batch_norm bn1_;
  nn::conv second_;
  nn::batch_norm bn2_;
  std::unique_ptr<resampling_conv> shortcut_;
  std::unique_ptr<nn::batch_norm> shortcut_bn_;
};

// Resizes t to n x c x h x w in NHWC (no allocation when its capacity suffices).
inline void shape_nhwc(tensor& t, index_t n, index_t c, index_t h, index_t w) { t.resize({n, c, h, w}, layout::nhwc); }

}  // namespace detail
}  // namespace v0
}  // namespace flowad
