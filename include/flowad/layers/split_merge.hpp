// Shape-changing bijections of flows: channel split / merge, squeeze / unsqueeze (space-to-depth), and
// the multi-scale factor-out of Glow and RealNVP.
//
// Their outputs do not have their input's shape, so they are not flow_layers. They share this API:
//
//   forward(src, outputs..., logdet)   the map. Each of these maps only moves elements, so
//                                      log|det J| = 0 exactly: logdet (one entry per sample, like
//                                      flow_layer::forward) is size-checked and left unchanged.
//   inverse(outputs..., src)           its inverse.
//   backward(diff_outputs..., diff_src)
//                                      the gradient of forward(). The Jacobian is a permutation matrix, so
//                                      this moves the gradients back exactly as inverse() moves values;
//                                      likewise forward() applied to gradients is the gradient of inverse().
//   *_shape(...)                       output shapes; throw flowad::error naming the shape when there is none.
//
// Views and tensors may have any strides (flowad's logical order is n, c, h, w whatever the layout). Inputs
// and outputs must not overlap, except where noted. They keep no state and need no workspace; every
// method is const and thread-safe. Preconditions throw flowad::error with the shapes in the message.
#pragma once

#include <vector>

#include "flowad/tensor.hpp"

namespace flowad {
inline namespace v0 {

// Split of C channels into consecutive groups, and the merge back. Group g holds channels
// [offset(g), offset(g) + sizes()[g]).
//
// Splitting needs no copy: group() returns a view into the input. forward() copies into destinations the
// caller owns. inverse() merges; a part that is already the view group(dst, g) is left in place, so a
// split that was only viewed merges back for free.
class channel_split {
 public:
  // `groups` groups as equal as possible: the first C mod groups groups are one channel larger.
  // Throws unless 1 <= groups <= channels.
  channel_split(index_t channels, index_t groups);
  // Explicit group sizes, each positive.
  explicit channel_split(std::vector<index_t> sizes);

  // The sizes channel_split(channels, groups) uses.
  static std::vector<index_t> equal_sizes(index_t channels, index_t groups);

  index_t channels() const noexcept { return channels_; }
  index_t groups() const noexcept { return static_cast<index_t>(sizes_.size()); }
  const std::vector<index_t>& sizes() const noexcept { return sizes_; }
  index_t offset(index_t g) const;              // first channel of group g
  shape4 group_shape(shape4 whole, index_t g) const;

  // Group g of x, without copying.
  const_view group(const_view x, index_t g) const;
  view group(view x, index_t g) const;

  // parts[g] = group g of src; parts.size() == groups(). logdet is unchanged (see above).
  void forward(const_view src, span<const view> parts, span<double> logdet) const;
  // Group g of dst = parts[g] (merge).
  void inverse(span<const const_view> parts, view dst) const;
  // Group g of diff_src = diff_parts[g].
  void backward(span<const const_view> diff_parts, view diff_src) const;

 private:
  void check_whole(const_view whole, const char* what) const;
  void check_parts(span<const const_view> parts, const_view whole, const char* parts_name,
                   const char* whole_name) const;
  index_t channels_ = 0;
  std::vector<index_t> sizes_;
  std::vector<index_t> offsets_;
};

// Space-to-depth by 2 (Glow's squeeze2d): N x C x H x W -> N x 4C x H/2 x W/2 with
//   dst(n, 4c + 2dy + dx, h, w) = src(n, c, 2h + dy, 2w + dx),  dy, dx in {0, 1}.
// inverse() is unsqueeze (depth-to-space).
class squeeze {
 public:
  static constexpr index_t factor = 2;

  // N x 4C x H/2 x W/2; throws errc::shape_mismatch for odd H or W.
  static shape4 output_shape(shape4 src);
  // N x C/4 x 2H x 2W; throws errc::shape_mismatch unless C is a multiple of 4.
  static shape4 input_shape(shape4 dst);

  void forward(const_view src, view dst, span<double> logdet) const;
  void inverse(const_view dst, view src) const;
  void backward(const_view diff_dst, view diff_src) const;
};

// Multi-scale factor-out (Glow split2d without its learned prior, RealNVP): of C channels, the first
// C − C/2 continue through the flow ("kept") and the last C/2 leave it ("factored"). A channel_split into
// {C − C/2, C/2} with names for the two halves.
class factor_out {
 public:
  // Throws unless channels >= 2.
  explicit factor_out(index_t channels);

  index_t channels() const noexcept { return split_.channels(); }
  index_t kept_channels() const noexcept { return split_.sizes()[0]; }
  index_t factored_channels() const noexcept { return split_.sizes()[1]; }
  shape4 kept_shape(shape4 whole) const { return split_.group_shape(whole, 0); }
  shape4 factored_shape(shape4 whole) const { return split_.group_shape(whole, 1); }

  // Views of the two halves, without copying.
  const_view kept(const_view x) const { return split_.group(x, 0); }
  view kept(view x) const { return split_.group(x, 0); }
  const_view factored(const_view x) const { return split_.group(x, 1); }
  view factored(view x) const { return split_.group(x, 1); }

  void forward(const_view src, view kept, view factored, span<double> logdet) const;
  // Merges the halves back; a half that already is the corresponding view of src is not copied.
  void inverse(const_view kept, const_view factored, view src) const;
  void backward(const_view diff_kept, const_view diff_factored, view diff_src) const;

 private:
  channel_split split_;
};

}  // namespace v0
}  // namespace flowad
