// Learnable tensors.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "flowad/tensor.hpp"

namespace flowad {
inline namespace v0 {

namespace detail {
// A process-wide counter, so that (parameter address, stamp) never repeats.
inline std::uint64_t next_version_stamp() noexcept {
  static std::atomic<std::uint64_t> counter{0};
  return ++counter;
}
}  // namespace detail

// A learnable tensor and its gradient, both dense float in the layout its layer documents (OIHW for
// convolution weights). Whoever changes value() must call mark_updated(): layers keep derived copies
// (oneDNN's reordered weights, the 1x1 weight built from its LU factors) and rebuild them when the
// stamp changes, so they are rebuilt once per optimiser step, not once per image.
class parameter {
 public:
  parameter(std::string name, std::vector<index_t> dims) : name_(std::move(name)), dims_(std::move(dims)) {
    index_t count = 1;
    for (index_t d : dims_) {
      if (d < 0) throw error(errc::invalid_argument, "parameter " + name_ + " has a negative dimension");
      count *= d;
    }
    value_.assign(static_cast<std::size_t>(count), 0.0f);
    stamp_ = detail::next_version_stamp();
  }

  const std::string& name() const noexcept { return name_; }
  const std::vector<index_t>& dims() const noexcept { return dims_; }
  std::size_t size() const noexcept { return value_.size(); }

  float* data() noexcept { return value_.data(); }
  const float* data() const noexcept { return value_.data(); }
  // The gradient is allocated (as zeros) on first access, so that a model that only scores holds its
  // values alone. Not thread-safe on that first access: gradients belong to one training thread.
  float* grad() { return gradient_buffer().data(); }
  const float* grad() const { return gradient_buffer().data(); }
  span<float> values() noexcept { return {value_.data(), value_.size()}; }
  span<const float> values() const noexcept { return {value_.data(), value_.size()}; }
  span<float> gradients() { return {gradient_buffer().data(), value_.size()}; }
  span<const float> gradients() const { return {gradient_buffer().data(), value_.size()}; }
  // Whether the gradient has been allocated (by training, or any access to it).
  bool has_gradient() const noexcept { return grad_.size() == value_.size(); }

  // Changes with every mark_updated(); unique across all parameters of the process.
  std::uint64_t stamp() const noexcept { return stamp_; }
  void mark_updated() noexcept { stamp_ = detail::next_version_stamp(); }
  void zero_grad() noexcept { std::fill(grad_.begin(), grad_.end(), 0.0f); }  // unallocated: zero already

 private:
  aligned_vector<float>& gradient_buffer() const {
    if (grad_.size() != value_.size()) grad_.assign(value_.size(), 0.0f);
    return grad_;
  }

  std::string name_;
  std::vector<index_t> dims_;
  aligned_vector<float> value_;
  mutable aligned_vector<float> grad_;  // empty until first access
  std::uint64_t stamp_ = 0;
};

}  // namespace v0
}  // namespace flowad
