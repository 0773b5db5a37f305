// The oneDNN backend, seen from the rest of flowad. Everything oneDNN lives in src/backend; this
// header declares opaque handles so that no public header includes dnnl.hpp.
//
// Tensors passed here are dense NHWC float buffers. Primitive descriptors, primitives and weights
// reordered into the primitive's preferred layout are created once per input shape and cached;
// weights are re-reordered only when their parameter's stamp changes. Execution uses a per-thread
// exec_context (stream + user-mode scratchpad), so a const operation can run on several threads.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "flowad/parameter.hpp"
#include "flowad/tensor.hpp"

namespace flowad {
inline namespace v0 {
namespace detail {

// "oneDNN 2.6.3, ISA avx512_core, 2 OpenMP threads": what computations run on.
std::string backend_description();

// A oneDNN stream, a scratchpad and the memory objects bound to one thread's calls.
class exec_context {
 public:
  exec_context();
  ~exec_context();
  exec_context(const exec_context&) = delete;
  exec_context& operator=(const exec_context&) = delete;

  struct impl;
  impl& get() noexcept { return *impl_; }

 private:
  std::unique_ptr<impl> impl_;
};

enum class activation { none, relu, leaky_relu };

// How conv2d computes: `automatic` takes Winograd F(4x4, 3x3) for 3x3 kernels where oneDNN implements
// it (AVX-512) and the direct method otherwise; `direct` always takes the direct method.
enum class conv_algorithm { automatic, direct };

// 2-D convolution, stride 1, zero padding kernel/2 ("same"), optional bias, optional fused
// activation. Weights are OIHW, bias is [out_channels].
class conv2d {
 public:
  struct config {
    index_t in_channels = 0;
    index_t out_channels = 0;
    index_t kernel = 1;  // odd
    activation act = activation::none;
    float negative_slope = 0.0f;  // for leaky_relu
    bool with_bias = true;
    conv_algorithm algorithm = conv_algorithm::automatic;
  };

  explicit conv2d(const config& cfg);
  ~conv2d();
  conv2d(conv2d&&) noexcept;
  conv2d& operator=(conv2d&&) noexcept;

  const config& cfg() const noexcept;

  // dst = act(conv(src, weights) + bias). bias may be null when the config has no bias.
  void forward(const float* src, float* dst, index_t n, index_t h, index_t w, const parameter& weights,
               const parameter* bias, exec_context& ctx) const;

  // dst = next(this(src)): two chained convolutions, as in a coupling's subnet; next reads this
  // convolution's output. When both run on Winograd, the intermediate stays in the context's staging
  // buffer in oneDNN's blocked layout and `hidden` is not written (for inference, where nothing reads
  // it later): that saves reordering it to NHWC and back. Otherwise it is two forward() calls
  // through `hidden` (n x next.in_channels x h x w, NHWC).
  void forward_into(const conv2d& next, const float* src, float* hidden, float* dst, index_t n, index_t h, index_t w,
                    const parameter& weights, const parameter* bias, const parameter& next_weights,
                    const parameter* next_bias, exec_context& ctx) const;

  // diff_src = d(conv)/d(src)^T · diff_dst, where diff_dst is the gradient at the convolution's
  // output *before* the activation (the caller applies the activation's derivative).
  void backward_data(const float* diff_dst, float* diff_src, index_t n, index_t h, index_t w,
                     const parameter& weights, exec_context& ctx) const;

  // weights.grad += dL/dW, bias->grad += dL/db for the pre-activation gradient diff_dst.
  void backward_weights(const float* src, const float* diff_dst, index_t n, index_t h, index_t w,
                        parameter& weights, parameter* bias, exec_context& ctx) const;

  // backward_weights then backward_data for the same diff_dst, staging diff_dst once where both
  // passes run on Winograd.
  void backward(const float* src, const float* diff_dst, float* diff_src, index_t n, index_t h, index_t w,
                parameter& weights, parameter* bias, exec_context& ctx) const;

  // Multiply-accumulates of one forward pass.
  double macs(index_t n, index_t h, index_t w) const noexcept;

  // The oneDNN implementation chosen for each pass at a shape ("brgconv:avx512_core", ...).
  std::string implementation(index_t n, index_t h, index_t w) const;

  // Drops every cached primitive (for cold-start benchmarks).
  void clear_cache();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

// Row-major single-precision matrix product on oneDNN: C = alpha·op(A)·op(B) + beta·C, where op(X) is X
// or its transpose. Primitives are cached per problem (m, n, k, transposes, leading dimensions).
class matmul {
 public:
  matmul();
  ~matmul();
  matmul(matmul&&) noexcept;
  matmul& operator=(matmul&&) noexcept;

  // A is m x k (or k x m if trans_a), B is k x n (or n x k if trans_b), C is m x n; lda/ldb/ldc are
  // row strides in elements. beta is 0 (overwrite) or 1 (accumulate).
  void run(bool trans_a, bool trans_b, index_t m, index_t n, index_t k, const float* a, index_t lda,
           const float* b, index_t ldb, float* c, index_t ldc, float beta, exec_context& ctx) const;

  // The same from bfloat16 inputs (the raw 16 bits, as to_bfloat16 writes them) with single-precision
  // accumulation and result: twice the throughput where the CPU multiplies bfloat16 natively
  // (bfloat16_native()), for products of which three significant digits are enough.
  void run_bf16(bool trans_a, bool trans_b, index_t m, index_t n, index_t k, const std::uint16_t* a, index_t lda,
                const std::uint16_t* b, index_t ldb, float* c, index_t ldc, exec_context& ctx) const;

  std::string implementation(bool trans_a, bool trans_b, index_t m, index_t n, index_t k) const;
  void clear_cache();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

// Whether the CPU computes bfloat16 products natively (AVX512_BF16 or AMX), so that run_bf16 is faster
// than run.
bool bfloat16_native();

// Rounds floats to bfloat16 (round to nearest even; NaN stays NaN), the 16 high bits of each.
void to_bfloat16(const float* in, std::uint16_t* out, std::size_t count);

}  // namespace detail
}  // namespace v0
}  // namespace flowad
