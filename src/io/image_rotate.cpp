#include "flowad/io/image_rotate.hpp"

#include <cmath>

namespace flowad {
inline namespace v0 {

float_image rotate_nearest(const float_image& src, double degrees, float fill) {
  if (src.height() <= 0 || src.width() <= 0 || src.channels() <= 0)
    throw error(errc::invalid_argument, "rotate_nearest: empty image");
  if (!std::isfinite(degrees)) throw error(errc::invalid_argument, "rotate_nearest: the angle must be finite");
  const index_t h = src.height(), w = src.width(), channels = src.channels();
  float_image out(h, w, channels);
  // PIL Image.rotate: the inverse map from output to source is a rotation by +θ in image coordinates
  // (y down), so that the content turns counter-clockwise on screen. Exact multiples of 90° use exact
  // sines and cosines (PIL rounds them to 15 digits, which makes cos 90° exactly 0).
  const double radians = std::fmod(degrees, 360.0) * (3.14159265358979323846 / 180.0);
  const auto rounded = [](double v) { return std::round(v * 1e15) / 1e15; };
  const double c = rounded(std::cos(radians)), s = rounded(std::sin(radians));
  const double cx = static_cast<double>(w) / 2.0, cy = static_cast<double>(h) / 2.0;
#pragma omp parallel for schedule(static) if (h * w * channels >= (index_t{1} << 15))
  for (index_t y = 0; y < h; ++y)
    for (index_t x = 0; x < w; ++x) {
      const double dx = static_cast<double>(x) + 0.5 - cx, dy = static_cast<double>(y) + 0.5 - cy;
      const double sx = c * dx - s * dy + cx, sy = s * dx + c * dy + cy;
      const index_t ix = static_cast<index_t>(std::floor(sx)), iy = static_cast<index_t>(std::floor(sy));
      const bool inside = ix >= 0 && ix < w && iy >= 0 && iy < h;
      for (index_t k = 0; k < channels; ++k) out(y, x, k) = inside ? src(iy, ix, k) : fill;
    }
  return out;
}

}  // namespace v0
}  // namespace flowad
