// Adam with PyTorch's semantics (torch.optim.Adam: L2 weight decay added to the gradient, bias
// correction), and gradient-norm clipping as torch.nn.utils.clip_grad_norm_.
#pragma once

#include <vector>

#include "flowad/parameter.hpp"

namespace flowad {
inline namespace v0 {

struct adam_options {
  float learning_rate = 2e-4f;
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float eps = 1e-4f;          // CS-Flow's choice; PyTorch's default is 1e-8
  float weight_decay = 1e-5f;
};

class adam {
 public:
  // Moment buffers are allocated here, once.
  adam(std::vector<parameter*> params, const adam_options& options);

  // One update with learning rate lr from the current gradients; marks every parameter updated.
  void step(float lr);
  // Forgets the moments (after a discarded step there is nothing to forget: moments change only in step()).
  void reset();

  const adam_options& options() const noexcept { return options_; }
  long steps() const noexcept { return steps_; }
  const std::vector<parameter*>& params() const noexcept { return params_; }

 private:
  std::vector<parameter*> params_;
  adam_options options_;
  std::vector<aligned_vector<float>> first_moment_, second_moment_;
  long steps_ = 0;
};

// Euclidean norm of all gradients together, accumulated in double (NaN/Inf if any gradient is).
double gradient_norm(const std::vector<parameter*>& params);

// Scales every gradient by `factor`.
void scale_gradients(const std::vector<parameter*>& params, float factor);

// clip_grad_norm_: if the norm exceeds max_norm, scales gradients by max_norm / (norm + 1e-6).
// Returns the norm before clipping. max_norm <= 0 disables clipping.
double clip_gradient_norm(const std::vector<parameter*>& params, double max_norm);

}  // namespace v0
}  // namespace flowad
