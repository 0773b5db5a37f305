#include "flowad/tensor.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "flowad/detail/checks.hpp"
#include "flowad/detail/config_fields.hpp"

namespace flowad {
inline namespace v0 {

void copy(const_view src, view dst) {
  detail::require_same_shape(src, "copy source", dst, "copy destination");
  const shape4 s = src.shape();
  if (src.is_dense(layout::nhwc) && dst.is_dense(layout::nhwc)) {
    if (s.numel() > 0) std::memcpy(dst.data(), src.data(), static_cast<std::size_t>(s.numel()) * sizeof(float));
    return;
  }
  if (src.is_dense(layout::nchw) && dst.is_dense(layout::nchw)) {
    if (s.numel() > 0) std::memcpy(dst.data(), src.data(), static_cast<std::size_t>(s.numel()) * sizeof(float));
    return;
  }
  // Generic path: iterate with the destination's smaller of c/w strides innermost.
  const bool channels_inner = std::abs(dst.strides().c) <= std::abs(dst.strides().w);
#pragma omp parallel for collapse(2) schedule(static) if (s.numel() >= detail::parallel_threshold)
  for (index_t n = 0; n < s.n; ++n)
    for (index_t h = 0; h < s.h; ++h) {
      if (channels_inner) {
        for (index_t w = 0; w < s.w; ++w)
          for (index_t c = 0; c < s.c; ++c) dst(n, c, h, w) = src(n, c, h, w);
      } else {
        for (index_t c = 0; c < s.c; ++c)
          for (index_t w = 0; w < s.w; ++w) dst(n, c, h, w) = src(n, c, h, w);
      }
    }
}

namespace detail {

bool all_within(const const_view& v, float bound) {
  const shape4 s = v.shape();
  bool within = true;
#pragma omp parallel for collapse(2) schedule(static) reduction(&& : within) if (s.numel() >= parallel_threshold)
  for (index_t n = 0; n < s.n; ++n)
    for (index_t c = 0; c < s.c; ++c) {
      bool ok = true;
      for (index_t h = 0; h < s.h; ++h)
        for (index_t w = 0; w < s.w; ++w) ok &= std::abs(v(n, c, h, w)) <= bound;  // false for NaN
      within = within && ok;
    }
  return within;
}

// |x| <= the largest float holds exactly for the finite values.
bool all_finite(const const_view& v) { return all_within(v, std::numeric_limits<float>::max()); }

namespace {

// Only after a fast scan failed: throws for the first element, in (n, c, h, w) order, beyond ±bound,
// errc::non_finite for NaN/Inf, else errc::invalid_argument.
void throw_first_beyond(const const_view& v, float bound, const char* what) {
  const shape4 s = v.shape();
  for (index_t n = 0; n < s.n; ++n)
    for (index_t c = 0; c < s.c; ++c)
      for (index_t h = 0; h < s.h; ++h)
        for (index_t w = 0; w < s.w; ++w) {
          const float x = v(n, c, h, w);
          if (std::abs(x) <= bound) continue;
          const std::string where = " at (n=" + std::to_string(n) + ", c=" + std::to_string(c) + ", h=" + std::to_string(h) +
                                    ", w=" + std::to_string(w) + ") of shape " + s.str();
          if (!std::isfinite(x))
            throw error(errc::non_finite, std::string(what) + " holds " + (std::isnan(x) ? "NaN" : "Inf") + where);
          throw error(errc::invalid_argument, std::string(what) + " holds " + number_text(x) + where + ", beyond the ±" +
                                                  number_text(bound) + " accepted");
        }
}

}  // namespace

void require_within(const const_view& v, float bound, const char* what) {
  // Fast scan first (the common case is all within), then locate the culprit. A NaN or Inf anywhere
  // is reported before a finite value beyond the bound, as errc::non_finite.
  if (all_within(v, bound)) return;
  require_finite(v, what);
  throw_first_beyond(v, bound, what);
}

void require_finite(const const_view& v, const char* what) {
  if (!all_finite(v)) throw_first_beyond(v, std::numeric_limits<float>::max(), what);
}

namespace {
// [lowest, highest] byte addresses a view touches.
std::pair<const char*, const char*> address_range(const const_view& v) noexcept {
  const strides4 st = v.strides();
  const shape4 s = v.shape();
  index_t lo = 0, hi = 0;
  auto extend = [&](index_t extent, index_t stride) {
    if (extent <= 1) return;
    const index_t span = (extent - 1) * stride;
    if (span < 0) lo += span; else hi += span;
  };
  extend(s.n, st.n);
  extend(s.c, st.c);
  extend(s.h, st.h);
  extend(s.w, st.w);
  const char* base = reinterpret_cast<const char*>(v.data());
  return {base + lo * static_cast<index_t>(sizeof(float)),
          base + hi * static_cast<index_t>(sizeof(float)) + sizeof(float) - 1};
}
}  // namespace

bool may_overlap(const const_view& a, const const_view& b) noexcept {
  if (a.empty() || b.empty()) return false;
  const auto ra = address_range(a);
  const auto rb = address_range(b);
  return ra.first <= rb.second && rb.first <= ra.second;
}

}  // namespace detail
}  // namespace v0
}  // namespace flowad
