#include <catch2/catch.hpp>

#include <cmath>

#include "flowad/io/image_rotate.hpp"

using namespace flowad;

namespace {

float_image ramp(index_t h, index_t w, index_t channels) {
  float_image image(h, w, channels);
  for (index_t y = 0; y < h; ++y)
    for (index_t x = 0; x < w; ++x)
      for (index_t c = 0; c < channels; ++c) image(y, x, c) = static_cast<float>(100 * y + x) + 0.25f * static_cast<float>(c);
  return image;
}

}  // namespace

TEST_CASE("rotate_bilinear turns by quarter turns exactly, counter-clockwise", "[image_rotate]") {
  const float_image src = ramp(7, 7, 3);
  CHECK(rotate_bilinear(src, 0.0) == src);
  const float_image left = rotate_bilinear(src, 90.0), right = rotate_bilinear(src, -90.0);
  double worst = 0.0;
  for (index_t y = 0; y < 7; ++y)
    for (index_t x = 0; x < 7; ++x)
      for (index_t c = 0; c < 3; ++c) {
        // Counter-clockwise: the output's top row is the input's right column (numpy's rot90).
        worst = std::max(worst, static_cast<double>(std::abs(left(y, x, c) - src(x, 6 - y, c))));
        worst = std::max(worst, static_cast<double>(std::abs(right(y, x, c) - src(6 - x, y, c))));
      }
  CHECK(worst <= 1e-3);
}

TEST_CASE("rotate_bilinear keeps constants and fills corners from the edge", "[image_rotate]") {
  const float_image flat(9, 12, 1, 0.375f);
  const float_image turned = rotate_bilinear(flat, 17.0);
  for (index_t y = 0; y < 9; ++y)
    for (index_t x = 0; x < 12; ++x) CHECK(turned(y, x) == Approx(0.375f).margin(1e-6));
  // A small turn moves the centre of an odd-sized image nowhere.
  const float_image src = ramp(9, 9, 1);
  CHECK(rotate_bilinear(src, 5.0)(4, 4) == Approx(src(4, 4)).margin(1e-3));
}

TEST_CASE("rotate_bilinear rejects an empty image and a non-finite angle", "[image_rotate]") {
  CHECK_THROWS_WITH(rotate_bilinear(float_image(), 5.0), Catch::Contains("empty image"));
  CHECK_THROWS_WITH(rotate_bilinear(ramp(3, 3, 1), std::nan("")), Catch::Contains("not finite"));
}
