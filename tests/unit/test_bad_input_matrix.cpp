// The bad-input matrix of the API (docs/reliability.md): one table per kind of input, each row an
// input a user can plausibly hand the library and what must happen, the flowad::errc and a part of the
// message that says what was wrong; or, for inputs that are odd but valid (gray, 16-bit, RGBA, 1 x 1
// images), that they are read and scored to finite values. The command line's matrix is in
// tests/cli/bad_input_matrix.cmake. Cases tested elsewhere are not repeated here; the tables name
// where they are.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "flowad/data/fabric.hpp"
#include "flowad/detector.hpp"
#include "flowad/detectors/msflow.hpp"
#include "flowad/io/dataset.hpp"
#include "flowad/io/image.hpp"
#include "flowad/io/model_file.hpp"
#include "flowad/io/npy.hpp"
#include "flowad/pipeline/feature_model.hpp"
#include "flowad/pipeline/inspector.hpp"
#include "support/handmade_files.hpp"
#include "support/model_file_entries.hpp"
#include "support/synthetic_images.hpp"
#include "support/temp_folder.hpp"
#include "support/tiny_detectors.hpp"

using namespace flowad;
using namespace flowad::testing;
namespace fs = std::filesystem;

namespace {

struct bad_input {
  const char* name;
  errc code;
  const char* message;  // must be part of what()
  std::function<void()> call;
};

void check_matrix(const std::vector<bad_input>& cases) {
  for (const bad_input& c : cases) {
    DYNAMIC_SECTION(c.name) {
      try {
        c.call();
        FAIL("no error: expected " << to_string(c.code) << " saying '" << c.message << "'");
      } catch (const error& e) {
        INFO(e.what());
        CHECK(e.code() == c.code);
        CHECK_THAT(e.what(), Catch::Contains(c.message));
      }
    }
  }
}

// A small MS-Flow fitted on feature maps of two scales, 4x4x4 and 4x2x2.
const std::vector<scale_shape> feature_scales = {{4, 4, 4}, {4, 2, 2}};

tensor features(const scale_shape& s, index_t n, float value_scale = 1.0f) {
  tensor t({n, s.channels, s.height, s.width});
  for (index_t i = 0; i < t.numel(); ++i)
    t.data()[i] = value_scale * static_cast<float>(std::sin(0.41 * static_cast<double>(i)) + 0.05 * static_cast<double>(i % 7));
  return t;
}

const detector& fitted_feature_model() {
  static const std::unique_ptr<detector> model = [] {
    const tensor a = features(feature_scales[0], 8), b = features(feature_scales[1], 8);
    feature_model_options o;
    o.settings = {{"groups", "2"}, {"hidden", "4"}, {"blocks", "1"}, {"train.epochs", "1"}};
    return fit_feature_model({a.cview(), b.cview()}, o);
  }();
  return *model;
}

// A small MS-Flow on the filter bank's first level, 16 x 16 input, with a threshold.
pipeline_config tiny_pipeline() {
  pipeline_config c = pipeline_config::recommended("filterbank");
  c.height = c.width = 16;
  c.levels = {"level1"};
  c.settings = {{"groups", "2"}, {"hidden", "4"}, {"blocks", "1"}, {"train.epochs", "1"}};
  return c;
}

inspector_fit_options holdout_half() {
  inspector_fit_options o;
  o.calibration = calibration_method::holdout;
  o.holdout = 0.5;
  return o;
}

const inspector& fitted_inspector() {
  static const inspector model = [] {
    inspector m(tiny_pipeline());
    m.fit(fabric(32, 32, 4, 1, 3).train, holdout_half());
    return m;
  }();
  return model;
}

// The two scales of the feature model, n samples each, with `change` applied to scale `scale`.
void score_changed(index_t n, std::size_t scale, const std::function<void(tensor&)>& change) {
  tensor a = features(feature_scales[0], n), b = features(feature_scales[1], n);
  change(scale == 0 ? a : b);
  fitted_feature_model().score({a.cview(), b.cview()});
}

void set_element(tensor& t, index_t i, float value) { t.data()[i] = value; }

bytes png_of(const byte_image& image) {
  temp_folder dir;
  write_png(dir / "x.png", image);
  return read_bytes(dir / "x.png");
}

// A PNG whose header declares height x width but whose pixel data is one gray row of one pixel.
bytes png_declaring(std::uint32_t height, std::uint32_t width) {
  return with_png_header(png_file(1, 1, png_gray, 8, {7}), height, width, 8);
}

}  // namespace

TEST_CASE("bad-input matrix: feature maps", "[bad_input]") {
  const detector& model = fitted_feature_model();
  // Elsewhere: every detector's shape and NaN checks in its own test (e.g. test_fastflow.cpp "rejects
  // bad input"), and scoring before fit.
  check_matrix({
      {"a scale missing", errc::shape_mismatch, "1 scales but the model has 2 (4x4x4,4x2x2)",
       [&] {
         const tensor a = features(feature_scales[0], 2);
         model.score({a.cview()});
       }},
      {"features of another extractor (other channels)", errc::shape_mismatch,
       "scale 0 has shape 2x64x4x4 but the model expects Nx4x4x4",
       [&] { score_changed(2, 0, [](tensor& t) { t = features({64, 4, 4}, 2); }); }},
      {"features of another input size", errc::shape_mismatch, "scale 1 has shape 2x4x3x2 but the model expects Nx4x2x2",
       [&] { score_changed(2, 1, [](tensor& t) { t = features({4, 3, 2}, 2); }); }},
      {"scales with different sample counts", errc::shape_mismatch, "scale 1 has 3 samples but scale 0 has 2",
       [&] { score_changed(2, 1, [](tensor& t) { t = features({4, 2, 2}, 3); }); }},
      {"no samples", errc::empty_input, "scale 0 is empty",
       [&] { score_changed(0, 0, [](tensor&) {}); }},
      {"NaN", errc::non_finite, "NaN", [&] { score_changed(2, 1, [](tensor& t) { set_element(t, 5, std::nanf("")); }); }},
      {"+Inf", errc::non_finite, "Inf",
       [&] { score_changed(2, 0, [](tensor& t) { set_element(t, 0, std::numeric_limits<float>::infinity()); }); }},
      {"a value beyond max_feature_magnitude", errc::invalid_argument,
       "features scale 1 holds 1e+30 at (n=1, c=0, h=0, w=1) of shape 2x4x2x2, beyond the ±1e+12 accepted",
       [&] { score_changed(2, 1, [](tensor& t) { t(1, 0, 0, 1) = 1e30f; }); }},
      {"-Inf when fitting", errc::non_finite, "Inf",
       [&] {
         tensor a = features(feature_scales[0], 4), b = features(feature_scales[1], 4);
         set_element(b, 3, -std::numeric_limits<float>::infinity());
         feature_model_options o;
         o.settings = {{"groups", "2"}, {"hidden", "4"}, {"blocks", "1"}, {"train.epochs", "1"}};
         fit_feature_model({a.cview(), b.cview()}, o);
       }},
      {"a map size of one side only", errc::invalid_argument, "map size must be both in [1, ",
       [&] {
         const tensor a = features(feature_scales[0], 1), b = features(feature_scales[1], 1);
         score_options so;
         so.map_height = 16;
         model.score({a.cview(), b.cview()}, so);
       }},
      {"cell offsets for fewer scales than the model has", errc::invalid_argument, "cell_offsets has 1",
       [&] {
         const tensor a = features(feature_scales[0], 1), b = features(feature_scales[1], 1);
         score_options so;
         so.cell_offsets = {0.0};
         model.score({a.cview(), b.cview()}, so);
       }},
      {"a NaN cell offset", errc::invalid_argument, "cell_offsets must be finite",
       [&] {
         const tensor a = features(feature_scales[0], 1), b = features(feature_scales[1], 1);
         score_options so;
         so.cell_offsets = {0.0, std::nan("")};
         model.score({a.cview(), b.cview()}, so);
       }},
      {"a 3-d .npy array as feature maps", errc::bad_file, "4-d",
       [&] {
         npy_array a;
         a.shape = {2, 3, 4};
         a.data.assign(24, 0.5f);
         to_tensor(a, "maps.npy");
       }},
  });
}

TEST_CASE("bad-input matrix: features far outside the training distribution score finite", "[bad_input]") {
  // Finite features up to max_feature_magnitude are valid input for every kind: the score says how
  // unlikely they are and must stay a number that thresholds and metrics can compare.
  for (const tiny_detector& d : tiny_detectors()) {
    CAPTURE(d.name);
    const std::unique_ptr<detector> model = fit_tiny_detector(d);
    for (const double magnitude : {1e3, 1e6, 1e9, double{max_feature_magnitude}}) {
      CAPTURE(magnitude);
      const scores s = model->score(views_of(tiny_features(d, 2, magnitude)));
      for (double v : s.image) CHECK(std::isfinite(v));
      for (index_t i = 0; i < s.maps.numel(); ++i) REQUIRE(std::isfinite(s.maps.data()[i]));
    }
  }
}

TEST_CASE("bad-input matrix: image files", "[bad_input][io]") {
  const temp_folder dir;
  // Elsewhere (test_image_io.cpp): missing files, folders, empty files, foreign signatures, PNG/BMP/JPEG
  // cut anywhere or with flipped bits.
  ::mkfifo((dir / "fifo.png").c_str(), 0600);
  fs::create_symlink(dir / "gone.png", dir / "dangling.png");
  write_bytes(dir / "huge.png", png_declaring(1u << 30, 1u << 30));
  write_bytes(dir / "zero-width.png", png_declaring(16, 0));
  bytes bmp_zero_height = {'B', 'M'};
  append32(bmp_zero_height, 58);  // file size
  append32(bmp_zero_height, 0);
  append32(bmp_zero_height, 54);  // pixel offset
  append32(bmp_zero_height, 40);  // BITMAPINFOHEADER
  append32(bmp_zero_height, 1);   // width
  append32(bmp_zero_height, 0);   // height
  append16(bmp_zero_height, 1);
  append16(bmp_zero_height, 24);
  bmp_zero_height.resize(58, 0);
  write_bytes(dir / "zero-height.bmp", bmp_zero_height);
  bytes bmp_huge = bmp_zero_height;
  for (const std::size_t at : {std::size_t{18}, std::size_t{22}}) {  // width and height: 2^31 - 1
    bmp_huge[at] = bmp_huge[at + 1] = bmp_huge[at + 2] = 0xFF;
    bmp_huge[at + 3] = 0x7F;
  }
  write_bytes(dir / "huge.bmp", bmp_huge);
  // Width 0 and 14 024 699 top-down rows, in 68 bytes (stb walked every row: a timeout in the fifth
  // million-execution image campaign).
  write_bytes(dir / "zero-width.bmp", {'B', 'M', 0x96, 0, 0, 0, 0, 0, 0, 0, 0x1E, 0, 0, 0, 0x28, 0, 0, 0, 0, 0, 0, 0, 0x05, 0,
                                       0x2A, 0xFF, 0x01, 0, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x1E, 0, 0, 0, 0x28, 0, 0,
                                       0, 0, 0, 0, 0, 0x05, 0, 0, 0, 0x5B, 0xF0, 0x2A, 0xFF, 0x01, 0, 0x01, 0, 0, 0, 0, 0});
  write_bytes(dir / "jpeg-header-only.jpg", {0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, 'J', 'F', 'I', 'F', 0});
  bytes bmp_unknown_method = bmp_zero_height;
  bmp_unknown_method[22] = 1;     // height 1
  bmp_unknown_method[30] = 0x77;  // compression method 0x77
  write_bytes(dir / "unknown-method.bmp", bmp_unknown_method);
  // The JPEG rows below are the image fuzz target's findings against stb 2.27, which decoded JPEGs before
  // libjpeg-turbo; they stay as regression inputs. A Huffman table of 16 x 32 = 512 codes (stb wrote past
  // its arrays beyond 256).
  bytes jpeg_huffman = {0xFF, 0xD8, 0xFF, 0xC4, 0x00, 0x13, 0x00};
  jpeg_huffman.insert(jpeg_huffman.end(), 16, 0x20);
  write_bytes(dir / "huffman.jpg", jpeg_huffman);
  // A 37-byte BMP with no pixel offset declaring 44 x 2097155 1-bit pixels (stb filled 92 million pixels
  // from nothing: a timeout in the million-execution image campaign).
  write_bytes(dir / "offset-zero.bmp", {'B', 'M', 0x28, 0, 0, 0, 0x8D, 0, 0, 0, 0, 0, 0, 0, 0x28, 0, 0, 0, 0x2C, 0, 0, 0,
                                        0x03, 0, 0x20, 0, 0x01, 0, 0x01, 0, 0, 0, 0, 0, 0, 0x14, 0});
  // A scan that uses tables no segment defined (stb decoded with uninitialised Huffman tables, and one of
  // its assertions aborted the fuzzer on such a file): an 8 x 8 grey frame, then the scan at byte 15.
  write_bytes(dir / "no-tables.jpg", {0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x0B, 0x08, 0x00, 0x08, 0x00, 0x08, 0x01, 0x01, 0x11, 0x00,
                                      0xFF, 0xDA, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x3F, 0x00, 0x12, 0x34, 0xFF, 0xD9});
  // A baseline scan that selects only DC coefficients (Se = 0) with no AC table defined: stb decoded whole
  // baseline blocks, AC included, whatever the selection (the third million-execution campaign's finding).
  write_bytes(dir / "no-ac-table.jpg", {0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x0B, 0x08, 0x00, 0x08, 0x00, 0x08, 0x01, 0x01, 0x11, 0x00,
                                        0xFF, 0xC4, 0x00, 0x14, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00,
                                        0xFF, 0xDA, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x12, 0x34, 0xFF, 0xD9});
  // A baseline frame of 4000 x 4000 pixels, and the start of its scan, in a file of a few dozen bytes.
  write_bytes(dir / "big-frame.jpg", {0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x0B, 0x08, 0x0F, 0xA0, 0x0F, 0xA0, 0x01, 0x01, 0x11, 0x00,
                                      0xFF, 0xDA, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x3F, 0x00, 0xFF, 0xD9});
  fs::create_directories(dir / "folder.png");
  check_matrix({
      {"a FIFO named .png", errc::io_error, "not a regular file", [&] { read_image(dir / "fifo.png"); }},
      {"a dangling symbolic link", errc::io_error, "no such file", [&] { read_image(dir / "dangling.png"); }},
      {"a PNG header declaring 2^30 x 2^30 pixels", errc::bad_file,
       "huge.png\": the PNG header declares 1073741824x1073741824 pixels, more than the 134217728 flowad reads",
       [&] { read_image(dir / "huge.png"); }},
      {"a PNG header declaring width 0", errc::bad_file, "zero-width.png", [&] { read_image(dir / "zero-width.png"); }},
      {"a BMP of height 0", errc::bad_file, "zero-height.bmp\": the BMP header declares 1x0 pixels",
       [&] { read_image(dir / "zero-height.bmp"); }},
      {"a BMP of width 0 and 14 million rows", errc::bad_file, "zero-width.bmp\": the BMP header declares 0x14024699 pixels",
       [&] { read_image(dir / "zero-width.bmp"); }},
      {"a BMP header declaring 2^31 - 1 x 2^31 - 1 pixels", errc::bad_file,
       "huge.bmp\": the BMP header declares 2147483647x2147483647 pixels, more than the 134217728 flowad reads",
       [&] { read_image(dir / "huge.bmp"); }},
      {"a BMP of an unknown compression method", errc::bad_file,
       "unknown-method.bmp\": the BMP header declares compression method 119, which flowad does not read",
       [&] { read_image(dir / "unknown-method.bmp"); }},
      {"a JPEG Huffman table of more than 256 codes", errc::bad_file,
       "huffman.jpg\": corrupt or truncated JPEG file; libjpeg-turbo: Bogus Huffman table definition",
       [&] { read_image(dir / "huffman.jpg"); }},
      {"a BMP without a pixel offset whose rows do not fit in the file", errc::bad_file,
       "offset-zero.bmp\": corrupt or truncated BMP file: the pixel array needs 16777294 bytes but the file has 37 (truncated)",
       [&] { read_image(dir / "offset-zero.bmp"); }},
      {"a JPEG scan with tables no segment defines", errc::bad_file,
       "no-tables.jpg\": corrupt or truncated JPEG file; libjpeg-turbo: Quantization table 0x00 was not defined",
       [&] { read_image(dir / "no-tables.jpg"); }},
      {"a baseline JPEG scan of DC coefficients only, with no AC table", errc::bad_file,
       "no-ac-table.jpg\": corrupt or truncated JPEG file; libjpeg-turbo: Quantization table 0x00 was not defined",
       [&] { read_image(dir / "no-ac-table.jpg"); }},
      {"a JPEG declaring more pixels than its bytes can hold", errc::bad_file,
       "big-frame.jpg\": corrupt or truncated JPEG file: its header declares 4000x4000 pixels, more than 27 bytes can hold",
       [&] { read_image(dir / "big-frame.jpg"); }},
      {"a JPEG that is only a header", errc::bad_file, "corrupt or truncated JPEG", [&] { read_image(dir / "jpeg-header-only.jpg"); }},
      {"a folder among the training images", errc::io_error, "it is a directory",
       [&] {
         inspector m(tiny_pipeline());
         const std::vector<fs::path> images = write_good_images(dir, 5);
         m.fit(std::vector<fs::path>{images[0], images[1], dir / "folder.png"}, holdout_half());
       }},
  });
}

TEST_CASE("bad-input matrix: gray, 16-bit, RGBA and 1x1 images are read as RGB and scored finite", "[bad_input][io]") {
  const temp_folder dir;
  const inspector& model = fitted_inspector();
  std::vector<std::uint16_t> rgb16(3 * 5 * 3);
  for (std::size_t i = 0; i < rgb16.size(); ++i) rgb16[i] = static_cast<std::uint16_t>(i * 4099);
  byte_image rgba(6, 4, 4), gray(5, 7, 1);
  for (std::size_t i = 0; i < rgba.size(); ++i) rgba.data()[i] = static_cast<std::uint8_t>(i * 29);
  for (std::size_t i = 0; i < gray.size(); ++i) gray.data()[i] = static_cast<std::uint8_t>(i * 7);
  struct odd_image {
    const char* name;
    bytes file;
    std::function<void(const byte_image&)> check;  // what the decoded RGB image holds
  };
  const std::vector<odd_image> images = {
      {"gray", png_of(gray), [&](const byte_image& im) { CHECK((im(4, 6, 0) == gray(4, 6) && im(4, 6, 2) == gray(4, 6))); }},
      {"16-bit RGB", png_file(3, 5, png_rgb, 16, rgb16), [&](const byte_image& im) { CHECK(im(2, 4, 1) == rgb16[(2 * 5 + 4) * 3 + 1] >> 8); }},
      {"RGBA", png_of(rgba), [&](const byte_image& im) { CHECK(im(5, 3, 2) == rgba(5, 3, 2)); }},
      {"gray + alpha, 16-bit", png_file(2, 2, png_gray_alpha, 16, {0, 65535, 40000, 0, 65535, 65535, 1000, 3}),
       [&](const byte_image& im) { CHECK(im(1, 0, 0) == 255); }},
      {"1x1", png_file(1, 1, png_rgb, 8, {10, 200, 30}), [&](const byte_image& im) { CHECK(im(0, 0, 1) == 200); }},
  };
  for (const odd_image& o : images) {
    DYNAMIC_SECTION(o.name) {
      write_bytes(dir / "odd.png", o.file);
      const byte_image im = read_image(dir / "odd.png");
      REQUIRE(im.channels() == 3);
      o.check(im);
      const verdict v = model.inspect(im);
      CHECK(std::isfinite(v.score));
      CHECK(v.map.h() == im.height());
      CHECK(v.map.w() == im.width());
      for (index_t i = 0; i < v.map.numel(); ++i) REQUIRE(std::isfinite(v.map.data()[i]));
    }
  }
}

TEST_CASE("bad-input matrix: images in memory", "[bad_input][inspector]") {
  const inspector& model = fitted_inspector();
  check_matrix({
      {"an empty image", errc::shape_mismatch, "has shape 0x0x0 but RGB", [&] { model.inspect(byte_image()); }},
      {"a 1-channel image", errc::shape_mismatch, "RGB", [&] { model.inspect(byte_image(8, 8, 1)); }},
      {"a 4-channel image", errc::shape_mismatch, "RGB", [&] { model.inspect(byte_image(8, 8, 4)); }},
      {"a heatmap of a verdict without a map", errc::shape_mismatch, "map",
       [&] { model.heatmap(byte_image(8, 8, 3), verdict{}); }},
      {"a heatmap with a 3-channel ground truth", errc::shape_mismatch, "a ground-truth mask has 1 channel but got 8x8x3",
       [&] {
         const verdict v = model.inspect(byte_image(8, 8, 3, 100));
         const byte_image truth(8, 8, 3);
         model.heatmap(byte_image(8, 8, 3), v, &truth);
       }},
  });
}

TEST_CASE("bad-input matrix: images far outside the training distribution score finite, in the colour range",
          "[bad_input][inspector]") {
  const inspector& model = fitted_inspector();
  const auto uniform = [](std::uint8_t v) { return byte_image(24, 24, 3, v); };
  byte_image noise(24, 24, 3), stripes(24, 24, 3);
  for (std::size_t i = 0; i < noise.size(); ++i) noise.data()[i] = static_cast<std::uint8_t>((i * 2654435761u) >> 7);
  for (index_t y = 0; y < 24; ++y)
    for (index_t x = 0; x < 24; ++x)
      for (index_t c = 0; c < 3; ++c) stripes(y, x, c) = x % 2 == 0 ? 255 : 0;
  const std::vector<std::pair<const char*, byte_image>> images = {
      {"black", uniform(0)}, {"white", uniform(255)}, {"noise", noise}, {"one-pixel stripes", stripes}};
  const heatmap_options& range = model.heatmap_range();
  for (const auto& [name, image] : images) {
    CAPTURE(name);
    const verdict v = model.inspect(image);
    CHECK(std::isfinite(v.score));
    float hottest = -std::numeric_limits<float>::infinity();
    for (index_t i = 0; i < v.map.numel(); ++i) {
      REQUIRE(std::isfinite(v.map.data()[i]));
      hottest = std::max(hottest, v.map.data()[i]);
    }
    // Values beyond the colour range saturate at its hottest colour: they never wrap around to a cold one.
    const byte_image overlay = model.heatmap(image, v);
    if (hottest > range.hi) {
      const std::array<std::uint8_t, 3> top = turbo_colour(1.0f);
      const auto expected = [&](index_t y, index_t x, index_t c) {
        return std::lround(0.5f * image(y, x, c) + 0.5f * top[static_cast<std::size_t>(c)]);
      };
      bool found = false;
      for (index_t y = 0; y < 24 && !found; ++y)
        for (index_t x = 0; x < 24 && !found; ++x)
          if (v.map(0, 0, y, x) >= range.hi)
            found = std::abs(overlay(y, x, 0) - expected(y, x, 0)) <= 1 && std::abs(overlay(y, x, 2) - expected(y, x, 2)) <= 1;
      CHECK(found);
    }
  }
}

TEST_CASE("bad-input matrix: model files", "[bad_input][model_file]") {
  const temp_folder dir;
  // Elsewhere: foreign files, empty files, a future format version, an unknown kind, truncation and bit
  // flips (test_model_file.cpp); every image-pipeline entry damaged (test_inspector.cpp); a model
  // fitted on feature maps loaded as an inspector (test_inspector.cpp).
  const model_file_contents msflow_file = fitted_feature_model().to_model_file();
  const auto load = [&](const model_file_contents& m) {
    write_model_file(dir / "m.flowad", m);
    load_detector(dir / "m.flowad");
  };
  const auto with_config = [&](const std::string& key, const std::string& value) {
    model_file_contents m = msflow_file;
    m.config.set(key, value);
    return m;
  };
  tensor a = features({4, 4, 4}, 4);
  const model_file_contents patchcore_file = [&] {
    feature_model_options o;
    o.detector = "patchcore";
    return fit_feature_model({a.cview()}, o)->to_model_file();
  }();
  check_matrix({
      {"an MS-Flow file that says it is FastFlow", errc::bad_file,
       "m.flowad: the model file holds a 'fastflow' detector that cannot be rebuilt: the configuration lacks the setting",
       [&] {
         model_file_contents m = msflow_file;
         m.kind = "fastflow";
         load(m);
       }},
      {"a PatchCore file that says it is MS-Flow", errc::bad_file,
       "m.flowad: the model file holds a 'msflow' detector that cannot be rebuilt: the configuration lacks the setting",
       [&] {
         model_file_contents m = patchcore_file;
         m.kind = "msflow";
         load(m);
       }},
      {"a PatchCore file given to MS-Flow's loader", errc::bad_file, "patchcore",
       [&] { msflow::from_model_file(patchcore_file); }},
      {"a setting that is not a number", errc::bad_file, "setting 'hidden' = 'four' is not an integer",
       [&] { load(with_config("hidden", "four")); }},
      {"a setting out of its domain", errc::bad_file, "groups", [&] { load(with_config("groups", "1")); }},
      {"a setting missing", errc::bad_file, "blocks",
       [&] {
         model_file_contents m = msflow_file;
         detector_config c;
         for (const auto& [key, value] : m.config.entries())
           if (key != "blocks") c.set(key, value);
         m.config = c;
         load(m);
       }},
      {"scales of more channels than the tensors", errc::bad_file, "detector that cannot be rebuilt: model file holds 90 values but its configuration needs 130",
       [&] { load(with_config("scales", "8x4x4,4x2x2")); }},
      {"a tensor of the wrong shape", errc::bad_file, "wrong shape",
       [&] {
         model_file_contents m = msflow_file;
         m.tensors[0].dims.push_back(1);
         load(m);
       }},
      {"NaN in a weight", errc::bad_file, "NaN or Inf",
       [&] {
         model_file_contents m = msflow_file;
         m.tensors.back().values[0] = std::nanf("");
         load(m);
       }},
      {"a tensor header declaring 2^50 values", errc::bad_file, "implausible dimension",
       [&] {
         bytes b = encode_model(msflow_file);
         // The first tensor's first dimension: find its name, then skip rank (4 bytes).
         const std::string name = msflow_file.tensors[0].name;
         const auto at = std::search(b.begin(), b.end(), name.begin(), name.end()) - b.begin();
         const std::uint64_t huge = std::uint64_t{1} << 50;
         std::memcpy(b.data() + at + static_cast<std::ptrdiff_t>(name.size()) + 4, &huge, 8);
         const std::uint32_t crc = crc32_of(b.data(), b.size() - 4);
         std::memcpy(b.data() + b.size() - 4, &crc, 4);
         decode_model(b.data(), b.size(), "huge.flowad");
       }},
  });
}

TEST_CASE("bad-input matrix: folders", "[bad_input][io]") {
  const temp_folder dir;
  // Elsewhere (test_dataset.cpp): a missing root or a file as root, missing train/good or test/,
  // folders without images, masks missing, extra or doubled; (test_inspector.cpp) image_folder of an
  // empty or missing folder.
  write_bytes(dir / "only-text" / "notes.txt", {'x'});
  fs::create_directories(dir / "links");
  fs::create_symlink("loop.png", dir / "links" / "loop.png");
  write_bytes(dir / "not-an-image" / "train" / "good" / "000.png", {'n', 'o', 'p', 'e'});
  write_bytes(dir / "not-an-image" / "train" / "good" / "001.png", {'n', 'o', 'p', 'e'});
  check_matrix({
      {"a folder of text files", errc::empty_input, "holds no images", [&] { image_folder(dir / "only-text"); }},
      {"a folder whose only image is a link to itself", errc::empty_input, "holds no images",
       [&] { image_folder(dir / "links"); }},
      {"a category with a link loop for train/good", errc::bad_file, "train",
       [&] {
         write_bytes(dir / "looped" / "test" / "good" / "0.png", {1});
         fs::create_directories(dir / "looped" / "train");
         fs::create_symlink("good", dir / "looped" / "train" / "good");
         read_mvtec_category(dir / "looped");
       }},
      {"training images that are not images", errc::bad_file, "not a PNG, JPEG or BMP file (unrecognised signature)",
       [&] {
         inspector m(tiny_pipeline());
         m.fit(image_folder(dir / "not-an-image" / "train" / "good"), holdout_half());
       }},
  });
}

TEST_CASE("bad-input matrix: options and settings", "[bad_input]") {
  const synthetic_dataset images = fabric(32, 32, 4, 1, 6);
  const auto fit_with = [&](const std::function<void(inspector_fit_options&)>& change) {
    inspector_fit_options o = holdout_half();
    change(o);
    inspector(tiny_pipeline()).fit(images.train, o);
  };
  const auto build_with = [&](const std::function<void(pipeline_config&)>& change) {
    pipeline_config c = tiny_pipeline();
    change(c);
    inspector{c};
  };
  // Elsewhere: target_fpr 0, an unknown setting, extractor or detector, a height without a width
  // (test_inspector.cpp); settings that are not numbers or out of range, key=value syntax
  // (test_detector_config.cpp); pool strides and neighbourhoods out of range (test_features.cpp).
  check_matrix({
      {"a NaN target false-positive rate", errc::invalid_argument, "target_fpr must be in (0, 1), got nan",
       [&] { fit_with([](inspector_fit_options& o) { o.target_fpr = std::nan(""); }); }},
      {"a holdout of 1", errc::invalid_argument, "holdout must be in [0, 1), got 1",
       [&] { fit_with([](inspector_fit_options& o) { o.holdout = 1.0; }); }},
      {"one calibration fold", errc::invalid_argument, "calibration_folds",
       [&] {
         fit_with([](inspector_fit_options& o) {
           o.calibration = calibration_method::out_of_fold;
           o.calibration_folds = 1;
         });
       }},
      {"a shorter side of 0", errc::invalid_argument, "shorter_side must be in [8, 16384], got 0",
       [&] {
         build_with([](pipeline_config& c) {
           c.height = c.width = 0;
           c.shorter_side = 0;
         });
       }},
      {"an input size beyond 16384", errc::invalid_argument, "height",
       [&] { build_with([](pipeline_config& c) { c.height = c.width = 1 << 20; }); }},
      {"an even neighbourhood", errc::invalid_argument, "neighbourhood must be odd",
       [&] { build_with([](pipeline_config& c) { c.neighbourhood = 4; }); }},
      {"a NaN threshold", errc::invalid_argument, "the threshold must be finite",
       [&] { inspector(tiny_pipeline()).set_threshold(std::nan("")); }},
      {"an infinite threshold", errc::invalid_argument, "the threshold must be finite",
       [&] { inspector(tiny_pipeline()).set_threshold(std::numeric_limits<double>::infinity()); }},
  });
}
