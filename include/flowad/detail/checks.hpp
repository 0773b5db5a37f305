// Precondition checks shared by the public entry points. Each throws flowad::error with a message
// that names the argument and, for shapes, both shapes.
#pragma once

#include <string>

#include "flowad/error.hpp"
#include "flowad/tensor.hpp"

namespace flowad {
inline namespace v0 {
namespace detail {

// Elementwise work below this many values runs on the calling thread: an OpenMP fork/join costs a few
// microseconds on a quiet machine and milliseconds on an oversubscribed one.
inline constexpr index_t parallel_threshold = index_t{1} << 15;

inline void require(bool condition, errc code, const std::string& message) {
  if (!condition) throw error(code, message);
}

inline void require_nonempty(const const_view& v, const char* what) {
  if (v.empty()) throw error(errc::empty_input, std::string(what) + " is empty (shape " + v.shape().str() + ")");
}

inline void require_same_shape(const const_view& a, const char* a_name, const const_view& b, const char* b_name) {
  if (a.shape() != b.shape())
    throw error(errc::shape_mismatch, std::string(a_name) + " has shape " + a.shape().str() + " but " + b_name +
                                          " has shape " + b.shape().str());
}

inline void require_channels(const const_view& v, const char* what, index_t expected) {
  if (v.c() != expected)
    throw error(errc::shape_mismatch, std::string(what) + " has " + std::to_string(v.c()) + " channels (shape " +
                                          v.shape().str() + ") but the layer expects " + std::to_string(expected));
}

inline void require_size(std::size_t actual, std::size_t expected, const char* what) {
  if (actual != expected)
    throw error(errc::shape_mismatch, std::string(what) + " has " + std::to_string(actual) + " entries but " +
                                          std::to_string(expected) + " are needed");
}

// True when v holds no NaN/Inf (parallel scan).
bool all_finite(const const_view& v);
// Throws errc::non_finite naming the first NaN/Inf element of v, if any.
void require_finite(const const_view& v, const char* what);

// True when every value of v lies in [-bound, bound] (so none is NaN or Inf; parallel scan).
bool all_within(const const_view& v, float bound);
// Throws, naming the first offending element of v: errc::non_finite for NaN/Inf, errc::invalid_argument
// for a finite value beyond ±bound.
void require_within(const const_view& v, float bound, const char* what);

// True when two views share any memory (conservative: compares address ranges).
bool may_overlap(const const_view& a, const const_view& b) noexcept;

// A flow layer's input and output: `in` non-empty with `channels` channels, `out` of the same shape,
// the two not overlapping. `kind` names the layer in the message.
inline void require_layer_pair(const char* kind, index_t channels, const const_view& in, const char* in_name,
                               const const_view& out, const char* out_name) {
  require_nonempty(in, in_name);
  require_channels(in, in_name, channels);
  require_same_shape(in, in_name, out, out_name);
  if (may_overlap(in, out))
    throw error(errc::invalid_argument, std::string(kind) + ": " + in_name + " and " + out_name + " overlap");
}

// backward() of a layer that keeps state from a training forward: src/dst as a pair, the gradients of
// src's shape, one diff_logdet per sample, and a training-mode forward of this shape on the workspace.
inline void require_backward(const char* kind, index_t channels, const const_view& src, const const_view& dst,
                             const const_view& diff_dst, const const_view& diff_src, std::size_t diff_logdet_size,
                             bool trained, const shape4& trained_shape) {
  require_layer_pair(kind, channels, src, "src", dst, "dst");
  require_same_shape(src, "src", diff_dst, "diff_dst");
  require_same_shape(src, "src", diff_src, "diff_src");
  require_size(diff_logdet_size, static_cast<std::size_t>(src.n()), "diff_logdet");
  if (!trained || trained_shape != src.shape())
    throw error(errc::invalid_argument, std::string(kind) + "::backward needs a training-mode forward on this workspace "
                                        "with the same shape first (src " + src.shape().str() + ")");
}

}  // namespace detail
}  // namespace v0
}  // namespace flowad
