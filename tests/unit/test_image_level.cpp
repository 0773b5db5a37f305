// The reserved level "image" (pipeline/features.hpp, image_level): the normalised input image itself
// as scale 0, beside the extractor's levels, for detectors that read the image (teacher-student).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "flowad/data/fabric.hpp"
#include "flowad/extract/filterbank.hpp"
#include "flowad/io/image_resize.hpp"
#include "flowad/io/image_rotate.hpp"
#include "flowad/pipeline/features.hpp"
#include "flowad/pipeline/inspector.hpp"
#include "support/temp_folder.hpp"

using namespace flowad;
using flowad::testing::temp_folder;

namespace {

// An RGB image whose three channels differ at every pixel, so that a swapped channel, row or column shows.
byte_image patterned(index_t height, index_t width, int seed) {
  byte_image image(height, width, 3);
  for (index_t y = 0; y < height; ++y)
    for (index_t x = 0; x < width; ++x)
      for (index_t c = 0; c < 3; ++c)
        image(y, x, c) = static_cast<std::uint8_t>((37 * y + 11 * x + 83 * c + 29 * seed + (x * y) % 7) % 256);
  return image;
}

// The largest |got - expected| over sample n of got (N x 3 x H x W) against `rgb` (H x W x 3 in [0, 1])
// normalised by hand in double with ImageNet's statistics.
double worst_against_normalised(const tensor& got, index_t n, const float_image& rgb) {
  const double mean[3] = {0.485, 0.456, 0.406}, stdev[3] = {0.229, 0.224, 0.225};
  double worst = 0.0;
  for (index_t c = 0; c < 3; ++c)
    for (index_t y = 0; y < rgb.height(); ++y)
      for (index_t x = 0; x < rgb.width(); ++x) {
        const double expected = (static_cast<double>(rgb(y, x, c)) - mean[c]) / stdev[c];
        worst = std::max(worst, std::abs(static_cast<double>(got(n, c, y, x)) - expected));
      }
  return worst;
}

bool identical(const tensor& a, const tensor& b) {
  return a.shape() == b.shape() && a.layout() == b.layout() && std::memcmp(a.data(), b.data(), a.bytes()) == 0;
}

feature_options options_of(std::vector<std::string> levels, index_t height, index_t width) {
  feature_options o;
  o.levels = std::move(levels);
  o.height = height;
  o.width = width;
  o.batch_size = 2;  // three images: two batches
  return o;
}

}  // namespace

TEST_CASE("the image level is the normalised input image, the pixels the extractor sees", "[features]") {
  const filterbank_extractor ex;
  // Odd, non-square, three images over two batches.
  const std::vector<byte_image> images = {patterned(11, 13, 0), patterned(11, 13, 1), patterned(11, 13, 2)};
  const feature_options o = options_of({image_level, "level2"}, 11, 13);
  const std::vector<tensor> got = extract_features(ex, images, o);
  REQUIRE(got.size() == 2);
  CHECK(got[0].shape() == shape4{3, 3, 11, 13});
  CHECK(got[0].layout() == layout::nhwc);

  SECTION("at the input size: (byte / 255 - mean) / std, by hand") {
    for (index_t n = 0; n < 3; ++n) {
      const byte_image& b = images[static_cast<std::size_t>(n)];
      float_image by_hand(b.height(), b.width(), 3);
      for (index_t y = 0; y < b.height(); ++y)
        for (index_t x = 0; x < b.width(); ++x)
          for (index_t c = 0; c < 3; ++c) by_hand(y, x, c) = static_cast<float>(b(y, x, c) / 255.0);
      CHECK(worst_against_normalised(got[0], n, by_hand) < 2e-6);
    }
    // A sign, channel or transposition error is far above the tolerance.
    CHECK(std::abs(got[0](0, 2, 5, 7) - ((images[0](5, 7, 2) / 255.0 - 0.406) / 0.225)) < 2e-6);
  }
  SECTION("the extractor's level is what it is without the image level") {
    const std::vector<tensor> alone = extract_features(ex, images, options_of({"level2"}, 11, 13));
    REQUIRE(alone.size() == 1);
    CHECK(identical(got[1], alone[0]));
  }
  SECTION("resized images: resize_bilinear, then normalised") {
    const std::vector<tensor> resized = extract_features(ex, images, options_of({image_level, "level1"}, 7, 9));
    CHECK(resized[0].shape() == shape4{3, 3, 7, 9});
    for (index_t n = 0; n < 3; ++n)
      CHECK(worst_against_normalised(resized[0], n, resize_bilinear(to_float(images[static_cast<std::size_t>(n)]), 7, 9)) <
            2e-6);
  }
  SECTION("from image files, the same") {
    temp_folder dir;
    std::vector<std::filesystem::path> paths;
    for (std::size_t i = 0; i < images.size(); ++i) {
      paths.push_back(dir / ("image" + std::to_string(i) + ".png"));
      write_png(paths.back(), images[i]);
    }
    const std::vector<tensor> from_files = extract_features(ex, paths, o);
    REQUIRE(from_files.size() == 2);
    CHECK(identical(from_files[0], got[0]));
    CHECK(identical(from_files[1], got[1]));
  }
  SECTION("rotated copies: the rotated image, filled with 0 before normalisation") {
    std::vector<const byte_image*> pointers;
    for (const byte_image& b : images) pointers.push_back(&b);
    const std::vector<tensor> copies = extract_features(ex, pointers, {{1, 0.0}, {2, 90.0}, {1, 30.0}}, o);
    REQUIRE(copies.size() == 2);
    CHECK(copies[0].shape() == shape4{3, 3, 11, 13});
    const float_image one = resize_bilinear(to_float(images[1]), 11, 13), two = resize_bilinear(to_float(images[2]), 11, 13);
    CHECK(worst_against_normalised(copies[0], 0, one) < 2e-6);
    CHECK(worst_against_normalised(copies[0], 1, rotate_nearest(two, 90.0)) < 2e-6);
    CHECK(worst_against_normalised(copies[0], 2, rotate_nearest(one, 30.0)) < 2e-6);
    // The rotation shows: the 30° copy is not the upright image.
    CHECK(worst_against_normalised(copies[0], 2, one) > 0.5);
  }
}

TEST_CASE("the image level is neither aggregated nor pooled, has stride 1 and cell offset 0", "[features]") {
  const filterbank_extractor ex;
  synthetic_options so;
  so.height = 40;
  so.width = 56;
  so.train_count = 3;
  so.test_count = 1;
  so.seed = 3;
  const std::vector<byte_image> images = generate_synthetic_dataset(so).train;

  feature_options plain = options_of({image_level, "level1", "level2"}, 40, 56);
  feature_options pooled = plain;
  pooled.neighbourhood = 3;
  pooled.pool_stride = 2;
  const std::vector<tensor> p = extract_features(ex, images, plain);
  const std::vector<tensor> q = extract_features(ex, images, pooled);
  REQUIRE(q.size() == 3);
  CHECK(identical(q[0], p[0]));  // the image, untouched
  CHECK(q[0].shape() == shape4{3, 3, 40, 56});
  // The extractor's levels are aggregated and pooled as without the image level.
  feature_options pooled_alone = pooled;
  pooled_alone.levels = {"level1", "level2"};
  const std::vector<tensor> r = extract_features(ex, images, pooled_alone);
  CHECK(identical(q[1], r[0]));
  CHECK(identical(q[2], r[1]));
  CHECK(q[1].shape() == shape4{3, ex.levels()[0].channels, 5, 7});  // 40 x 56 / stride 4 / pool 2

  const std::vector<scale_shape> shapes = feature_shapes(ex, pooled);
  REQUIRE(shapes.size() == 3);
  CHECK(shapes[0] == scale_shape{3, 40, 56});
  CHECK(shapes[1] == scale_shape{ex.levels()[0].channels, 5, 7});
  CHECK(shapes[2] == scale_shape{ex.levels()[1].channels, 3, 4});  // 40 x 56 / 8 = 5 x 7, every 2nd cell

  const std::vector<double> offsets = map_cell_offsets(ex, pooled), offsets_alone = map_cell_offsets(ex, pooled_alone);
  REQUIRE(offsets.size() == 3);
  CHECK(offsets[0] == 0.0);
  CHECK(offsets[1] == offsets_alone[0]);
  CHECK(offsets[2] == offsets_alone[1]);
  CHECK(offsets[1] != 0.0);  // the filter bank's levels are off the align_corners=False grid: a real comparison

  CHECK(feature_stride(ex, options_of({image_level}, 40, 56)) == 1);
  feature_options image_pooled = options_of({image_level}, 40, 56);
  image_pooled.pool_stride = 4;
  CHECK(feature_stride(ex, image_pooled) == 1);
  CHECK(feature_stride(ex, pooled) == 16);  // level2: stride 8, pooled by 2

  const feature_geometry g = feature_geometry_of(ex, pooled);
  CHECK(g.shapes == shapes);
  CHECK(g.strides == std::vector<index_t>{1, 8, 16});

  // Only the image: the extractor is not needed, the image comes back all the same.
  const std::vector<tensor> only = extract_features(ex, images, image_pooled);
  REQUIRE(only.size() == 1);
  CHECK(identical(only[0], p[0]));
  CHECK(level_indices(ex, pooled) == std::vector<std::size_t>{0, 1});  // the extractor's levels only
}

TEST_CASE("levels are checked: unknown names, and the image level anywhere but first", "[features]") {
  const filterbank_extractor ex;
  const std::vector<byte_image> images = {patterned(16, 16, 0)};
  const auto refuses = [&](std::vector<std::string> levels, const std::string& named) {
    const feature_options o = options_of(std::move(levels), 16, 16);
    CHECK_THROWS_WITH(extract_features(ex, images, o), Catch::Contains(named));
    CHECK_THROWS_WITH(feature_shapes(ex, o), Catch::Contains(named));
    CHECK_THROWS_WITH(map_cell_offsets(ex, o), Catch::Contains(named));
    CHECK_THROWS_WITH(feature_stride(ex, o), Catch::Contains(named));
    CHECK_THROWS_WITH(level_indices(ex, o), Catch::Contains(named));
    try {
      kept_levels(ex, o);
      FAIL_CHECK("accepted");
    } catch (const error& e) {
      CHECK(e.code() == errc::invalid_argument);
    }
  };
  refuses({image_level, "level9"}, "no level 'level9'");
  refuses({"images"}, "no level 'images'");
  refuses({"level1", image_level}, "'image' (the input image) must come first");
  refuses({image_level, image_level}, "must come first");
}

TEST_CASE("the pipeline puts the image first exactly when the detector reads it", "[features][inspector]") {
  const filterbank_extractor ex;  // levels level1..3, all of them by default
  const auto info = [](std::size_t recipe, bool reads_image) {
    detector_info d;
    d.kind = "test";
    d.recipe_levels = recipe;
    d.reads_image = reads_image;
    return d;
  };
  using names = std::vector<std::string>;
  CHECK(detector_info{}.reads_image == false);
  CHECK(pipeline_levels({}, info(0, false), ex) == names{"level1", "level2", "level3"});
  CHECK(pipeline_levels({}, info(0, true), ex) == names{"image", "level1", "level2", "level3"});
  CHECK(pipeline_levels({}, info(2, false), ex) == names{"level2", "level3"});
  CHECK(pipeline_levels({}, info(2, true), ex) == names{"image", "level2", "level3"});
  // The user's levels, with the image added for a detector that reads it.
  CHECK(pipeline_levels({"level1"}, info(2, false), ex) == names{"level1"});
  CHECK(pipeline_levels({"level1"}, info(2, true), ex) == names{"image", "level1"});
  CHECK(pipeline_levels({"image", "level3"}, info(0, true), ex) == names{"image", "level3"});
  CHECK(pipeline_levels({"image", "level3"}, info(0, false), ex) == names{"image", "level3"});
  // Misplaced by the user: left where it is, for kept_levels to refuse with the reason.
  CHECK(pipeline_levels({"level3", "image"}, info(0, true), ex) == names{"level3", "image"});

  // Of the registered detectors only STFPM always reads the image (FCL on its host, by a setting).
  for (const detector_info& d : detector_kinds()) CHECK(d.reads_image == (d.kind == "stfpm"));
  pipeline_config c = pipeline_config::recommended("filterbank", {}, "patchcore");
  c.height = c.width = 32;
  CHECK(pipeline_features(c, ex).levels == names{"level1", "level2", "level3"});
  c.levels = {"image", "level2"};
  CHECK(pipeline_features(c, ex).levels == names{"image", "level2"});
}

TEST_CASE("an inspector fits on the image level, records it in the model file and loads it back", "[inspector]") {
  temp_folder dir;
  synthetic_options so;
  so.height = 32;
  so.width = 48;
  so.train_count = 10;
  so.test_count = 4;
  so.seed = 8;
  const synthetic_dataset data = generate_synthetic_dataset(so);
  pipeline_config c = pipeline_config::recommended("filterbank", {}, "patchcore");
  c.shorter_side = 16;  // 16 x 24 after rounding to level2's stride 8
  c.levels = {"image", "level2"};
  c.settings = {{"coreset_fraction", "0.05"}, {"projection_dimension", "8"}};
  inspector model(c);
  inspector_fit_options fo;
  fo.holdout = 0.2;
  model.fit(data.train, fo);
  REQUIRE(model.fitted());
  CHECK(model.feature_settings().levels == std::vector<std::string>{"image", "level2"});
  CHECK(model.feature_settings().height == 16);
  CHECK(model.feature_settings().width == 24);
  CHECK(model.model().input_shapes() ==
        std::vector<scale_shape>{{3, 16, 24}, {filterbank_extractor().levels()[1].channels, 2, 3}});

  model.save(dir / "image.flowad");
  const inspector loaded = inspector::load(dir / "image.flowad");
  CHECK(loaded.model().metadata().at("pipeline.levels") == "image,level2");
  CHECK(loaded.model().metadata().at("pipeline.cell_offsets").rfind("0,", 0) == 0);  // the image's cells: offset 0
  CHECK(loaded.config().levels == std::vector<std::string>{"image", "level2"});
  CHECK(loaded.feature_settings().levels == model.feature_settings().levels);
  CHECK(loaded.feature_settings().height == 16);
  CHECK(loaded.feature_settings().width == 24);
  // The same features, so the same scores and maps to the bit.
  const filterbank_extractor ex;
  const std::vector<tensor> before = extract_features(ex, data.test, model.feature_settings());
  const std::vector<tensor> after = extract_features(loaded.features(), data.test, loaded.feature_settings());
  REQUIRE(before.size() == after.size());
  for (std::size_t k = 0; k < before.size(); ++k) CHECK(identical(before[k], after[k]));
  const scores s = model.score(data.test), t = loaded.score(data.test);
  CHECK(s.image == t.image);
  CHECK(identical(s.maps, t.maps));
  CHECK(loaded.threshold()->value == model.threshold()->value);
}
