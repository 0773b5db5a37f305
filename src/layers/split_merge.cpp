#include "flowad/layers/split_merge.hpp"

#include <cstdlib>
#include <string>

#include "flowad/detail/checks.hpp"
#include "kernels/simd.hpp"

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

// ------------------------------------------------------------------------------------------------
// squeeze

namespace {

// to[i·to_stride] = from[i·from_stride] for i < count (cloned for AVX-512 gathers and scatters).
FLOWAD_SIMD_CLONES
void strided_copy(const float* from, index_t from_stride, float* to, index_t to_stride, index_t count) {
#pragma omp simd
  for (index_t i = 0; i < count; ++i) to[i * to_stride] = from[i * from_stride];
}

// The element pairs of the 2x2 space-to-depth map small(n, 4c + 2dy + dx, h, w) <-> big(n, c, 2h + dy, 2w + dx),
// visited as strided runs: along the channels when the big tensor's channels are innermost (NHWC), along
// the width otherwise (NCHW), so that one side of every run is contiguous in the dense layouts.
// to_small: from is the big tensor and to the small one (squeeze); otherwise the reverse (unsqueeze).
void squeeze_copy(const float* from, float* to, bool to_small, const shape4& bshape, const strides4& bs,
                  const strides4& ss) {
  const index_t small_h = bshape.h / 2, small_w = bshape.w / 2;
  const auto run = [&](index_t big_offset, index_t big_stride, index_t small_offset, index_t small_stride,
                       index_t count) {
    if (to_small)
      strided_copy(from + big_offset, big_stride, to + small_offset, small_stride, count);
    else
      strided_copy(from + small_offset, small_stride, to + big_offset, big_stride, count);
  };
  if (std::abs(bs.c) <= std::abs(bs.w)) {
#pragma omp parallel for collapse(2) schedule(static)
    for (index_t n = 0; n < bshape.n; ++n)
      for (index_t h = 0; h < small_h; ++h)
        for (index_t w = 0; w < small_w; ++w)
          for (index_t k = 0; k < 4; ++k) {
            const index_t dy = k / 2, dx = k % 2;
            run(n * bs.n + (2 * h + dy) * bs.h + (2 * w + dx) * bs.w, bs.c, n * ss.n + h * ss.h + w * ss.w + k * ss.c,
                4 * ss.c, bshape.c);
          }
  } else {
#pragma omp parallel for collapse(2) schedule(static)
    for (index_t n = 0; n < bshape.n; ++n)
      for (index_t c = 0; c < bshape.c; ++c)
        for (index_t k = 0; k < 4; ++k) {
          const index_t dy = k / 2, dx = k % 2;
          for (index_t h = 0; h < small_h; ++h)
            run(n * bs.n + c * bs.c + (2 * h + dy) * bs.h + dx * bs.w, 2 * bs.w,
                n * ss.n + (4 * c + k) * ss.c + h * ss.h, ss.w, small_w);
        }
  }
}

}  // namespace

shape4 squeeze::output_shape(shape4 src) {
  if (src.h % factor != 0 || src.w % factor != 0)
    throw error(errc::shape_mismatch, "squeeze: height and width must be even, got shape " + src.str());
  return {src.n, src.c * factor * factor, src.h / factor, src.w / factor};
}

shape4 squeeze::input_shape(shape4 dst) {
  if (dst.c % (factor * factor) != 0)
    throw error(errc::shape_mismatch, "unsqueeze: the channel count must be a multiple of 4, got shape " + dst.str());
  return {dst.n, dst.c / (factor * factor), dst.h * factor, dst.w * factor};
}

void squeeze::forward(const_view src, view dst, span<double> logdet) const {
  detail::require_nonempty(src, "src");
  const shape4 expected = output_shape(src.shape());
  if (dst.shape() != expected)
    throw error(errc::shape_mismatch, "squeeze: src has shape " + src.shape().str() + ", so dst needs shape " +
                                          expected.str() + ", but it has shape " + dst.shape().str());
  require_no_overlap("squeeze", src, "src", dst, "dst");
  require_logdet(logdet, src);
  squeeze_copy(src.data(), dst.data(), true, src.shape(), src.strides(), dst.strides());
}

void squeeze::inverse(const_view dst, view src) const {
  detail::require_nonempty(dst, "dst");
  const shape4 expected = input_shape(dst.shape());
  if (src.shape() != expected)
    throw error(errc::shape_mismatch, "unsqueeze: dst has shape " + dst.shape().str() + ", so src needs shape " +
                                          expected.str() + ", but it has shape " + src.shape().str());
  require_no_overlap("unsqueeze", dst, "dst", src, "src");
  squeeze_copy(dst.data(), src.data(), false, src.shape(), src.strides(), dst.strides());
}

void squeeze::backward(const_view diff_dst, view diff_src) const { inverse(diff_dst, diff_src); }

// ------------------------------------------------------------------------------------------------
// factor_out

factor_out::factor_out(index_t channels)
    : split_([&] {
        if (channels < 2)
          throw error(errc::invalid_argument,
                      "factor_out needs at least 2 channels, got " + std::to_string(channels));
        return std::vector<index_t>{channels - channels / 2, channels / 2};
      }()) {}

void factor_out::forward(const_view src, view kept, view factored, span<double> logdet) const {
  const view parts[] = {kept, factored};
  split_.forward(src, {parts, 2}, logdet);
}

void factor_out::inverse(const_view kept, const_view factored, view src) const {
  const const_view parts[] = {kept, factored};
  split_.inverse({parts, 2}, src);
}

void factor_out::backward(const_view diff_kept, const_view diff_factored, view diff_src) const {
  const const_view parts[] = {diff_kept, diff_factored};
  split_.backward({parts, 2}, diff_src);
}

}  // namespace v0
}  // namespace flowad
