// Tensors: non-owning strided N x C x H x W views, and owned 64-byte-aligned tensors.
//
// Every view is indexed in the logical order (n, c, h, w) whatever its memory layout: an NHWC
// buffer is a view whose channel stride is 1. Layers accept any strides and run their fast
// path on dense NHWC, which is what oneDNN's best convolutions use on this class of machine.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <new>
#include <string>
#include <type_traits>
#include <vector>

#include "flowad/error.hpp"

namespace flowad {
inline namespace v0 {

using index_t = std::int64_t;

// Alignment of every buffer flowad allocates: one cache line, one AVX-512 register.
inline constexpr std::size_t buffer_alignment = 64;

// ------------------------------------------------------------------------------------------------
// A minimal contiguous range (std::span is C++20).
template <class T>
class span {
 public:
  constexpr span() noexcept = default;
  constexpr span(T* data, std::size_t size) noexcept : data_(data), size_(size) {}
  template <class Container,
            class = std::enable_if_t<std::is_convertible_v<
                decltype(std::declval<Container&>().data()), T*>>>
  constexpr span(Container& c) noexcept : data_(c.data()), size_(c.size()) {}  // NOLINT

  constexpr T* data() const noexcept { return data_; }
  constexpr std::size_t size() const noexcept { return size_; }
  constexpr bool empty() const noexcept { return size_ == 0; }
  constexpr T& operator[](std::size_t i) const noexcept { return data_[i]; }
  constexpr T* begin() const noexcept { return data_; }
  constexpr T* end() const noexcept { return data_ + size_; }

 private:
  T* data_ = nullptr;
  std::size_t size_ = 0;
};

// ------------------------------------------------------------------------------------------------
struct shape4 {
  index_t n = 0;
  index_t c = 0;
  index_t h = 0;
  index_t w = 0;

  constexpr index_t numel() const noexcept { return n * c * h * w; }
  constexpr index_t pixels() const noexcept { return n * h * w; }  // spatial positions in the batch
  constexpr bool empty() const noexcept { return numel() == 0; }
  std::string str() const {
    return std::to_string(n) + "x" + std::to_string(c) + "x" + std::to_string(h) + "x" +
           std::to_string(w);
  }
  friend constexpr bool operator==(const shape4& a, const shape4& b) noexcept {
    return a.n == b.n && a.c == b.c && a.h == b.h && a.w == b.w;
  }
  friend constexpr bool operator!=(const shape4& a, const shape4& b) noexcept { return !(a == b); }
};

// Strides in elements, in the logical order (n, c, h, w).
struct strides4 {
  index_t n = 0;
  index_t c = 0;
  index_t h = 0;
  index_t w = 0;
};

enum class layout { nchw, nhwc };

constexpr strides4 dense_strides(const shape4& s, layout l) noexcept {
  return l == layout::nchw ? strides4{s.c * s.h * s.w, s.h * s.w, s.w, 1}
                           : strides4{s.h * s.w * s.c, 1, s.w * s.c, s.c};
}

// ------------------------------------------------------------------------------------------------
// A non-owning view of N x C x H x W elements. T is float or const float.
template <class T>
class tensor_view {
 public:
  using value_type = std::remove_const_t<T>;

  constexpr tensor_view() noexcept = default;
  constexpr tensor_view(T* data, shape4 shape, strides4 strides) noexcept
      : data_(data), shape_(shape), strides_(strides) {}
  constexpr tensor_view(T* data, shape4 shape, layout l = layout::nchw) noexcept
      : data_(data), shape_(shape), strides_(dense_strides(shape, l)) {}

  // float view -> const float view.
  template <class U, class = std::enable_if_t<std::is_same_v<const U, T> && !std::is_same_v<U, T>>>
  constexpr tensor_view(const tensor_view<U>& other) noexcept  // NOLINT(implicit)
      : data_(other.data()), shape_(other.shape()), strides_(other.strides()) {}

  constexpr T* data() const noexcept { return data_; }
  constexpr const shape4& shape() const noexcept { return shape_; }
  constexpr const strides4& strides() const noexcept { return strides_; }
  constexpr index_t n() const noexcept { return shape_.n; }
  constexpr index_t c() const noexcept { return shape_.c; }
  constexpr index_t h() const noexcept { return shape_.h; }
  constexpr index_t w() const noexcept { return shape_.w; }
  constexpr index_t numel() const noexcept { return shape_.numel(); }
  constexpr bool empty() const noexcept { return shape_.empty(); }

  constexpr index_t offset(index_t n, index_t c, index_t h, index_t w) const noexcept {
    return n * strides_.n + c * strides_.c + h * strides_.h + w * strides_.w;
  }
  constexpr T& operator()(index_t n, index_t c, index_t h, index_t w) const noexcept {
    return data_[offset(n, c, h, w)];
  }

  // True when the view covers exactly one dense buffer in layout l (size-1 dims may have any stride).
  constexpr bool is_dense(layout l) const noexcept {
    const strides4 d = dense_strides(shape_, l);
    return (shape_.n <= 1 || strides_.n == d.n) && (shape_.c <= 1 || strides_.c == d.c) &&
           (shape_.h <= 1 || strides_.h == d.h) && (shape_.w <= 1 || strides_.w == d.w);
  }

  // Channels [first, first + count).
  tensor_view channels(index_t first, index_t count) const {
    if (first < 0 || count < 0 || first + count > shape_.c)
      throw error(errc::invalid_argument, "channel range [" + std::to_string(first) + ", " +
                                              std::to_string(first + count) +
                                              ") is outside a tensor of shape " + shape_.str());
    return {data_ + first * strides_.c, {shape_.n, count, shape_.h, shape_.w}, strides_};
  }
  // Samples [first, first + count).
  tensor_view batch(index_t first, index_t count) const {
    if (first < 0 || count < 0 || first + count > shape_.n)
      throw error(errc::invalid_argument, "sample range [" + std::to_string(first) + ", " +
                                              std::to_string(first + count) +
                                              ") is outside a tensor of shape " + shape_.str());
    return {data_ + first * strides_.n, {count, shape_.c, shape_.h, shape_.w}, strides_};
  }

 private:
  T* data_ = nullptr;
  shape4 shape_{};
  strides4 strides_{};
};

using view = tensor_view<float>;
using const_view = tensor_view<const float>;

// ------------------------------------------------------------------------------------------------
// Aligned storage.
namespace detail {
// Buffers of at least this size are aligned to 2 MiB and advised to use transparent huge pages: first
// touch of fresh 4 KiB pages runs at ~0.3 GB/s on the machines flowad targets, of huge pages ~10 GB/s.
inline constexpr std::size_t huge_buffer_bytes = std::size_t{4} << 20;

// 64-byte-aligned (2 MiB for huge buffers) uninitialised memory; throws std::bad_alloc.
void* allocate_bytes(std::size_t bytes);
// Frees memory from allocate_bytes; `bytes` must be the size it was allocated with.
void free_bytes(void* p, std::size_t bytes) noexcept;

inline float* allocate_floats(std::size_t count) {
  if (count == 0) return nullptr;
  if (count > std::numeric_limits<std::size_t>::max() / sizeof(float) - buffer_alignment)
    throw error(errc::invalid_argument, "tensor of " + std::to_string(count) + " floats is too large");
  return static_cast<float*>(allocate_bytes(count * sizeof(float)));
}
struct free_floats {
  std::size_t count = 0;
  void operator()(float* p) const noexcept { free_bytes(p, count * sizeof(float)); }
};
}  // namespace detail

template <class T>
struct aligned_allocator {
  using value_type = T;
  aligned_allocator() noexcept = default;
  template <class U>
  aligned_allocator(const aligned_allocator<U>&) noexcept {}  // NOLINT(implicit)
  T* allocate(std::size_t n) {
    if (n > std::numeric_limits<std::size_t>::max() / sizeof(T)) throw std::bad_alloc();
    return static_cast<T*>(detail::allocate_bytes(n * sizeof(T)));
  }
  void deallocate(T* p, std::size_t n) noexcept { detail::free_bytes(p, n * sizeof(T)); }
  template <class U>
  friend bool operator==(const aligned_allocator&, const aligned_allocator<U>&) noexcept { return true; }
  template <class U>
  friend bool operator!=(const aligned_allocator&, const aligned_allocator<U>&) noexcept { return false; }
};

template <class T>
using aligned_vector = std::vector<T, aligned_allocator<T>>;

// ------------------------------------------------------------------------------------------------
// An owned dense tensor in NCHW or NHWC layout, 64-byte aligned. resize() keeps the storage when it
// is large enough, so a tensor sized once is reused without touching the allocator again.
class tensor {
 public:
  tensor() noexcept = default;
  explicit tensor(shape4 shape, layout l = layout::nchw) { resize(shape, l); }

  tensor(const tensor& other) : tensor(other.shape_, other.layout_) {
    if (numel() > 0) std::memcpy(storage_.get(), other.storage_.get(), bytes());
  }
  tensor& operator=(const tensor& other) {
    if (this != &other) {
      resize(other.shape_, other.layout_);
      if (numel() > 0) std::memcpy(storage_.get(), other.storage_.get(), bytes());
    }
    return *this;
  }
  tensor(tensor&& other) noexcept
      : storage_(std::move(other.storage_)), capacity_(other.capacity_), shape_(other.shape_), layout_(other.layout_) {
    other.capacity_ = 0;
    other.shape_ = {};
  }
  tensor& operator=(tensor&& other) noexcept {
    storage_ = std::move(other.storage_);
    capacity_ = other.capacity_;
    shape_ = other.shape_;
    layout_ = other.layout_;
    other.capacity_ = 0;
    other.shape_ = {};
    return *this;
  }

  // Changes shape and layout; allocates only if the new size exceeds the capacity.
  // The contents are unspecified afterwards.
  void resize(shape4 shape, layout l) {
    if (shape.n < 0 || shape.c < 0 || shape.h < 0 || shape.w < 0)
      throw error(errc::invalid_argument, "negative tensor dimension in " + shape.str());
    const index_t count = shape.numel();
    if (count > capacity_) {
      storage_.reset();
      storage_ = decltype(storage_)(detail::allocate_floats(static_cast<std::size_t>(count)),
                                    detail::free_floats{static_cast<std::size_t>(count)});
      capacity_ = count;
    }
    shape_ = shape;
    layout_ = l;
  }

  void fill(float value) noexcept {
    float* p = storage_.get();
    for (index_t i = 0; i < numel(); ++i) p[i] = value;
  }

  float* data() noexcept { return storage_.get(); }
  const float* data() const noexcept { return storage_.get(); }
  const shape4& shape() const noexcept { return shape_; }
  enum layout layout() const noexcept { return layout_; }
  index_t n() const noexcept { return shape_.n; }
  index_t c() const noexcept { return shape_.c; }
  index_t h() const noexcept { return shape_.h; }
  index_t w() const noexcept { return shape_.w; }
  index_t numel() const noexcept { return shape_.numel(); }
  bool empty() const noexcept { return shape_.empty(); }
  index_t capacity() const noexcept { return capacity_; }
  std::size_t bytes() const noexcept { return static_cast<std::size_t>(numel()) * sizeof(float); }

  flowad::view view() noexcept { return {storage_.get(), shape_, layout_}; }
  const_view view() const noexcept { return {storage_.get(), shape_, layout_}; }
  const_view cview() const noexcept { return view(); }
  operator flowad::view() noexcept { return view(); }            // NOLINT(implicit)
  operator const_view() const noexcept { return view(); }        // NOLINT(implicit)

  float& operator()(index_t n, index_t c, index_t h, index_t w) noexcept { return view()(n, c, h, w); }
  float operator()(index_t n, index_t c, index_t h, index_t w) const noexcept { return view()(n, c, h, w); }

 private:
  std::unique_ptr<float[], detail::free_floats> storage_;
  index_t capacity_ = 0;
  shape4 shape_{};
  enum layout layout_ = layout::nchw;
};

// Copies src into dst element by element; any layouts, same shape.
void copy(const_view src, view dst);

}  // namespace v0
}  // namespace flowad
