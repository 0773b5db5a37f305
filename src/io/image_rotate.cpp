#include "flowad/io/image_rotate.hpp"

#include <algorithm>
#include <cmath>

#include "flowad/error.hpp"

namespace flowad {
inline namespace v0 {

float_image rotate_bilinear(const float_image& src, double degrees) {
  if (src.height() <= 0 || src.width() <= 0 || src.channels() <= 0)
    throw error(errc::invalid_argument, "rotate_bilinear: empty image (" + src.shape_str() + ")");
  if (!std::isfinite(degrees)) throw error(errc::invalid_argument, "rotate_bilinear: the angle is not finite");
  const index_t h = src.height(), w = src.width(), channels = src.channels();
  float_image dst(h, w, channels);
  const double radians = degrees * 3.14159265358979323846 / 180.0;
  const double c = std::cos(radians), s = std::sin(radians);
  const double cy = 0.5 * static_cast<double>(h - 1), cx = 0.5 * static_cast<double>(w - 1);
  for (index_t y = 0; y < h; ++y) {
    for (index_t x = 0; x < w; ++x) {
      // The inverse rotation of the output position (y grows downwards, so counter-clockwise on screen
      // is clockwise in these coordinates).
      const double dx = static_cast<double>(x) - cx, dy = static_cast<double>(y) - cy;
      const double sx = std::clamp(cx + c * dx - s * dy, 0.0, static_cast<double>(w - 1));
      const double sy = std::clamp(cy + s * dx + c * dy, 0.0, static_cast<double>(h - 1));
      const index_t x0 = static_cast<index_t>(sx), y0 = static_cast<index_t>(sy);
      const index_t x1 = std::min(x0 + 1, w - 1), y1 = std::min(y0 + 1, h - 1);
      const float fx = static_cast<float>(sx - static_cast<double>(x0)), fy = static_cast<float>(sy - static_cast<double>(y0));
      for (index_t ch = 0; ch < channels; ++ch) {
        const float top = src(y0, x0, ch) + fx * (src(y0, x1, ch) - src(y0, x0, ch));
        const float bottom = src(y1, x0, ch) + fx * (src(y1, x1, ch) - src(y1, x0, ch));
        dst(y, x, ch) = top + fy * (bottom - top);
      }
    }
  }
  return dst;
}

}  // namespace v0
}  // namespace flowad
