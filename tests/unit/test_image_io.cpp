#include <stb/stb_image_write.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "flowad/detail/random.hpp"
#include "flowad/io/image.hpp"
#include "support/handmade_files.hpp"
#include "support/jpeg_writer.hpp"
#include "support/temp_folder.hpp"

using namespace flowad;
using flowad::testing::encode_jpeg;
using flowad::testing::jpeg_writing;
using flowad::testing::read_bytes;
using flowad::testing::temp_folder;
using flowad::testing::write_bytes;

namespace {

byte_image random_image(index_t h, index_t w, index_t c, std::uint64_t seed) {
  detail::rng r(seed);
  byte_image img(h, w, c);
  for (std::size_t i = 0; i < img.size(); ++i) img.data()[i] = static_cast<std::uint8_t>(r.below(256));
  return img;
}

// A smooth colour gradient, which JPEG reproduces closely.
byte_image smooth_image(index_t h, index_t w) {
  byte_image img(h, w, 3);
  for (index_t y = 0; y < h; ++y)
    for (index_t x = 0; x < w; ++x) {
      img(y, x, 0) = static_cast<std::uint8_t>(40 + 4 * x);
      img(y, x, 1) = static_cast<std::uint8_t>(30 + 5 * y);
      img(y, x, 2) = static_cast<std::uint8_t>(200 - 2 * (x + y));
    }
  return img;
}

// Asserts that reading `path` throws flowad::error with `code`, naming the file and, when given, `reason`.
void check_read_fails(const std::filesystem::path& path, errc code, const std::string& reason = "") {
  try {
    (void)read_image(path);
    FAIL("reading " << path << " did not throw");
  } catch (const error& e) {
    INFO(e.what());
    CHECK(e.code() == code);
    CHECK_THAT(e.what(), Catch::Contains(path.filename().string()));
    if (!reason.empty()) CHECK_THAT(e.what(), Catch::Contains(reason));
  }
}

}  // namespace

TEST_CASE("PNG round-trips RGB, gray, gray+alpha and RGBA", "[io]") {
  const temp_folder dir;
  const byte_image rgb = random_image(17, 23, 3, 1);
  write_png(dir / "rgb.png", rgb);
  CHECK(read_image(dir / "rgb.png") == rgb);

  // Gray is replicated to R = G = B.
  const byte_image gray = random_image(9, 5, 1, 2);
  write_png(dir / "gray.png", gray);
  const byte_image gray_as_rgb = read_image(dir / "gray.png");
  REQUIRE(gray_as_rgb.channels() == 3);
  REQUIRE(gray_as_rgb.height() == 9);
  REQUIRE(gray_as_rgb.width() == 5);
  for (index_t y = 0; y < 9; ++y)
    for (index_t x = 0; x < 5; ++x)
      for (index_t c = 0; c < 3; ++c) CHECK(gray_as_rgb(y, x, c) == gray(y, x));

  // Alpha is dropped, not composited.
  const byte_image rgba = random_image(6, 7, 4, 3);
  write_png(dir / "rgba.png", rgba);
  const byte_image rgba_read = read_image(dir / "rgba.png");
  REQUIRE(rgba_read.channels() == 3);
  for (index_t y = 0; y < 6; ++y)
    for (index_t x = 0; x < 7; ++x)
      for (index_t c = 0; c < 3; ++c) CHECK(rgba_read(y, x, c) == rgba(y, x, c));

  const byte_image gray_alpha = random_image(4, 3, 2, 4);
  write_png(dir / "ga.png", gray_alpha);
  const byte_image ga_read = read_image(dir / "ga.png");
  for (index_t y = 0; y < 4; ++y)
    for (index_t x = 0; x < 3; ++x)
      for (index_t c = 0; c < 3; ++c) CHECK(ga_read(y, x, c) == gray_alpha(y, x, 0));
}

TEST_CASE("BMP and JPEG files written by stb are read; the format comes from the signature", "[io]") {
  const temp_folder dir;
  const byte_image rgb = random_image(13, 11, 3, 5);
  const std::string bmp = (dir / "image.BMP").string();
  REQUIRE(stbi_write_bmp(bmp.c_str(), 11, 13, 3, rgb.data()) != 0);
  CHECK(read_image(bmp) == rgb);

  const byte_image gray = random_image(8, 6, 1, 6);
  const std::string gray_bmp = (dir / "gray.bmp").string();
  REQUIRE(stbi_write_bmp(gray_bmp.c_str(), 6, 8, 1, gray.data()) != 0);
  const byte_image gray_read = read_image(gray_bmp);
  for (index_t y = 0; y < 8; ++y)
    for (index_t x = 0; x < 6; ++x)
      for (index_t c = 0; c < 3; ++c) CHECK(gray_read(y, x, c) == gray(y, x));

  const byte_image smooth = smooth_image(32, 40);
  const std::string jpg = (dir / "photo.Jpeg").string();
  REQUIRE(stbi_write_jpg(jpg.c_str(), 40, 32, 3, smooth.data(), 95) != 0);
  const byte_image decoded = read_image(jpg);
  REQUIRE(decoded.height() == 32);
  REQUIRE(decoded.width() == 40);
  REQUIRE(decoded.channels() == 3);
  double abs_error = 0.0;
  for (std::size_t i = 0; i < smooth.size(); ++i) abs_error += std::abs(int(decoded.data()[i]) - int(smooth.data()[i]));
  CHECK(abs_error / static_cast<double>(smooth.size()) < 3.0);

  // A gray JPEG decodes to equal channels.
  const std::string gray_jpg = (dir / "gray.jpg").string();
  byte_image gray_smooth(16, 16, 1);
  for (index_t y = 0; y < 16; ++y)
    for (index_t x = 0; x < 16; ++x) gray_smooth(y, x) = static_cast<std::uint8_t>(8 * x + 4 * y);
  REQUIRE(stbi_write_jpg(gray_jpg.c_str(), 16, 16, 1, gray_smooth.data(), 95) != 0);
  const byte_image gray_decoded = read_image(gray_jpg);
  for (index_t y = 0; y < 16; ++y)
    for (index_t x = 0; x < 16; ++x) {
      CHECK(gray_decoded(y, x, 0) == gray_decoded(y, x, 1));
      CHECK(gray_decoded(y, x, 0) == gray_decoded(y, x, 2));
    }

  // A PNG named .jpg is still a PNG.
  write_png(dir / "misnamed.jpg", rgb);
  CHECK(read_image(dir / "misnamed.jpg") == rgb);
}

namespace {
double mean_abs_difference(const byte_image& a, const byte_image& b) {
  REQUIRE(a.size() == b.size());
  double sum = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) sum += std::abs(int(a.data()[i]) - int(b.data()[i]));
  return sum / static_cast<double>(a.size());
}
}  // namespace

TEST_CASE("Progressive JPEGs and JPEGs with restart markers decode; CMYK and corrupt scans are refused by name",
          "[io]") {
  const temp_folder dir;
  const byte_image smooth = smooth_image(32, 40);
  jpeg_writing baseline;
  baseline.quality = 95;
  const byte_image reference = [&] {
    write_bytes(dir / "baseline.jpg", encode_jpeg(smooth, baseline));
    return read_image(dir / "baseline.jpg");
  }();
  CHECK(mean_abs_difference(reference, smooth) < 3.0);

  jpeg_writing progressive = baseline;
  progressive.progressive = true;
  write_bytes(dir / "progressive.jpg", encode_jpeg(smooth, progressive));
  CHECK(mean_abs_difference(read_image(dir / "progressive.jpg"), smooth) < 3.0);

  jpeg_writing restarts = baseline;
  restarts.restart_rows = 1;
  const std::vector<unsigned char> with_restarts = encode_jpeg(smooth, restarts);
  write_bytes(dir / "restarts.jpg", with_restarts);
  CHECK(read_image(dir / "restarts.jpg") == reference);  // restart markers change the coding, not the pixels

  // A mask read from a colour JPEG is its luminance, thresholded at 128.
  byte_image halves(16, 16, 3);
  for (index_t y = 0; y < 16; ++y)
    for (index_t x = 0; x < 16; ++x)
      for (index_t c = 0; c < 3; ++c) halves(y, x, c) = x < 8 ? 20 : 235;
  write_bytes(dir / "mask.jpg", encode_jpeg(halves, baseline));
  const byte_image mask = read_mask(dir / "mask.jpg");
  REQUIRE(mask.channels() == 1);
  CHECK(mask(4, 2) == 0);
  CHECK(mask(4, 13) == 1);

  byte_image cmyk(8, 8, 4, 100);
  jpeg_writing as_cmyk = baseline;
  as_cmyk.cmyk = true;
  write_bytes(dir / "cmyk.jpg", encode_jpeg(cmyk, as_cmyk));
  check_read_fails(dir / "cmyk.jpg", errc::bad_file, "cmyk.jpg\": a CMYK JPEG, which flowad does not read");

  // A restart marker overwritten by data: libjpeg-turbo warns of corrupt data and resynchronises; flowad refuses.
  std::vector<unsigned char> broken = with_restarts;
  std::size_t marker = 0;
  for (std::size_t i = broken.size() / 2; i + 1 < broken.size() && marker == 0; ++i)
    if (broken[i] == 0xFF && broken[i + 1] >= 0xD0 && broken[i + 1] <= 0xD7) marker = i;
  REQUIRE(marker != 0);
  broken[marker + 1] = 0xD0 + ((broken[marker + 1] - 0xD0 + 3) % 8);  // the wrong restart number
  write_bytes(dir / "broken.jpg", broken);
  check_read_fails(dir / "broken.jpg", errc::bad_file, "corrupt or truncated JPEG file; libjpeg-turbo: Corrupt JPEG data");
}

TEST_CASE("masks read as 0/1 at the midpoint threshold", "[io]") {
  const temp_folder dir;
  byte_image gray(2, 3, 1);
  const std::uint8_t levels[6] = {0, 255, 127, 128, 1, 200};
  for (int i = 0; i < 6; ++i) gray.data()[i] = levels[i];
  write_png(dir / "000_mask.png", gray);
  const byte_image mask = read_mask(dir / "000_mask.png");
  REQUIRE(mask.channels() == 1);
  const std::uint8_t expected[6] = {0, 1, 0, 1, 0, 1};
  for (int i = 0; i < 6; ++i) CHECK(mask.data()[i] == expected[i]);

  // write_mask_png writes 0/255 and reads back identically.
  write_mask_png(dir / "again.png", mask);
  CHECK(read_mask(dir / "again.png") == mask);
  const byte_image stored = read_image(dir / "again.png");
  CHECK(stored(0, 1, 0) == 255);
  CHECK(stored(0, 0, 0) == 0);
  CHECK_THROWS_AS(write_mask_png(dir / "bad.png", byte_image(2, 2, 3)), error);
}

TEST_CASE("missing, directory, empty, foreign, truncated and corrupt files throw flowad::error", "[io]") {
  const temp_folder dir;
  check_read_fails(dir / "does_not_exist.png", errc::io_error, "no such file");
  std::filesystem::create_directories(dir / "folder.png");
  check_read_fails(dir / "folder.png", errc::io_error, "directory");

  write_bytes(dir / "empty.png", {});
  check_read_fails(dir / "empty.png", errc::bad_file, "empty");

  detail::rng r(9);
  std::vector<unsigned char> noise(4096);
  for (auto& b : noise) b = static_cast<unsigned char>(r.below(256));
  noise[0] = 'x';  // not a signature by chance
  write_bytes(dir / "noise.png", noise);
  check_read_fails(dir / "noise.png", errc::bad_file, "signature");

  // PNG: cut anywhere, including inside the final CRC, or with a flipped bit.
  const byte_image rgb = random_image(20, 20, 3, 10);
  write_png(dir / "good.png", rgb);
  const std::vector<unsigned char> png = read_bytes(dir / "good.png");
  for (const std::size_t keep : {std::size_t{8}, std::size_t{20}, png.size() / 2, png.size() - 13, png.size() - 1}) {
    INFO("PNG cut to " << keep << " of " << png.size() << " bytes");
    write_bytes(dir / "cut.png", std::vector<unsigned char>(png.begin(), png.begin() + static_cast<long>(keep)));
    check_read_fails(dir / "cut.png", errc::bad_file, "truncated");
  }
  // A flipped bit in the image data (libspng finds the stream or its checksum broken) and in the header
  // (its CRC).
  std::vector<unsigned char> flipped = png;
  flipped[png.size() / 2] ^= 0x10;
  write_bytes(dir / "flipped.png", flipped);
  check_read_fails(dir / "flipped.png", errc::bad_file, "corrupt or truncated PNG file; libspng:");
  flipped = png;
  flipped[18] ^= 0x01;  // the width's low bytes, inside IHDR
  write_bytes(dir / "flipped-header.png", flipped);
  check_read_fails(dir / "flipped-header.png", errc::bad_file, "libspng: invalid chunk checksum");

  // libspng's own reason for a header it does not read: a bit depth of 3.
  write_bytes(dir / "depth3.png", testing::with_png_header(png, 20, 20, 3));
  check_read_fails(dir / "depth3.png", errc::bad_file, "libspng: invalid bit depth");

  // Image data of fewer rows than the header declares is refused; data of more rows is read as the header
  // says (the first rows: libspng, like libpng, ignores the rest).
  write_png(dir / "other.png", random_image(19, 20, 3, 11));
  write_bytes(dir / "lying.png", testing::with_png_header(read_bytes(dir / "other.png"), 20, 20, 8));
  check_read_fails(dir / "lying.png", errc::bad_file, "libspng: IDAT stream too short");
  const byte_image taller = random_image(21, 20, 3, 11);
  write_png(dir / "other.png", taller);
  write_bytes(dir / "lying.png", testing::with_png_header(read_bytes(dir / "other.png"), 20, 20, 8));
  const byte_image first_rows = read_image(dir / "lying.png");
  REQUIRE(first_rows.height() == 20);
  CHECK(std::memcmp(first_rows.data(), taller.data(), first_rows.size()) == 0);
  write_bytes(dir / "huge.png", testing::with_png_header(testing::png_file(1, 1, testing::png_gray, 8, {0}), 16384, 16384, 8));
  check_read_fails(dir / "huge.png", errc::bad_file, "16384x16384 pixels, more than the 134217728 flowad reads");

  // BMP: stb alone would pad a short pixel array with zeros.
  const std::string bmp_path = (dir / "good.bmp").string();
  REQUIRE(stbi_write_bmp(bmp_path.c_str(), 20, 20, 3, rgb.data()) != 0);
  const std::vector<unsigned char> bmp = read_bytes(bmp_path);
  for (const std::size_t keep : {std::size_t{10}, std::size_t{40}, bmp.size() / 2, bmp.size() - 1}) {
    INFO("BMP cut to " << keep << " of " << bmp.size() << " bytes");
    write_bytes(dir / "cut.bmp", std::vector<unsigned char>(bmp.begin(), bmp.begin() + static_cast<long>(keep)));
    check_read_fails(dir / "cut.bmp", errc::bad_file);
  }

  // JPEG: libjpeg-turbo reports a premature end as a warning, which flowad makes an error.
  const byte_image smooth = smooth_image(32, 40);
  const std::string jpg_path = (dir / "good.jpg").string();
  REQUIRE(stbi_write_jpg(jpg_path.c_str(), 40, 32, 3, smooth.data(), 90) != 0);
  const std::vector<unsigned char> jpg = read_bytes(jpg_path);
  for (const std::size_t keep : {std::size_t{3}, std::size_t{100}, jpg.size() / 2, jpg.size() - 2}) {
    INFO("JPEG cut to " << keep << " of " << jpg.size() << " bytes");
    write_bytes(dir / "cut.jpg", std::vector<unsigned char>(jpg.begin(), jpg.begin() + static_cast<long>(keep)));
    check_read_fails(dir / "cut.jpg", errc::bad_file, "corrupt or truncated JPEG file; libjpeg-turbo:");
  }

  // Masks share the checks.
  CHECK_THROWS_AS(read_mask(dir / "noise.png"), error);
  CHECK_THROWS_AS(read_mask(dir / "missing_mask.png"), error);
}

TEST_CASE("write_png reports unwritable paths and invalid images", "[io]") {
  const temp_folder dir;
  try {
    write_png(dir / "no_such_folder" / "out.png", byte_image(2, 2, 3));
    FAIL("expected an error");
  } catch (const error& e) {
    CHECK(e.code() == errc::io_error);
    CHECK_THAT(e.what(), Catch::Contains("out.png"));
  }
  CHECK_THROWS_AS(write_png(dir / "empty.png", byte_image()), error);
  CHECK_THROWS_AS(write_png(dir / "five.png", byte_image(2, 2, 5)), error);
  CHECK_FALSE(std::filesystem::exists(dir / "five.png"));
}

TEST_CASE("byte <-> float conversion", "[io]") {
  const byte_image bytes = random_image(5, 4, 3, 11);
  const float_image floats = to_float(bytes);
  CHECK(floats(2, 3, 1) == Approx(bytes(2, 3, 1) / 255.0f));
  CHECK(to_bytes(floats) == bytes);

  float_image out_of_range(1, 3, 1);
  out_of_range(0, 0) = -0.5f;
  out_of_range(0, 1) = 2.0f;
  out_of_range(0, 2) = 0.5f;
  const byte_image clamped = to_bytes(out_of_range);
  CHECK(clamped(0, 0) == 0);
  CHECK(clamped(0, 1) == 255);
  CHECK(clamped(0, 2) == 128);
  out_of_range(0, 2) = std::nanf("");
  CHECK_THROWS_AS(to_bytes(out_of_range), error);
  CHECK_THROWS_AS(byte_image(-1, 2, 3), error);
}
