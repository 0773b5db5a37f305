// A feed-forward inference network on oneDNN: convolutions (stride, padding, groups, bias, fused
// activation, fused residual add), max and average pooling. The backbones and the filter bank of
// flowad/extract are built from it; it is the inference counterpart of detail::conv2d (which keeps
// stride 1 and the backward passes for training).
//
// Build the graph once (conv(), max_pool(), avg_pool(), mark_output()), then call run() from any
// number of threads, each with its own workspace. For every input shape (batch, height, width, input
// strides, output layout) the network creates once, under a lock, a plan: one primitive per node with
// oneDNN's preferred activation layout (format_tag::any; oneDNN 2.6's brgconv kernels choose NHWC on
// AVX-512) or, under activation_format::winograd, nChw16c around the Winograd convolutions; weights
// reordered into the primitives' layouts, reorders only where a consumer wants a layout its producer
// did not give (none for the flowad backbones in the preferred layout), a residual add fused as a sum
// post-op writing in place into the residual's buffer when nothing reads that buffer later, and
// arena offsets for every activation with buffers reused as soon as their last reader has run.
// An output already in the caller's layout is written straight into the caller's tensor. The
// workspace keeps, per plan, the arena, a user-mode scratchpad and the bound memory objects, so a
// steady-state run() allocates no buffers: it executes a fixed list of primitives through oneDNN's C
// API (which itself still makes ~4 small allocations per primitive for its argument map).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "flowad/tensor.hpp"
#include "flowad/workspace.hpp"

namespace flowad {
inline namespace v0 {
namespace detail {

// Elementwise function fused after a convolution's bias (and residual add).
enum class eltwise { none, relu, relu6, abs };

// Layout of the activations between layers.
enum class activation_format {
  preferred,  // whatever oneDNN's convolutions prefer (format_tag::any): NHWC with brgconv, nChw16c
              // with the older jit kernels
  nhwc,       // plain channels-last everywhere
  winograd,   // `preferred`, except that dense stride-1 3x3 convolutions whose channel counts are
              // multiples of 16 run on oneDNN's Winograd kernels (F(4x4, 3x3) or F(2x2, 3x3)) with
              // nChw16c source and destination, the only layout those take, reorders around them;
              // the same as `preferred` where this oneDNN has no Winograd kernel for the CPU
};

class inference_net {
 public:
  using node_id = int;
  static constexpr node_id input_node = 0;

  struct conv_spec {
    index_t out_channels = 0;
    index_t kernel = 1;  // square kernel
    index_t stride = 1;
    index_t padding = 0;  // zero padding on every side
    index_t groups = 1;   // groups == in_channels == out_channels is a depthwise convolution
    eltwise act = eltwise::none;
    node_id residual = -1;  // if set: dst = act(conv(src) + bias + residual); shapes must agree
  };

  explicit inference_net(index_t input_channels, activation_format format = activation_format::preferred);
  ~inference_net();
  inference_net(inference_net&&) noexcept;
  inference_net& operator=(inference_net&&) noexcept;

  // A convolution of node src. weights: out x (in / groups) x k x k floats in C order (PyTorch's
  // OIHW); bias: out_channels floats, or empty for none. Returns the new node.
  node_id conv(node_id src, const conv_spec& spec, std::vector<float> weights, std::vector<float> bias,
               std::string name);
  // Max pooling (padding never wins) and average pooling over the valid (unpadded) elements.
  node_id max_pool(node_id src, index_t kernel, index_t stride, index_t padding, std::string name);
  node_id avg_pool(node_id src, index_t kernel, index_t stride, index_t padding, std::string name);
  // Adds node to the outputs; run() returns outputs in the order they were marked.
  void mark_output(node_id node);

  index_t input_channels() const noexcept;
  std::size_t node_count() const noexcept;
  index_t channels(node_id node) const;
  const std::string& name(node_id node) const;
  const std::vector<node_id>& outputs() const noexcept;
  activation_format format() const noexcept;

  // The shape of node for an input of shape `input` (N x C x H x W).
  shape4 shape(node_id node, shape4 input) const;
  // Multiply-accumulates of the convolutions for an input of shape `input`.
  double macs(shape4 input) const;

  // Runs the network on images (input_channels() channels, any non-negative strides). outs is resized
  // to outputs().size() and outs[i] to output i's shape in layout l; a tensor whose capacity suffices
  // keeps its storage. Thread-safe given one workspace per thread. A batch of more than max_chunk()
  // images runs max_chunk() at a time, so the workspace holds one chunk's activations.
  void run(const_view images, std::vector<tensor>& outs, layout l, workspace& ws) const;

  // One line per step of the plan for `input` ("conv layer1.0.conv1: brgconv:avx512_core ..."), and
  // the number of layout reorders between layers.
  std::string describe(shape4 input, layout l = layout::nhwc) const;
  std::size_t interlayer_reorders(shape4 input, layout l = layout::nhwc) const;

  // Images per chunk of run() (at least 1). Larger chunks gain a few percent at most (ResNet18 at 256 x
  // 256, batch 16, bench_extractor's bm_chunk: 120 ms in chunks of 4, 115 in one), while the activations
  // grow with the chunk (about 6 MB an image, plus oneDNN's scratchpad).
  static constexpr index_t default_max_chunk = 4;
  index_t max_chunk() const noexcept;
  void set_max_chunk(index_t images);  // not thread-safe with run()

  // Drops every cached plan (for cold-start benchmarks). Not thread-safe with run().
  void clear_cache();

  // The key of this network's state in a workspace.
  std::uint64_t id() const noexcept;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace detail
}  // namespace v0
}  // namespace flowad
