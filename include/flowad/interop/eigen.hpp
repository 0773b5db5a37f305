// Eigen <-> flowad, header-only (link flowad::eigen: find_package(flowad COMPONENTS eigen)).
//
//   Eigen::MatrixXf f(n, c);                             // a feature vector per image, either storage order
//   const_view v = flowad::as_const_view(f);             // N x C x 1 x 1 over f's memory; no copy
//   Eigen::MatrixXf map = flowad::to_eigen(s.maps, i);   // sample i's H x W anomaly map, copied
//   Eigen::VectorXd image = flowad::to_eigen(s.image);   // image scores, copied
//
// With Eigen's unsupported Tensor module (Debian's libeigen3-dev has it), Eigen::Tensor<float, 4> and
// Eigen::TensorMap of one are viewed too, with axes (N, C, H, W) or (N, H, W, C).
//
// as_* never copies: the view points at the object's memory and is valid while it is. Expressions
// without memory of their own (a * b, m.transpose() of a temporary) are refused at compile time:
// assign them to a matrix first.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <string>
#include <type_traits>
#if __has_include(<unsupported/Eigen/CXX11/Tensor>)
#include <unsupported/Eigen/CXX11/Tensor>
#define FLOWAD_INTEROP_EIGEN_TENSOR 1
#endif

#include "flowad/error.hpp"
#include "flowad/tensor.hpp"

namespace flowad {
inline namespace v0 {
namespace detail {

// Deduced from a pointer so that non-Eigen types never instantiate Eigen's base templates.
template <class D>
std::true_type eigen_dense_test(const Eigen::DenseBase<D>*);
std::false_type eigen_dense_test(...);
template <class D>
std::true_type eigen_plain_test(const Eigen::PlainObjectBase<D>*);
std::false_type eigen_plain_test(...);

template <class M>
inline constexpr bool is_eigen_dense_v = decltype(eigen_dense_test(std::declval<std::decay_t<M>*>()))::value;

// Says at compile time why an object cannot be viewed; the callers skip their body when it cannot, so
// that the message is the only error.
template <class M>
constexpr bool check_eigen_dense_source() {
  using D = std::decay_t<M>;
  constexpr bool is_float = std::is_same_v<typename D::Scalar, float>;
  constexpr bool has_memory = (D::Flags & Eigen::DirectAccessBit) != 0;
  constexpr bool dangles = std::is_rvalue_reference_v<M&&> && decltype(eigen_plain_test(std::declval<D*>()))::value;
  static_assert(is_float, "flowad views hold float elements");
  static_assert(has_memory, "an Eigen expression has no memory to view: assign it to an Eigen::MatrixXf first");
  static_assert(!dangles, "a view of a temporary Eigen matrix would dangle: keep the matrix in a variable");
  return is_float && has_memory && !dangles;
}

#ifdef FLOWAD_INTEROP_EIGEN_TENSOR
template <class D>
struct eigen_tensor_traits {
  static constexpr bool value = false;
};
template <class S, int Rank, int Options, class Index>
struct eigen_tensor_traits<Eigen::Tensor<S, Rank, Options, Index>> {
  static constexpr bool value = true;
  static constexpr bool owns_memory = true;
  static constexpr int rank = Rank;
  static constexpr bool row_major = (Options & Eigen::RowMajor) != 0;
  using scalar = S;
};
template <class Plain, int Options, template <class> class MakePointer>
struct eigen_tensor_traits<Eigen::TensorMap<Plain, Options, MakePointer>>
    : eigen_tensor_traits<std::remove_const_t<Plain>> {
  static constexpr bool owns_memory = false;
};

template <class T>
inline constexpr bool is_eigen_tensor_v = eigen_tensor_traits<std::decay_t<T>>::value;

template <class T>
constexpr bool check_eigen_tensor_source() {
  using traits = eigen_tensor_traits<std::decay_t<T>>;
  constexpr bool is_float = std::is_same_v<typename traits::scalar, float>;
  constexpr bool dangles = std::is_rvalue_reference_v<T&&> && traits::owns_memory;
  static_assert(is_float, "flowad views hold float elements");
  static_assert(traits::rank == 4, "flowad views a 4-D Eigen::Tensor: (N, C, H, W) or (N, H, W, C)");
  static_assert(!dangles, "a view of a temporary Eigen::Tensor would dangle: keep the tensor in a variable");
  return is_float && traits::rank == 4 && !dangles;
}

// Shape and strides of a 4-D Eigen tensor in flowad's logical order (n, c, h, w).
template <class T>
void eigen_tensor_geometry(const T& t, layout axes, shape4& shape, strides4& strides) {
  index_t dim[4], stride[4];
  for (int i = 0; i < 4; ++i) dim[i] = static_cast<index_t>(t.dimension(i));
  if (eigen_tensor_traits<T>::row_major) {
    stride[3] = 1;
    for (int i = 2; i >= 0; --i) stride[i] = stride[i + 1] * dim[i + 1];
  } else {
    stride[0] = 1;
    for (int i = 1; i < 4; ++i) stride[i] = stride[i - 1] * dim[i - 1];
  }
  if (axes == layout::nchw) {
    shape = {dim[0], dim[1], dim[2], dim[3]};
    strides = {stride[0], stride[1], stride[2], stride[3]};
  } else {
    shape = {dim[0], dim[3], dim[1], dim[2]};
    strides = {stride[0], stride[3], stride[1], stride[2]};
  }
}
#endif

inline void check_map_sample(const const_view& maps, index_t sample) {
  if (maps.c() != 1)
    throw error(errc::shape_mismatch, "expected anomaly maps of shape Nx1xHxW, got " + maps.shape().str());
  if (sample < 0 || sample >= maps.n())
    throw error(errc::invalid_argument,
                "sample " + std::to_string(sample) + " is outside maps of shape " + maps.shape().str());
}

}  // namespace detail

// A float matrix (Eigen::Matrix, Eigen::Map, a block of either; row- or column-major) of N rows and C
// columns as an N x C x 1 x 1 view of the same memory with the matrix's strides: per-image feature
// vectors, one row each.
template <class M, std::enable_if_t<detail::is_eigen_dense_v<M>, int> = 0>
const_view as_const_view(M&& matrix) {
  if constexpr (detail::check_eigen_dense_source<M>()) {
    const float* data = matrix.data();
    return {data, {matrix.rows(), matrix.cols(), 1, 1}, {matrix.rowStride(), matrix.colStride(), 1, 1}};
  } else {
    return {};
  }
}

// The same, writable: for results written straight into a matrix the caller owns.
template <class M, std::enable_if_t<detail::is_eigen_dense_v<M>, int> = 0>
view as_view(M&& matrix) {
  if constexpr (detail::check_eigen_dense_source<M>()) {
    constexpr bool writable = std::is_same_v<decltype(matrix.data()), float*>;
    static_assert(writable, "as_view needs a writable matrix; use as_const_view");
    if constexpr (writable)
      return {matrix.data(), {matrix.rows(), matrix.cols(), 1, 1}, {matrix.rowStride(), matrix.colStride(), 1, 1}};
  }
  return {};
}

#ifdef FLOWAD_INTEROP_EIGEN_TENSOR
// A 4-D float Eigen::Tensor or TensorMap with axes (N, C, H, W), or (N, H, W, C) with
// axes = layout::nhwc, as a view of the same memory; either storage order.
template <class T, std::enable_if_t<detail::is_eigen_tensor_v<T>, int> = 0>
const_view as_const_view(T&& t, layout axes = layout::nchw) {
  if constexpr (detail::check_eigen_tensor_source<T>()) {
    shape4 shape;
    strides4 strides;
    detail::eigen_tensor_geometry(t, axes, shape, strides);
    const float* data = t.data();
    return {data, shape, strides};
  } else {
    return {};
  }
}

template <class T, std::enable_if_t<detail::is_eigen_tensor_v<T>, int> = 0>
view as_view(T&& t, layout axes = layout::nchw) {
  if constexpr (detail::check_eigen_tensor_source<T>()) {
    constexpr bool writable = std::is_same_v<decltype(t.data()), float*>;
    static_assert(writable, "as_view needs a writable tensor; use as_const_view");
    if constexpr (writable) {
      shape4 shape;
      strides4 strides;
      detail::eigen_tensor_geometry(t, axes, shape, strides);
      return {t.data(), shape, strides};
    }
  }
  return {};
}
#endif

// Row-major H x W map with the view's strides, for as_eigen.
using eigen_map_view = Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>,
                                  Eigen::Unaligned, Eigen::Stride<Eigen::Dynamic, Eigen::Dynamic>>;

// Sample `sample`'s H x W map of N x 1 x H x W anomaly maps (scores.maps) as an Eigen::Map of the same
// memory, no copy. Throws errc::shape_mismatch unless the maps have one channel.
inline eigen_map_view as_eigen(const_view maps, index_t sample) {
  detail::check_map_sample(maps, sample);
  return {maps.data() + sample * maps.strides().n, maps.h(), maps.w(),
          Eigen::Stride<Eigen::Dynamic, Eigen::Dynamic>(maps.strides().h, maps.strides().w)};
}

// A temporary tensor would be destroyed under the map.
void as_eigen(tensor&& maps, index_t sample) = delete;

// The same, copied into a matrix (H rows, W columns).
inline Eigen::MatrixXf to_eigen(const_view maps, index_t sample) {
  return as_eigen(maps, sample);
}

// Image scores (scores.image), copied.
inline Eigen::VectorXd to_eigen(span<const double> image_scores) {
  Eigen::VectorXd out(static_cast<Eigen::Index>(image_scores.size()));
  std::copy(image_scores.begin(), image_scores.end(), out.data());
  return out;
}

}  // namespace v0
}  // namespace flowad
