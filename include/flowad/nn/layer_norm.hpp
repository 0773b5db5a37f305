// PyTorch's nn.LayerNorm([C, H, W], eps, elementwise_affine=True) on N x C x H x W feature maps: FastFlow's
// trainable input normalisation (ALGORITHMS.md §4; gathierry/FastFlow#3) and the teacher-student models'.
//
//   y(n, c, h, w) = (x(n, c, h, w) − μ_n) / sqrt(σ²_n + eps) · weight(c, h, w) + bias(c, h, w),
//
// with μ_n and σ²_n (biased) over the C·H·W values of sample n, computed in double. weight starts at 1,
// bias at 0; both are stored C x H x W, as PyTorch stores them.
//
// A trainable layer, not a flow: no log-determinant, no inverse. It follows the flow layers' conventions
// (oneDNN's argument names, any strides with dense NHWC and dense NCHW as the fast paths, other strides
// copied; const and thread-safe given one workspace per thread; no heap allocation once a shape has been
// seen; results independent of the thread count).
#pragma once

#include <cstdint>
#include <vector>

#include "flowad/layers/flow_layer.hpp"
#include "flowad/parameter.hpp"
#include "flowad/tensor.hpp"
#include "flowad/workspace.hpp"

namespace flowad {
inline namespace v0 {

class layer_norm {
 public:
  static constexpr double default_epsilon = 1e-5;  // PyTorch's

  // Normalises samples of channels x height x width. Throws errc::invalid_argument unless the extents are
  // positive and epsilon is positive and finite.
  layer_norm(index_t channels, index_t height, index_t width, double epsilon = default_epsilon);

  const char* kind() const noexcept { return "layer_norm"; }
  index_t channels() const noexcept { return channels_; }
  index_t height() const noexcept { return height_; }
  index_t width() const noexcept { return width_; }
  double epsilon() const noexcept { return epsilon_; }

  // "weight" (γ) and "bias" (β), each [C, H, W].
  parameter& weight() noexcept { return weight_; }
  parameter& bias() noexcept { return bias_; }
  const parameter& weight() const noexcept { return weight_; }
  const parameter& bias() const noexcept { return bias_; }
  std::vector<parameter*> parameters() { return {&weight_, &bias_}; }
  std::vector<const parameter*> parameters() const { return {&weight_, &bias_}; }

  // dst = layer_norm(src). src is N x C x H x W with the layer's C, H, W (else errc::shape_mismatch),
  // N > 0; dst has src's shape and does not overlap it. Training mode also keeps each sample's mean and
  // 1/σ in ws for backward().
  void forward(const_view src, view dst, workspace& ws, pass_mode mode = pass_mode::inference) const;

  // Given diff_dst = dL/d dst, *adds* dL/dweight and dL/dbias to the parameters' gradients and, unless
  // diff_src is an empty view, writes diff_src = dL/d src. Needs the last forward() on ws to have run in
  // training mode on this src. Without diff_src it reads src and diff_dst once (the case of frozen input
  // features); with it, twice, and writes diff_src.
  void backward(const_view src, const_view diff_dst, view diff_src, workspace& ws);

  // A process-unique id; workspaces key this layer's state by it (a copy gets a new one).
  std::uint64_t id() const noexcept { return id_.value; }

 private:
  struct state;
  struct unique_id {
    std::uint64_t value = detail::next_layer_id();
    unique_id() = default;
    unique_id(const unique_id&) noexcept {}
    unique_id& operator=(const unique_id&) noexcept { return *this; }
  };

  void check_input(const const_view& x, const char* name) const;

  index_t channels_, height_, width_;
  double epsilon_;
  parameter weight_;
  parameter bias_;
  unique_id id_;
};

}  // namespace v0
}  // namespace flowad
