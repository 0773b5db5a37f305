// The interface every shape-preserving flow layer implements.
//
// Layers are public for tests, microbenchmarks and people building their own flows. They are a less
// stable tier than the detectors: documented, tested, but their signatures may change between minor
// versions.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "flowad/parameter.hpp"
#include "flowad/tensor.hpp"
#include "flowad/workspace.hpp"

namespace flowad {
inline namespace v0 {

// inference: compute only. training: also keep in the workspace what backward() needs.
enum class pass_mode { inference, training };

// An invertible map f on N x C x H x W float feature maps that keeps the shape.
//
// Conventions (oneDNN's argument names): src is the input x, dst the output z = f(x), diff_* are
// gradients of a scalar loss L. logdet[n] accumulates: forward *adds* log|det ∂f/∂x| of sample n.
// src, dst and gradients may have any strides (dense NHWC is the fast path) but must not overlap.
// Methods are const and thread-safe given one workspace per thread, except backward(), which
// writes parameter gradients.
class flow_layer {
 public:
  flow_layer() = default;
  flow_layer(const flow_layer&) : id_(detail::next_layer_id()) {}
  flow_layer& operator=(const flow_layer&) { return *this; }
  virtual ~flow_layer() = default;

  // Short type name ("permute", "actnorm", "invertible_1x1", "affine_coupling").
  virtual const char* kind() const noexcept = 0;
  virtual index_t channels() const noexcept = 0;

  // dst = f(src); logdet[n] += log|det J_f| of sample n (logdet.size() == src.n()).
  virtual void forward(const_view src, view dst, span<double> logdet, workspace& ws,
                       pass_mode mode = pass_mode::inference) const = 0;

  // src = f^-1(dst).
  virtual void inverse(const_view dst, view src, workspace& ws) const = 0;

  // Given diff_dst = dL/d dst and diff_logdet[n] = dL/d logdet[n], writes diff_src = dL/d src and adds
  // dL/dθ to the gradient of every parameter θ. Requires that the last forward() on ws ran in
  // training mode on this src (and produced this dst).
  virtual void backward(const_view src, const_view dst, const_view diff_dst, span<const double> diff_logdet,
                        view diff_src, workspace& ws) = 0;

  // Learnable parameters (empty for fixed layers).
  virtual std::vector<parameter*> parameters() { return {}; }
  std::vector<const parameter*> parameters() const {
    auto ps = const_cast<flow_layer*>(this)->parameters();
    return {ps.begin(), ps.end()};
  }

  // Multiply-accumulates of one forward pass on a sample of h x w (0 for data movement only).
  virtual double macs_per_sample(index_t /*h*/, index_t /*w*/) const noexcept { return 0.0; }

  // Drops cached oneDNN primitives (for cold-start benchmarks).
  virtual void clear_primitive_cache() {}

  // A process-unique id; workspaces key this layer's state by it.
  std::uint64_t id() const noexcept { return id_; }

 private:
  std::uint64_t id_ = detail::next_layer_id();
};

}  // namespace v0
}  // namespace flowad
