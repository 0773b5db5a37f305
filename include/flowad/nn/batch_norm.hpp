// Batch normalisation, PyTorch's BatchNorm2d(channels, eps = 1e-5, momentum = 0.1, affine): on dense
// NHWC buffers, per channel over N·H·W values.
//
//   training:  y = (x − μ_B) / sqrt(σ²_B + eps) · γ + β   with the batch's mean and biased variance;
//              running_mean ← (1 − m)·running_mean + m·μ_B, running_var ← (1 − m)·running_var + m·σ²_B·K/(K − 1)
//              (K = N·H·W, PyTorch's unbiased running variance);
//   inference: the same with the running statistics.
//
// γ ("weight", starts at 1) and β ("bias", starts at 0) are trained; the running statistics ("running_mean",
// starts at 0; "running_var", starts at 1) are parameters too, so that model files store them and a
// rollback restores them, but no optimiser should update them (leave them out of training_problem::trained).
//
// With `relu` the layer is BatchNorm2d followed by ReLU (fused: one pass over memory each way).
// forward_inference() is const and thread-safe; forward_training() keeps the batch statistics in the
// layer for backward() (training is single-threaded). No heap allocation once a shape has been seen.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "flowad/parameter.hpp"
#include "flowad/tensor.hpp"
#include "flowad/workspace.hpp"

namespace flowad {
inline namespace v0 {
namespace nn {

class batch_norm {
 public:
  static constexpr double default_epsilon = 1e-5;
  static constexpr double default_momentum = 0.1;

  batch_norm(index_t channels, bool relu, const std::string& name, double epsilon = default_epsilon,
             double momentum = default_momentum);
  ~batch_norm();
  batch_norm(batch_norm&&) noexcept;
  batch_norm& operator=(batch_norm&&) noexcept;

  index_t channels() const noexcept { return channels_; }
  bool relu() const noexcept { return relu_; }

  parameter& weight() noexcept { return weight_; }
  parameter& bias() noexcept { return bias_; }
  parameter& running_mean() noexcept { return running_mean_; }
  parameter& running_var() noexcept { return running_var_; }
  // γ and β: what an optimiser updates.
  std::vector<parameter*> trained() { return {&weight_, &bias_}; }
  // γ, β and the running statistics: what a model file stores.
  std::vector<parameter*> parameters() { return {&weight_, &bias_, &running_mean_, &running_var_}; }

  // dst = bn(src), src and dst n x C x h x w; cells = n·h·w. forward_inference may write dst over src,
  // forward_training may not (backward reads src).
  void forward_training(const float* src, float* dst, index_t cells, workspace& ws);
  void forward_inference(const float* src, float* dst, index_t cells, workspace& ws) const;
  // After forward_training on this src: γ, β gradients += dL/dθ; diff_src = dL/d src (may equal diff_dst).
  // dst is forward_training's output (needed with relu).
  void backward(const float* src, const float* dst, const float* diff_dst, float* diff_src, index_t cells, workspace& ws);

 private:
  struct impl;
  index_t channels_;
  bool relu_;
  double epsilon_, momentum_;
  parameter weight_, bias_, running_mean_, running_var_;
  std::unique_ptr<impl> impl_;
};

}  // namespace nn
}  // namespace v0
}  // namespace flowad
