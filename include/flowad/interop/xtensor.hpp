// xtensor <-> flowad, header-only (link flowad::xtensor: find_package(flowad COMPONENTS xtensor)).
//
//   const_view v = flowad::as_const_view(a);                    // a: N x C x H x W, any strides; no copy
//   const_view u = flowad::as_const_view(b, flowad::layout::nhwc);  // b's axes are N, H, W, C
//   xt::xtensor<float, 4> m = flowad::to_xtensor(s.maps);       // a copy
//   auto x = flowad::as_xtensor(t);                             // an xt::adapt view of t's memory
//
// as_* never copies: the view points at the array's memory and is valid while the array is. Arrays
// must hold their elements in memory (xt::xarray, xt::xtensor, xt::adapt, strided xt::view of those);
// lazy expressions are refused at compile time because a view cannot keep their result alive: assign
// them to an xt::xtensor<float, 4> first (flowad never keeps lazy expressions).
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <string>
#include <type_traits>
#include <utility>
#include <xtensor/xadapt.hpp>
#include <xtensor/xarray.hpp>
#include <xtensor/xbuilder.hpp>
#include <xtensor/xtensor.hpp>

#include "flowad/error.hpp"
#include "flowad/tensor.hpp"

namespace flowad {
inline namespace v0 {
namespace detail {

template <class E>
inline constexpr bool is_xexpression_v = xt::is_xexpression<std::decay_t<E>>::value;

template <class E, class = void>
struct has_xt_memory : std::false_type {};
template <class E>
struct has_xt_memory<E, std::void_t<decltype(std::declval<E&>().data()), decltype(std::declval<E&>().data_offset()),
                                    decltype(std::declval<E&>().strides())>> : std::true_type {};

// Containers that own their elements: a view of a temporary one would dangle.
template <class E>
struct xt_owns_memory : std::false_type {};
template <class EC, xt::layout_type L, class SC, class Tag>
struct xt_owns_memory<xt::xarray_container<EC, L, SC, Tag>> : std::true_type {};
template <class EC, std::size_t N, xt::layout_type L, class Tag>
struct xt_owns_memory<xt::xtensor_container<EC, N, L, Tag>> : std::true_type {};

template <class E>
std::string xt_shape_str(const E& e) {
  std::string s = "(";
  for (std::size_t i = 0; i < e.dimension(); ++i) s += (i ? ", " : "") + std::to_string(e.shape()[i]);
  return s + ")";
}

// Shape and strides of a 4-D array in flowad's logical order (n, c, h, w).
template <class E>
std::pair<shape4, strides4> xt_geometry(const E& e, layout axes) {
  if (e.dimension() != 4)
    throw error(errc::shape_mismatch, std::string("expected a 4-D array with axes ") +
                                          (axes == layout::nchw ? "(N, C, H, W)" : "(N, H, W, C)") + ", got shape " +
                                          xt_shape_str(e));
  const auto& sh = e.shape();
  const auto& st = e.strides();
  auto dim = [&](std::size_t i) { return static_cast<index_t>(sh[i]); };
  auto stride = [&](std::size_t i) { return static_cast<index_t>(st[i]); };
  if (axes == layout::nchw) return {{dim(0), dim(1), dim(2), dim(3)}, {stride(0), stride(1), stride(2), stride(3)}};
  return {{dim(0), dim(3), dim(1), dim(2)}, {stride(0), stride(3), stride(1), stride(2)}};
}

// Says at compile time why an expression cannot be viewed; the callers skip their body when it cannot,
// so that the message is the only error.
template <class E>
constexpr bool check_xt_source() {
  using D = std::decay_t<E>;
  constexpr bool is_float = std::is_same_v<typename D::value_type, float>;
  constexpr bool has_memory = has_xt_memory<D>::value;
  constexpr bool dangles = std::is_rvalue_reference_v<E&&> && xt_owns_memory<D>::value;
  static_assert(is_float, "flowad views hold float elements");
  static_assert(has_memory,
                "a lazy xtensor expression has no memory to view: assign it to an xt::xtensor<float, 4> first");
  static_assert(!dangles, "a view of a temporary xt::xarray / xt::xtensor would dangle: keep the array in a variable");
  return is_float && has_memory && !dangles;
}

// A shape4 as an xtensor shape with axes (N, C, H, W) or (N, H, W, C).
inline std::array<std::size_t, 4> xt_shape(const shape4& s, layout axes) {
  auto u = [](index_t x) { return static_cast<std::size_t>(x); };
  return axes == layout::nchw ? std::array<std::size_t, 4>{u(s.n), u(s.c), u(s.h), u(s.w)}
                              : std::array<std::size_t, 4>{u(s.n), u(s.h), u(s.w), u(s.c)};
}

template <class T>
auto as_xtensor_impl(tensor_view<T> v, layout axes) {
  const shape4& s = v.shape();
  const strides4& st = v.strides();
  for (index_t x : {st.n, st.c, st.h, st.w})
    if (x < 0) throw error(errc::invalid_argument, "xt::adapt needs non-negative strides; view of shape " + s.str());
  const std::array<std::ptrdiff_t, 4> strides = axes == layout::nchw
                                                    ? std::array<std::ptrdiff_t, 4>{st.n, st.c, st.h, st.w}
                                                    : std::array<std::ptrdiff_t, 4>{st.n, st.h, st.w, st.c};
  // xt::adapt takes the element count, not the extent a strided view spans: it sizes its storage to
  // the shape, and indexing goes through the strides.
  return xt::adapt(v.data(), static_cast<std::size_t>(v.numel()), xt::no_ownership(), xt_shape(s, axes), strides);
}

}  // namespace detail

// A 4-D float array with axes (N, C, H, W), or (N, H, W, C) with axes = layout::nhwc, as a view of the
// same memory with the array's strides. Throws errc::shape_mismatch if the array is not 4-D.
template <class E, std::enable_if_t<detail::is_xexpression_v<E>, int> = 0>
const_view as_const_view(E&& array, layout axes = layout::nchw) {
  if constexpr (detail::check_xt_source<E>()) {
    const auto [shape, strides] = detail::xt_geometry(array, axes);
    const float* data = array.data() + array.data_offset();
    return {data, shape, strides};
  } else {
    return {};
  }
}

// The same, writable: for results written straight into an array the caller owns.
template <class E, std::enable_if_t<detail::is_xexpression_v<E>, int> = 0>
view as_view(E&& array, layout axes = layout::nchw) {
  if constexpr (detail::check_xt_source<E>()) {
    constexpr bool writable = std::is_same_v<decltype(array.data()), float*>;
    static_assert(writable, "as_view needs a writable array; use as_const_view");
    if constexpr (writable) {
      const auto [shape, strides] = detail::xt_geometry(array, axes);
      return {array.data() + array.data_offset(), shape, strides};
    }
  }
  return {};
}

// A copy of a view (an owned tensor, scores.maps) as a row-major array with axes (N, C, H, W), or
// (N, H, W, C) with axes = layout::nhwc.
inline xt::xtensor<float, 4> to_xtensor(const_view v, layout axes = layout::nchw) {
  xt::xtensor<float, 4> out = xt::empty<float>(detail::xt_shape(v.shape(), axes));
  copy(v, {out.data(), v.shape(), axes});
  return out;
}

// Image scores (scores.image) as a 1-D array, copied.
inline xt::xtensor<double, 1> to_xtensor(span<const double> image_scores) {
  xt::xtensor<double, 1> out = xt::empty<double>(std::array<std::size_t, 1>{image_scores.size()});
  std::copy(image_scores.begin(), image_scores.end(), out.begin());
  return out;
}

// A view (or owned tensor) as an xt::adapt array of the same memory, no copy: the result is valid while
// the tensor is and must not outlive it. Axes (N, C, H, W), or (N, H, W, C) with axes = layout::nhwc,
// whatever the tensor's memory layout.
inline auto as_xtensor(view v, layout axes = layout::nchw) {
  return detail::as_xtensor_impl(v, axes);
}
inline auto as_xtensor(const_view v, layout axes = layout::nchw) {
  return detail::as_xtensor_impl(v, axes);
}
inline auto as_xtensor(tensor& t, layout axes = layout::nchw) {
  return as_xtensor(t.view(), axes);
}
inline auto as_xtensor(const tensor& t, layout axes = layout::nchw) {
  return as_xtensor(t.view(), axes);
}
// A temporary tensor would be destroyed under the array.
void as_xtensor(tensor&& t, layout axes = layout::nchw) = delete;

}  // namespace v0
}  // namespace flowad
