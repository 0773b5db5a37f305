#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>

#include "flowad/detail/random.hpp"
#include "flowad/io/image_resize.hpp"
#include "flowad/io/preprocess.hpp"
#include "support/temp_folder.hpp"

using namespace flowad;
using flowad::testing::temp_folder;

namespace {

float_image random_float_image(index_t h, index_t w, index_t c, std::uint64_t seed) {
  detail::rng r(seed);
  float_image img(h, w, c);
  for (std::size_t i = 0; i < img.size(); ++i) img.data()[i] = static_cast<float>(r.uniform());
  return img;
}

float_image checkerboard(index_t size) {
  float_image img(size, size, 1);
  for (index_t y = 0; y < size; ++y)
    for (index_t x = 0; x < size; ++x) img(y, x) = static_cast<float>((x + y) % 2);
  return img;
}

double max_abs_difference(const float_image& a, const float_image& b) {
  REQUIRE(a.height() == b.height());
  REQUIRE(a.width() == b.width());
  REQUIRE(a.channels() == b.channels());
  double m = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(double(a.data()[i]) - double(b.data()[i])));
  return m;
}

// Textbook bilinear interpolation, align_corners = false, edge clamping (PyTorch's formula).
float_image naive_bilinear(const float_image& src, index_t h, index_t w) {
  float_image out(h, w, src.channels());
  const auto source = [](index_t i, index_t in, index_t out_size, index_t& i0, index_t& i1, double& f) {
    double s = (double(i) + 0.5) * double(in) / double(out_size) - 0.5;
    s = std::min(std::max(s, 0.0), double(in - 1));
    i0 = index_t(std::floor(s));
    i1 = std::min(i0 + 1, in - 1);
    f = s - double(i0);
  };
  for (index_t y = 0; y < h; ++y)
    for (index_t x = 0; x < w; ++x) {
      index_t y0, y1, x0, x1;
      double fy, fx;
      source(y, src.height(), h, y0, y1, fy);
      source(x, src.width(), w, x0, x1, fx);
      for (index_t c = 0; c < src.channels(); ++c)
        out(y, x, c) = float((1 - fy) * ((1 - fx) * src(y0, x0, c) + fx * src(y0, x1, c)) +
                             fy * ((1 - fx) * src(y1, x0, c) + fx * src(y1, x1, c)));
    }
  return out;
}

// The antialiased filter straight from its definition: a 2-D sum over every input pixel of
// tri((j + 0.5 - centre) / s) weights, normalised per axis.
float_image naive_antialiased(const float_image& src, index_t h, index_t w) {
  const auto weights = [](index_t i, index_t in, index_t out_size) {
    const double scale = double(in) / double(out_size), s = std::max(scale, 1.0);
    const double centre = (double(i) + 0.5) * scale;
    std::vector<double> k(static_cast<std::size_t>(in));
    double total = 0.0;
    for (index_t j = 0; j < in; ++j) {
      k[std::size_t(j)] = std::max(0.0, 1.0 - std::abs((double(j) + 0.5 - centre) / s));
      total += k[std::size_t(j)];
    }
    for (double& v : k) v /= total;
    return k;
  };
  float_image out(h, w, src.channels());
  for (index_t y = 0; y < h; ++y) {
    const std::vector<double> ky = weights(y, src.height(), h);
    for (index_t x = 0; x < w; ++x) {
      const std::vector<double> kx = weights(x, src.width(), w);
      for (index_t c = 0; c < src.channels(); ++c) {
        double sum = 0.0;
        for (index_t yy = 0; yy < src.height(); ++yy)
          for (index_t xx = 0; xx < src.width(); ++xx)
            sum += ky[std::size_t(yy)] * kx[std::size_t(xx)] * src(yy, xx, c);
        out(y, x, c) = float(sum);
      }
    }
  }
  return out;
}

}  // namespace

TEST_CASE("upsampling a 2x2 image gives the exact bilinear values", "[io]") {
  float_image src(2, 2, 1);
  src(0, 0) = 0.0f;
  src(0, 1) = 1.0f;
  src(1, 0) = 2.0f;
  src(1, 1) = 3.0f;
  // Output centres sit at input coordinates -0.25, 0.25, 0.75, 1.25 (clamped): weights of the
  // second pixel 0, 1/4, 3/4, 1 on each axis, so value = wx + 2 wy.
  const float expected[4][4] = {
      {0.0f, 0.25f, 0.75f, 1.0f}, {0.5f, 0.75f, 1.25f, 1.5f}, {1.5f, 1.75f, 2.25f, 2.5f}, {2.0f, 2.25f, 2.75f, 3.0f}};
  for (const bool antialias : {true, false}) {
    const float_image up = resize_bilinear(src, 4, 4, antialias);
    for (index_t y = 0; y < 4; ++y)
      for (index_t x = 0; x < 4; ++x) CHECK(up(y, x) == Approx(expected[y][x]).margin(1e-6));
  }
}

TEST_CASE("bilinear resize matches naive references", "[io]") {
  const float_image src = random_float_image(9, 7, 3, 1);
  for (const auto& [h, w] : {std::pair<index_t, index_t>{20, 15}, {9, 13}, {4, 3}, {5, 11}, {2, 7}, {1, 1}, {9, 7}}) {
    INFO(h << "x" << w);
    CHECK(max_abs_difference(resize_bilinear(src, h, w, false), naive_bilinear(src, h, w)) < 1e-5);
    CHECK(max_abs_difference(resize_bilinear(src, h, w, true), naive_antialiased(src, h, w)) < 1e-5);
  }
  // Enlarging, antialias changes nothing.
  CHECK(max_abs_difference(resize_bilinear(src, 20, 15, true), resize_bilinear(src, 20, 15, false)) < 1e-6);
}

TEST_CASE("antialiased bilinear matches PIL's Image.resize(BILINEAR)", "[io]") {
  // Pattern ((7x + 13y) mod 11) / 10 in PIL mode "F"; the expected values were produced by
  // Pillow 9.4 (Debian bookworm): Image.fromarray(a, "F").resize((w, h), Image.BILINEAR).
  const auto pattern = [](index_t h, index_t w) {
    float_image img(h, w, 1);
    for (index_t y = 0; y < h; ++y)
      for (index_t x = 0; x < w; ++x) img(y, x) = float((x * 7 + y * 13) % 11) / 10.0f;
    return img;
  };
  const std::vector<float> pil_9x7_to_4x3 = {0.4357143f, 0.5445378f, 0.4544898f, 0.4405923f, 0.4991392f, 0.5468641f,
                                             0.5580140f, 0.4731707f, 0.5512195f, 0.5234694f, 0.4376471f, 0.4681633f};
  const std::vector<float> pil_9x7_to_5x11 = {
      0.1142857f, 0.3967532f, 0.7064934f, 0.5019481f, 0.4688312f, 0.5642857f, 0.6597403f, 0.6051948f,
      0.3506494f, 0.3961039f, 0.4642857f, 0.4250000f, 0.3369318f, 0.2761363f, 0.5903409f, 0.5795454f,
      0.3250000f, 0.5517045f, 0.6659091f, 0.6301137f, 0.4068182f, 0.2250000f, 0.8000000f, 0.6181818f,
      0.3871658f, 0.2973262f, 0.4192513f, 0.7000000f, 0.4454545f, 0.4203209f, 0.7010695f, 0.6641712f,
      0.6000000f, 0.4187500f, 0.5806818f, 0.7386364f, 0.4840909f, 0.3545454f, 0.3187500f, 0.5454545f,
      0.5659091f, 0.3113636f, 0.5443182f, 0.7687500f, 0.3857143f, 0.4538961f, 0.5493506f, 0.6448052f,
      0.5402598f, 0.2857143f, 0.3811688f, 0.4766234f, 0.5720779f, 0.4103896f, 0.2642857f};
  const std::vector<float> pil_6x10_to_3x4 = {0.4500000f, 0.5502857f, 0.4725714f, 0.5142857f, 0.4250000f, 0.5240000f,
                                              0.4840000f, 0.4687500f, 0.5428572f, 0.5040000f, 0.5142857f, 0.4642857f};
  const auto check = [](const float_image& got, const std::vector<float>& expected) {
    REQUIRE(got.size() == expected.size());
    for (std::size_t i = 0; i < expected.size(); ++i) CHECK(got.data()[i] == Approx(expected[i]).margin(2e-6));
  };
  check(resize_bilinear(pattern(9, 7), 4, 3), pil_9x7_to_4x3);
  check(resize_bilinear(pattern(9, 7), 5, 11), pil_9x7_to_5x11);
  check(resize_bilinear(pattern(6, 10), 3, 4), pil_6x10_to_3x4);
}

TEST_CASE("constant images stay constant", "[io]") {
  float_image constant(13, 17, 3);
  for (std::size_t i = 0; i < constant.size(); ++i) constant.data()[i] = 0.3f + 0.2f * float(i % 3);
  for (const auto& [h, w] : {std::pair<index_t, index_t>{5, 4}, {40, 3}, {1, 50}, {13, 17}})
    for (const bool antialias : {true, false}) {
      const float_image out = resize_bilinear(constant, h, w, antialias);
      for (index_t y = 0; y < h; ++y)
        for (index_t x = 0; x < w; ++x)
          for (index_t c = 0; c < 3; ++c) CHECK(out(y, x, c) == Approx(0.3f + 0.2f * float(c)).margin(1e-6));
    }
}

TEST_CASE("antialiasing removes checkerboard aliasing when shrinking", "[io]") {
  const float_image board = checkerboard(48);
  const auto deviation_from_half = [](const float_image& img) {
    double lo = 1.0, hi = 0.0;
    for (std::size_t i = 0; i < img.size(); ++i) {
      const double d = std::abs(img.data()[i] - 0.5);
      lo = std::min(lo, d);
      hi = std::max(hi, d);
    }
    return std::pair<double, double>{lo, hi};
  };
  // Shrinking by 4 or 3 with the widened triangle averages the board to gray.
  CHECK(deviation_from_half(resize_bilinear(board, 12, 12, true)).second < 0.01);
  CHECK(deviation_from_half(resize_bilinear(board, 16, 16, true)).second < 0.01);
  // Without antialiasing, shrinking by 3 samples pixel centres: a full-contrast board of the wrong
  // frequency. (Shrinking by an even factor samples between two pixels and averages them by luck.)
  const float_image aliased = resize_bilinear(board, 16, 16, false);
  CHECK(deviation_from_half(aliased).first > 0.49);
  CHECK(aliased(0, 0) != aliased(0, 1));
}

TEST_CASE("nearest resize copies pixels with half-pixel centres", "[io]") {
  byte_image src(2, 3, 1);
  for (index_t i = 0; i < 6; ++i) src.data()[i] = static_cast<std::uint8_t>(10 * i);
  const byte_image up = resize_nearest(src, 4, 6);
  for (index_t y = 0; y < 4; ++y)
    for (index_t x = 0; x < 6; ++x) CHECK(up(y, x) == src(y / 2, x / 2));

  byte_image row(1, 6, 1);
  for (index_t i = 0; i < 6; ++i) row.data()[i] = static_cast<std::uint8_t>(i);
  const byte_image down = resize_nearest(row, 1, 3);  // centres 1, 3, 5
  CHECK(down(0, 0) == 1);
  CHECK(down(0, 1) == 3);
  CHECK(down(0, 2) == 5);
  const byte_image odd = resize_nearest(row, 1, 4);  // centres 0.75, 2.25, 3.75, 5.25
  CHECK(odd(0, 0) == 0);
  CHECK(odd(0, 1) == 2);
  CHECK(odd(0, 2) == 3);
  CHECK(odd(0, 3) == 5);

  CHECK_THROWS_AS(resize_nearest(byte_image(), 2, 2), error);
  CHECK_THROWS_AS(resize_nearest(src, 0, 2), error);
  CHECK_THROWS_AS(resize_bilinear(float_image(), 2, 2), error);
  CHECK_THROWS_AS(resize_bilinear(random_float_image(2, 2, 1, 3), 2, -1), error);
}

TEST_CASE("ImageNet normalisation writes NCHW samples", "[io]") {
  float_image rgb(2, 3, 3);
  for (index_t y = 0; y < 2; ++y)
    for (index_t x = 0; x < 3; ++x) {
      rgb(y, x, 0) = 0.485f;
      rgb(y, x, 1) = 1.0f;
      rgb(y, x, 2) = 0.0f;
    }
  rgb(1, 2, 0) = 0.714f;
  const tensor t = normalize_images({rgb, rgb});
  REQUIRE(t.shape() == shape4{2, 3, 2, 3});
  CHECK(t.layout() == layout::nchw);
  CHECK(t(1, 0, 0, 0) == Approx(0.0f).margin(1e-6));
  CHECK(t(1, 0, 1, 2) == Approx((0.714f - 0.485f) / 0.229f));
  CHECK(t(0, 1, 0, 1) == Approx((1.0f - 0.456f) / 0.224f));
  CHECK(t(0, 2, 1, 1) == Approx(-0.406f / 0.225f));

  // Any destination layout.
  tensor nhwc({1, 3, 2, 3}, layout::nhwc);
  write_normalized(rgb, nhwc.view(), 0);
  CHECK(nhwc(0, 0, 1, 2) == Approx(t(0, 0, 1, 2)));

  CHECK_THROWS_AS(normalize_images({}), error);
  CHECK_THROWS_AS(normalize_images({rgb, float_image(2, 4, 3)}), error);
  CHECK_THROWS_AS(write_normalized(float_image(2, 3, 1), nhwc.view(), 0), error);
  CHECK_THROWS_AS(write_normalized(rgb, nhwc.view(), 1), error);

  // From 8-bit pixels straight: the same floats as through to_float, every byte value.
  byte_image bytes(16, 16, 3);
  for (std::size_t i = 0; i < bytes.size(); ++i) bytes.data()[i] = static_cast<std::uint8_t>(i * 7 % 256);
  tensor direct({1, 3, 16, 16}, layout::nchw), through_float({1, 3, 16, 16}, layout::nchw);
  write_normalized(bytes, direct.view(), 0);
  write_normalized(to_float(bytes), through_float.view(), 0);
  CHECK(std::equal(direct.data(), direct.data() + direct.numel(), through_float.data()));
  CHECK_THROWS_AS(write_normalized(byte_image(2, 3, 1), nhwc.view(), 0), error);
  CHECK_THROWS_AS(write_normalized(byte_image(2, 4, 3), nhwc.view(), 0), error);
  CHECK_THROWS_AS(write_normalized(rgb, nhwc.view(), 0, channel_normalization{{0, 0, 0}, {1, 0, 1}}), error);
}

TEST_CASE("load_image_batch reads, resizes and normalises files in order", "[io]") {
  const temp_folder dir;
  std::vector<std::filesystem::path> paths;
  std::vector<float_image> expected;
  for (int i = 0; i < 5; ++i) {
    detail::rng r(100 + std::uint64_t(i));
    byte_image img(20 + 3 * i, 30 - 2 * i, 3);
    for (std::size_t k = 0; k < img.size(); ++k) img.data()[k] = static_cast<std::uint8_t>(r.below(256));
    paths.push_back(dir / ("img" + std::to_string(i) + ".png"));
    write_png(paths.back(), img);
    expected.push_back(resize_bilinear(to_float(img), 8, 12, true));
  }
  const tensor batch = load_image_batch(paths, 8, 12);
  REQUIRE(batch.shape() == shape4{5, 3, 8, 12});
  const tensor reference = normalize_images(expected);
  for (index_t i = 0; i < batch.numel(); ++i) CHECK(batch.data()[i] == reference.data()[i]);

  // The first failing path in list order is reported, whatever thread saw it first.
  std::vector<std::filesystem::path> broken = paths;
  broken[1] = dir / "missing_one.png";
  broken[3] = dir / "missing_three.png";
  try {
    (void)load_image_batch(broken, 8, 12);
    FAIL("expected an error");
  } catch (const error& e) {
    CHECK(e.code() == errc::io_error);
    CHECK_THAT(e.what(), Catch::Contains("missing_one.png"));
  }
  CHECK_THROWS_AS(load_image_batch({}, 8, 8), error);
  CHECK_THROWS_AS(load_image_batch(paths, 0, 8), error);
}

TEST_CASE("load_mask_batch resizes masks with nearest and treats no path as normal", "[io]") {
  const temp_folder dir;
  byte_image mask(4, 4, 1);
  mask(1, 2) = 1;
  mask(3, 3) = 1;
  write_mask_png(dir / "m_mask.png", mask);
  const tensor masks = load_mask_batch({std::filesystem::path(), dir / "m_mask.png"}, 8, 8);
  REQUIRE(masks.shape() == shape4{2, 1, 8, 8});
  for (index_t y = 0; y < 8; ++y)
    for (index_t x = 0; x < 8; ++x) {
      CHECK(masks(0, 0, y, x) == 0.0f);
      CHECK(masks(1, 0, y, x) == (mask(y / 2, x / 2) ? 1.0f : 0.0f));
    }
  CHECK_THROWS_AS(load_mask_batch({dir / "absent_mask.png"}, 8, 8), error);
}
