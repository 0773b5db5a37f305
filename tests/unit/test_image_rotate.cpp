// Image rotation (io/image_rotate.hpp), as torchvision's RandomRotation on PIL images: nearest,
// counter-clockwise, same size, filled with 0.
#include <catch2/catch.hpp>

#include "flowad/io/image_rotate.hpp"

using namespace flowad;

namespace {

float_image numbered(index_t h, index_t w, index_t channels) {
  float_image im(h, w, channels);
  for (index_t y = 0; y < h; ++y)
    for (index_t x = 0; x < w; ++x)
      for (index_t c = 0; c < channels; ++c) im(y, x, c) = static_cast<float>(1 + (y * w + x) * channels + c);
  return im;
}

}  // namespace

TEST_CASE("rotate_nearest turns images counter-clockwise about their centre", "[image_rotate][differnet]") {
  const float_image square = numbered(4, 4, 2);
  // 0° and 360° give the image back.
  for (double angle : {0.0, 360.0, -360.0}) {
    const float_image same = rotate_nearest(square, angle);
    for (index_t i = 0; i < 32; ++i) CHECK(same.data()[i] == square.data()[i]);
  }
  // 90° counter-clockwise on screen: the right column becomes the top row (out(y, x) = in(x, w−1−y)).
  const float_image quarter = rotate_nearest(square, 90.0);
  for (index_t y = 0; y < 4; ++y)
    for (index_t x = 0; x < 4; ++x)
      for (index_t c = 0; c < 2; ++c) CHECK(quarter(y, x, c) == square(x, 3 - y, c));
  // 180°: point reflection; −90° is 270°.
  const float_image half = rotate_nearest(square, 180.0), minus = rotate_nearest(square, -90.0), three = rotate_nearest(square, 270.0);
  for (index_t y = 0; y < 4; ++y)
    for (index_t x = 0; x < 4; ++x) {
      CHECK(half(y, x, 0) == square(3 - y, 3 - x, 0));
      CHECK(minus(y, x, 1) == three(y, x, 1));
      CHECK(three(y, x, 1) == square(3 - x, y, 1));
    }
}

TEST_CASE("rotate_nearest keeps the size and fills what comes from outside", "[image_rotate][differnet]") {
  // A 2 x 6 image turned by 90°: only the middle 2 x 2 block comes from inside; the rest is the fill.
  const float_image wide = numbered(2, 6, 1);
  const float_image turned = rotate_nearest(wide, 90.0, -1.0f);
  REQUIRE(turned.height() == 2);
  REQUIRE(turned.width() == 6);
  int filled = 0;
  for (index_t y = 0; y < 2; ++y)
    for (index_t x = 0; x < 6; ++x) filled += turned(y, x) == -1.0f ? 1 : 0;
  CHECK(filled == 8);
  CHECK(turned(0, 2) == wide(0, 3));  // about the centre (3, 1): out(y, x) samples in(x − 2, 3 − y)
  // A 45° turn of a constant image: the corners fall outside, the centre stays, every value is the
  // constant or the fill (nearest never mixes).
  const float_image flat(9, 9, 3, 0.5f);
  const float_image diagonal = rotate_nearest(flat, 45.0);
  CHECK(diagonal(0, 0, 0) == 0.0f);
  CHECK(diagonal(4, 4, 2) == 0.5f);
  for (std::size_t i = 0; i < diagonal.size(); ++i) CHECK((diagonal.data()[i] == 0.0f || diagonal.data()[i] == 0.5f));
  CHECK_THROWS_AS(rotate_nearest(float_image(), 10.0), error);
  CHECK_THROWS_AS(rotate_nearest(flat, std::numeric_limits<double>::infinity()), error);
}
