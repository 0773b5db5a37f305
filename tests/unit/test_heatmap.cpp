#include <catch2/catch.hpp>
#include <cmath>
#include <limits>

#include "flowad/io/heatmap.hpp"
#include "support/temp_folder.hpp"

using namespace flowad;
using flowad::testing::temp_folder;

namespace {

byte_image gray_rgb(index_t h, index_t w, std::uint8_t level) {
  byte_image img(h, w, 3);
  for (std::size_t i = 0; i < img.size(); ++i) img.data()[i] = level;
  return img;
}

tensor constant_map(index_t h, index_t w, float value) {
  tensor t({1, 1, h, w});
  t.fill(value);
  return t;
}

bool pixel_is(const byte_image& img, index_t y, index_t x, const std::array<std::uint8_t, 3>& rgb) {
  return img(y, x, 0) == rgb[0] && img(y, x, 1) == rgb[1] && img(y, x, 2) == rgb[2];
}

}  // namespace

TEST_CASE("Turbo runs from dark blue through green to dark red", "[io]") {
  const auto low = turbo_colour(0.0f), mid = turbo_colour(0.5f), high = turbo_colour(1.0f);
  CHECK(low[2] > low[0]);  // blue end
  CHECK(mid[1] > mid[0]);  // green middle
  CHECK(mid[1] > mid[2]);
  CHECK(high[0] > high[1]);  // red end
  CHECK(high[0] > high[2]);
  CHECK(int(low[0]) + low[1] + low[2] < 200);  // both ends are dark
  CHECK(int(high[0]) + high[1] + high[2] < 200);
  CHECK(turbo_colour(-3.0f) == low);
  CHECK(turbo_colour(7.0f) == high);
  CHECK(turbo_colour(std::nanf("")) == low);
  // Entries 0, 85, 170 and 255 of Mikhailov's published 256-entry table, and the midpoint of 127/128.
  const auto near = [](const std::array<std::uint8_t, 3>& got, int r, int g, int b) {
    INFO(int(got[0]) << ", " << int(got[1]) << ", " << int(got[2]));
    CHECK(std::abs(got[0] - r) <= 1);
    CHECK(std::abs(got[1] - g) <= 1);
    CHECK(std::abs(got[2] - b) <= 1);
  };
  near(turbo_colour(0.0f), 48, 18, 59);
  near(turbo_colour(85.0f / 255.0f), 26, 228, 182);
  near(turbo_colour(170.0f / 255.0f), 250, 186, 57);
  near(turbo_colour(1.0f), 122, 4, 3);
  near(turbo_colour(0.5f), 163, 253, 60);
}

TEST_CASE("heatmap overlay uses the caller's fixed range", "[io]") {
  const byte_image image = gray_rgb(6, 8, 100);
  heatmap_options opaque;
  opaque.opacity = 1.0f;
  opaque.lo = 0.0f;
  opaque.hi = 2.0f;
  // A constant 0.5 map is shown at t = 0.25 of the range, not stretched to the map's own extremes.
  const byte_image quarter = render_heatmap(image, constant_map(6, 8, 0.5f), opaque);
  for (index_t y = 0; y < 6; ++y)
    for (index_t x = 0; x < 8; ++x) CHECK(pixel_is(quarter, y, x, turbo_colour(0.25f)));

  // Values outside [lo, hi] clamp, infinities included.
  tensor map = constant_map(6, 8, 0.0f);
  map(0, 0, 0, 0) = 5.0f;
  map(0, 0, 0, 1) = -5.0f;
  map(0, 0, 5, 7) = std::numeric_limits<float>::infinity();
  const byte_image clamped = render_heatmap(image, map, opaque);
  CHECK(pixel_is(clamped, 0, 0, turbo_colour(1.0f)));
  CHECK(pixel_is(clamped, 0, 1, turbo_colour(0.0f)));
  CHECK(pixel_is(clamped, 5, 7, turbo_colour(1.0f)));

  // Opacity blends: 0 leaves the image, 1/2 averages.
  heatmap_options transparent = opaque;
  transparent.opacity = 0.0f;
  CHECK(render_heatmap(image, map, transparent) == image);
  heatmap_options half = opaque;
  half.opacity = 0.5f;
  const byte_image blended = render_heatmap(image, constant_map(6, 8, 2.0f), half);
  const auto hot = turbo_colour(1.0f);
  for (int c = 0; c < 3; ++c) CHECK(std::abs(int(blended(3, 3, c)) - (100 + hot[std::size_t(c)]) / 2) <= 1);
}

TEST_CASE("heatmap upsamples a smaller map to the image", "[io]") {
  const byte_image image = gray_rgb(16, 16, 50);
  tensor map({1, 1, 2, 2});
  map(0, 0, 0, 0) = 0.0f;
  map(0, 0, 0, 1) = 1.0f;
  map(0, 0, 1, 0) = 0.0f;
  map(0, 0, 1, 1) = 1.0f;
  heatmap_options opaque;
  opaque.opacity = 1.0f;
  const byte_image out = render_heatmap(image, map, opaque);
  REQUIRE(out.height() == 16);
  REQUIRE(out.width() == 16);
  // Bilinear across x: the left edge is the cold end, the right edge the hot end, the middle between.
  CHECK(pixel_is(out, 7, 0, turbo_colour(0.0f)));
  CHECK(pixel_is(out, 7, 15, turbo_colour(1.0f)));
  CHECK(pixel_is(out, 3, 8, turbo_colour(0.5f + 0.5f / 8.0f)));  // centre of pixel 8 = 8.5 / 16 -> t = 0.5625
}

TEST_CASE("heatmap draws the ground-truth contour in its colour", "[io]") {
  const byte_image image = gray_rgb(10, 10, 0);
  byte_image mask(10, 10, 1);
  for (index_t y = 3; y < 7; ++y)
    for (index_t x = 2; x < 8; ++x) mask(y, x) = 1;
  heatmap_options options;
  options.contour_colour = {0, 255, 0};
  const byte_image out = render_heatmap(image, constant_map(10, 10, 0.0f), options, &mask);
  for (index_t y = 0; y < 10; ++y)
    for (index_t x = 0; x < 10; ++x) {
      const bool inside = y >= 3 && y < 7 && x >= 2 && x < 8;
      const bool edge = inside && (y == 3 || y == 6 || x == 2 || x == 7);
      INFO(y << ", " << x);
      CHECK(pixel_is(out, y, x, {0, 255, 0}) == edge);
    }

  // Thicker contours reach further in; masks of another size are resized to the image.
  byte_image big(10, 10, 1);
  for (index_t y = 1; y < 9; ++y)
    for (index_t x = 1; x < 9; ++x) big(y, x) = 1;
  options.contour_thickness = 2;
  const byte_image thick = render_heatmap(image, constant_map(10, 10, 0.0f), options, &big);
  CHECK(pixel_is(thick, 2, 2, {0, 255, 0}));  // 2 pixels from the background
  CHECK(pixel_is(thick, 5, 2, {0, 255, 0}));
  CHECK_FALSE(pixel_is(thick, 3, 3, {0, 255, 0}));  // 3 pixels away
  CHECK_FALSE(pixel_is(thick, 5, 5, {0, 255, 0}));
  CHECK_FALSE(pixel_is(thick, 0, 0, {0, 255, 0}));  // outside the mask
  byte_image small_mask(5, 5, 1);
  small_mask(2, 2) = 1;
  const byte_image from_small = render_heatmap(image, constant_map(10, 10, 0.0f), options, &small_mask);
  CHECK(pixel_is(from_small, 4, 4, {0, 255, 0}));
  CHECK(pixel_is(from_small, 5, 5, {0, 255, 0}));
  CHECK_FALSE(pixel_is(from_small, 3, 3, {0, 255, 0}));
}

TEST_CASE("heatmap and raw map PNGs are written with a fixed normalisation", "[io]") {
  const temp_folder dir;
  tensor map({1, 1, 3, 4});
  for (index_t i = 0; i < 12; ++i) map.data()[i] = float(i);
  const byte_image gray = map_to_gray(map, 2.0f, 10.0f);
  REQUIRE(gray.channels() == 1);
  CHECK(gray(0, 0) == 0);                                                          // 0 below lo
  CHECK(gray(0, 3) == static_cast<std::uint8_t>(std::lround(255.0 * 1.0 / 8.0)));  // 3 -> 1/8
  CHECK(gray(2, 3) == 255);                                                        // 11 above hi
  write_map_png(dir / "map.png", map, 2.0f, 10.0f);
  const byte_image stored = read_image(dir / "map.png");
  for (index_t y = 0; y < 3; ++y)
    for (index_t x = 0; x < 4; ++x) CHECK(stored(y, x, 0) == gray(y, x));

  const byte_image image = gray_rgb(3, 4, 80);
  write_heatmap_png(dir / "overlay.png", image, map);
  CHECK(read_image(dir / "overlay.png") == render_heatmap(image, map));

  // A sample of an N x 1 x H x W batch.
  tensor batch({2, 1, 3, 4});
  for (index_t i = 0; i < 24; ++i) batch.data()[i] = float(i % 12);
  CHECK(map_to_gray(batch.view().batch(1, 1), 2.0f, 10.0f) == gray);
}

TEST_CASE("heatmap rejects bad arguments", "[io]") {
  const byte_image image = gray_rgb(4, 4, 0);
  const tensor map = constant_map(4, 4, 0.0f);
  heatmap_options options;
  options.lo = 1.0f;
  options.hi = 1.0f;
  CHECK_THROWS_AS(render_heatmap(image, map, options), error);
  options.hi = std::numeric_limits<float>::infinity();
  CHECK_THROWS_AS(render_heatmap(image, map, options), error);
  options = {};
  options.opacity = 1.5f;
  CHECK_THROWS_AS(render_heatmap(image, map, options), error);
  options = {};
  options.contour_thickness = 0;
  CHECK_THROWS_AS(render_heatmap(image, map, options), error);

  CHECK_THROWS_AS(render_heatmap(byte_image(4, 4, 1), map), error);
  CHECK_THROWS_AS(render_heatmap(image, tensor({1, 2, 4, 4})), error);
  CHECK_THROWS_AS(render_heatmap(image, tensor({2, 1, 4, 4})), error);
  const byte_image rgb_mask(4, 4, 3);
  CHECK_THROWS_AS(render_heatmap(image, map, {}, &rgb_mask), error);
  tensor with_nan = constant_map(4, 4, 0.0f);
  with_nan(0, 0, 2, 1) = std::nanf("");
  try {
    (void)render_heatmap(image, with_nan);
    FAIL("expected an error");
  } catch (const error& e) {
    CHECK(e.code() == errc::non_finite);
    CHECK_THAT(e.what(), Catch::Contains("(2, 1)"));
  }
  CHECK_THROWS_AS(map_to_gray(map, 2.0f, 1.0f), error);
}
