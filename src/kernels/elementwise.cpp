// nn::relu_forward, relu_backward, add, accumulate: flat loops over dense buffers.
#include "flowad/nn/elementwise.hpp"

#include <algorithm>

#include "flowad/detail/checks.hpp"
#include "flowad/error.hpp"
#include "kernels/simd.hpp"

namespace flowad {
inline namespace v0 {
namespace nn {

namespace {

// Elements per parallel work item: large enough to amortise the loop, and a multiple of the SIMD width.
constexpr std::size_t chunk = 16384;

template <class F>
void for_chunks(std::size_t count, F&& f) {
  const auto chunks = static_cast<index_t>((count + chunk - 1) / chunk);
#pragma omp parallel for schedule(static) if (count >= static_cast<std::size_t>(detail::parallel_threshold))
  for (index_t i = 0; i < chunks; ++i) {
    const std::size_t first = static_cast<std::size_t>(i) * chunk;
    f(first, std::min(chunk, count - first));
  }
}

FLOWAD_SIMD_CLONES
void relu_block(const float* src, float* dst, std::size_t count) {
#pragma omp simd
  for (std::size_t i = 0; i < count; ++i) dst[i] = src[i] > 0.0f ? src[i] : 0.0f;
}

FLOWAD_SIMD_CLONES
void relu_backward_block(const float* dst, const float* diff_dst, float* diff_src, std::size_t count) {
#pragma omp simd
  for (std::size_t i = 0; i < count; ++i) diff_src[i] = dst[i] > 0.0f ? diff_dst[i] : 0.0f;
}

FLOWAD_SIMD_CLONES
void add_block(const float* a, const float* b, float* dst, std::size_t count) {
#pragma omp simd
  for (std::size_t i = 0; i < count; ++i) dst[i] = a[i] + b[i];
}

void require(const void* p, const char* function, const char* what) {
  if (!p) throw error(errc::invalid_argument, std::string(function) + ": " + what + " is null");
}

}  // namespace

void relu_forward(const float* src, float* dst, std::size_t count) {
  if (count == 0) return;
  require(src, "nn::relu_forward", "src");
  require(dst, "nn::relu_forward", "dst");
  for_chunks(count, [&](std::size_t first, std::size_t n) { relu_block(src + first, dst + first, n); });
}

void relu_backward(const float* dst, const float* diff_dst, float* diff_src, std::size_t count) {
  if (count == 0) return;
  require(dst, "nn::relu_backward", "dst");
  require(diff_dst, "nn::relu_backward", "diff_dst");
  require(diff_src, "nn::relu_backward", "diff_src");
  for_chunks(count, [&](std::size_t first, std::size_t n) {
    relu_backward_block(dst + first, diff_dst + first, diff_src + first, n);
  });
}

void add(const float* a, const float* b, float* dst, std::size_t count) {
  if (count == 0) return;
  require(a, "nn::add", "a");
  require(b, "nn::add", "b");
  require(dst, "nn::add", "dst");
  for_chunks(count, [&](std::size_t first, std::size_t n) { add_block(a + first, b + first, dst + first, n); });
}

void accumulate(const float* src, float* dst, std::size_t count) {
  if (count == 0) return;
  require(src, "nn::accumulate", "src");
  require(dst, "nn::accumulate", "dst");
  for_chunks(count, [&](std::size_t first, std::size_t n) { add_block(dst + first, src + first, dst + first, n); });
}

}  // namespace nn
}  // namespace v0
}  // namespace flowad
