// Channel split / merge: cuts C channels into consecutive groups (affine_coupling's and MS-Flow's parallel
// coupling groups) and joins them back.
//
// Its outputs do not have its input's shape, so it is not a flow_layer. Its API:
//
//   forward(src, parts, logdet)        the split. It only moves elements, so log|det J| = 0 exactly:
//                                      logdet (one entry per sample, like flow_layer::forward) is
//                                      size-checked and left unchanged.
//   inverse(parts, dst)                the merge.
//   backward(diff_parts, diff_src)     the gradient of forward(). The Jacobian is a permutation matrix, so
//                                      this moves the gradients back exactly as inverse() moves values;
//                                      likewise forward() applied to gradients is the gradient of inverse().
//   group_shape(...)                   output shapes; throws flowad::error naming the shape when there is none.
//
// Views and tensors may have any strides (flowad's logical order is n, c, h, w whatever the layout). Inputs
// and outputs must not overlap, except where noted. It keeps no state but the group sizes and needs no
// workspace; every method is const and thread-safe. Preconditions throw flowad::error with the shapes in the
// message.
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

}  // namespace v0
}  // namespace flowad
