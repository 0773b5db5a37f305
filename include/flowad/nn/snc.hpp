// SNC, spatial neighbouring coding (FCL, Li & Hu, IEEE TIM 2024): each element of a feature map is encoded
// together with its k x k neighbourhood. RECONSTRUCTION: the paper's text is not available (its abstract
// is); this form is flowad's. Per channel c, a learned convex combination of the element and its
// neighbours:
//
//   code[n, c, p] = Σ_{q ∈ W(p)} a[c, q − p]·F[n, c, q] / Σ_{q ∈ W(p)} a[c, q − p],   a[c, ·] = softmax(logits[c, ·]),
//
// W(p) the k x k window of p clipped to the map (the weights renormalised over the cells inside it).
//
// Why convex: SNC is applied to teacher and student features alike and trained by the consistency loss
// between the codes. An unconstrained learnable encoding can collapse (a constant code makes any pair
// consistent, so the loss reaches 0 and the codes say nothing); a convex combination has no bias and
// leaves a constant map unchanged, so it cannot send every input to one constant, and it keeps the code
// of every cell within the range of its neighbourhood's features: it can only smooth, within k x k (a
// pattern periodic at the window's scale can still be averaged flat). tests/unit/test_snc.cpp trains
// both and shows the difference.
//
// "logits" [C, k·k] (named `name` + ".logits", offsets row-major) start at 0 (a uniform neighbourhood
// mean). forward() is const and thread-safe; backward() accumulates the logits' gradient. No heap
// allocation once a shape has been seen (the weights are derived per call into per-thread storage).
// Weights below e^-60 of a channel's largest are floored there, so that a clipped window always has a
// representable normaliser (a relative change of O(e^-60), for logit spreads above 60 only).
#pragma once

#include <string>
#include <vector>

#include "flowad/parameter.hpp"
#include "flowad/tensor.hpp"

namespace flowad {
inline namespace v0 {
namespace nn {

class snc {
 public:
  // Throws errc::invalid_argument unless channels > 0 and kernel is odd, in [1, 15].
  snc(index_t channels, index_t kernel, const std::string& name);

  index_t channels() const noexcept { return channels_; }
  index_t kernel() const noexcept { return kernel_; }
  parameter& logits() noexcept { return logits_; }
  const parameter& logits() const noexcept { return logits_; }
  std::vector<parameter*> parameters() { return {&logits_}; }

  // dst (n x C x h x w) = code(src (n x C x h x w)); dst must not overlap src.
  void forward(const float* src, float* dst, index_t n, index_t h, index_t w) const;
  // Given diff_dst: logits gradient += dL/dlogits; diff_src += dL/dsrc unless null (accumulates, so that
  // a feature map used raw and coded sums both gradients).
  void backward(const float* src, const float* diff_dst, float* diff_src, index_t n, index_t h, index_t w);

  double macs(index_t n, index_t h, index_t w) const noexcept;

 private:
  index_t channels_, kernel_;
  parameter logits_;
};

}  // namespace nn
}  // namespace v0
}  // namespace flowad
