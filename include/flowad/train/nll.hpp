// The training objective of flow detectors: the negative log-likelihood of per-scale flows under a
// standard normal latent,
//
//   L = mean_n ( 0.5·Σ_s ‖z_{s,n}‖² − Σ_s log|det J_s|(n) ) / D,
//
// with D = Σ_s C_s·H_s·W_s (per_dimension: CS-Flow, MS-Flow) or D = 1 (per_sample: FastFlow), so that
// dL/dz = z / (N·D) and dL/dlog|det J|(n) = −1 / (N·D).
#pragma once

#include <vector>

#include "flowad/layers/flow_layer.hpp"

namespace flowad {
inline namespace v0 {

enum class nll_normalization { per_dimension, per_sample };

class nll_objective {
 public:
  // One flow per scale (not owned; must outlive this object).
  explicit nll_objective(std::vector<flow_layer*> flows,
                         nll_normalization normalization = nll_normalization::per_dimension);

  // Forward pass in training mode on a batch (one view per scale, dense NHWC is fastest) and the loss.
  // When the loss is finite, also the backward pass, which adds dL/dθ to every parameter's gradient;
  // otherwise gradients are left alone. Buffers are sized on the first call per shape.
  double forward_backward(const std::vector<const_view>& batch, workspace& ws);

  // The latents of the last forward pass, one dense NHWC tensor per scale.
  const std::vector<tensor>& latents() const noexcept { return z_; }
  // dL/d(input) of each flow after the last finite forward_backward (for layers in front of the flows).
  const std::vector<tensor>& input_gradients() const noexcept { return diff_in_; }

 private:
  std::vector<flow_layer*> flows_;
  nll_normalization normalization_;
  std::vector<tensor> z_, diff_z_, diff_in_;
  std::vector<double> logdet_, diff_logdet_, squares_;
};

}  // namespace v0
}  // namespace flowad
