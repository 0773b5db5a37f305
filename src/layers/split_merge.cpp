#include "flowad/layers/split_merge.hpp"

#include <string>
#include <utility>

#include "flowad/detail/checks.hpp"

namespace flowad {
inline namespace v0 {

namespace {

bool same_view(const const_view& a, const const_view& b) noexcept {
  const strides4 sa = a.strides(), sb = b.strides();
  return a.data() == b.data() && a.shape() == b.shape() && sa.n == sb.n && sa.c == sb.c && sa.h == sb.h &&
         sa.w == sb.w;
}

void require_no_overlap(const char* kind, const const_view& a, const char* a_name, const const_view& b,
                        const char* b_name) {
  if (detail::may_overlap(a, b))
    throw error(errc::invalid_argument, std::string(kind) + ": " + a_name + " (shape " + a.shape().str() + ") and " +
                                            b_name + " (shape " + b.shape().str() + ") overlap");
}

void require_logdet(span<double> logdet, const const_view& src) {
  detail::require_size(logdet.size(), static_cast<std::size_t>(src.n()), "logdet");
}

}  // namespace

// ------------------------------------------------------------------------------------------------
// channel_split

std::vector<index_t> channel_split::equal_sizes(index_t channels, index_t groups) {
  if (groups < 1 || channels < groups)
    throw error(errc::invalid_argument, "channel_split: cannot split " + std::to_string(channels) +
                                            " channels into " + std::to_string(groups) + " non-empty groups");
  std::vector<index_t> sizes(static_cast<std::size_t>(groups), channels / groups);
  for (index_t g = 0; g < channels % groups; ++g) ++sizes[static_cast<std::size_t>(g)];
  return sizes;
}

channel_split::channel_split(index_t channels, index_t groups) : channel_split(equal_sizes(channels, groups)) {}

channel_split::channel_split(std::vector<index_t> sizes) : sizes_(std::move(sizes)) {
  if (sizes_.empty()) throw error(errc::invalid_argument, "channel_split needs at least one group");
  offsets_.reserve(sizes_.size());
  for (std::size_t g = 0; g < sizes_.size(); ++g) {
    if (sizes_[g] <= 0)
      throw error(errc::invalid_argument, "channel_split: group " + std::to_string(g) + " has " +
                                              std::to_string(sizes_[g]) + " channels; every group needs at least one");
    offsets_.push_back(channels_);
    channels_ += sizes_[g];
  }
}

index_t channel_split::offset(index_t g) const {
  if (g < 0 || g >= groups())
    throw error(errc::invalid_argument,
                "channel_split: group " + std::to_string(g) + " of " + std::to_string(groups()) + " does not exist");
  return offsets_[static_cast<std::size_t>(g)];
}

shape4 channel_split::group_shape(shape4 whole, index_t g) const {
  if (whole.c != channels_)
    throw error(errc::shape_mismatch, "channel_split: a tensor of shape " + whole.str() + " does not have the " +
                                          std::to_string(channels_) + " channels of the split");
  offset(g);  // range check
  whole.c = sizes_[static_cast<std::size_t>(g)];
  return whole;
}

const_view channel_split::group(const_view x, index_t g) const {
  check_whole(x, "x");
  return x.channels(offset(g), sizes_[static_cast<std::size_t>(g)]);
}

view channel_split::group(view x, index_t g) const {
  check_whole(x, "x");
  return x.channels(offset(g), sizes_[static_cast<std::size_t>(g)]);
}

void channel_split::check_whole(const_view whole, const char* what) const {
  if (whole.c() != channels_)
    throw error(errc::shape_mismatch, std::string("channel_split: ") + what + " has shape " + whole.shape().str() +
                                          " but the split expects " + std::to_string(channels_) + " channels");
}

void channel_split::check_parts(span<const const_view> parts, const_view whole, const char* parts_name,
                                const char* whole_name) const {
  detail::require_nonempty(whole, whole_name);
  check_whole(whole, whole_name);
  if (parts.size() != sizes_.size())
    throw error(errc::shape_mismatch, "channel_split: " + std::to_string(parts.size()) + " " + parts_name + " for " +
                                          std::to_string(sizes_.size()) + " groups");
  for (std::size_t g = 0; g < parts.size(); ++g) {
    const shape4 expected = group_shape(whole.shape(), static_cast<index_t>(g));
    if (parts[g].shape() != expected)
      throw error(errc::shape_mismatch, std::string("channel_split: ") + parts_name + "[" + std::to_string(g) +
                                            "] has shape " + parts[g].shape().str() + " but group " +
                                            std::to_string(g) + " of " + whole_name + " (shape " +
                                            whole.shape().str() + ") has shape " + expected.str());
  }
}

void channel_split::forward(const_view src, span<const view> parts, span<double> logdet) const {
  // Checked as const views; the copies below write through the caller's mutable views.
  detail::require_nonempty(src, "src");
  check_whole(src, "src");
  if (parts.size() != sizes_.size())
    throw error(errc::shape_mismatch, "channel_split: " + std::to_string(parts.size()) + " parts for " +
                                          std::to_string(sizes_.size()) + " groups");
  for (std::size_t g = 0; g < parts.size(); ++g) {
    const shape4 expected = group_shape(src.shape(), static_cast<index_t>(g));
    if (parts[g].shape() != expected)
      throw error(errc::shape_mismatch, "channel_split: parts[" + std::to_string(g) + "] has shape " +
                                            parts[g].shape().str() + " but group " + std::to_string(g) +
                                            " of src (shape " + src.shape().str() + ") has shape " + expected.str());
    require_no_overlap("channel_split", src, "src", parts[g], "a part");
  }
  require_logdet(logdet, src);
  for (std::size_t g = 0; g < parts.size(); ++g) copy(group(src, static_cast<index_t>(g)), parts[g]);
}

void channel_split::inverse(span<const const_view> parts, view dst) const {
  check_parts(parts, dst, "parts", "dst");
  for (std::size_t g = 0; g < parts.size(); ++g) {
    const view target = group(dst, static_cast<index_t>(g));
    if (same_view(parts[g], target)) continue;  // already in place
    require_no_overlap("channel_split", parts[g], "a part", dst, "dst");
    copy(parts[g], target);
  }
}

void channel_split::backward(span<const const_view> diff_parts, view diff_src) const {
  check_parts(diff_parts, diff_src, "diff_parts", "diff_src");
  for (std::size_t g = 0; g < diff_parts.size(); ++g) {
    const view target = group(diff_src, static_cast<index_t>(g));
    if (same_view(diff_parts[g], target)) continue;
    require_no_overlap("channel_split", diff_parts[g], "a gradient part", diff_src, "diff_src");
    copy(diff_parts[g], target);
  }
}

}  // namespace v0
}  // namespace flowad
