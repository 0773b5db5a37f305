// Images to feature maps (pipeline/features.hpp): local aggregation over a neighbourhood, pooling,
// and where the maps' cells sit in the image.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>

#include "flowad/data/fabric.hpp"
#include "flowad/extract/filterbank.hpp"
#include "flowad/pipeline/features.hpp"
#include "support/spot_response.hpp"

using namespace flowad;

namespace {

std::vector<byte_image> some_images() {
  synthetic_options o;
  o.height = o.width = 64;
  o.train_count = 3;
  o.test_count = 1;
  o.seed = 11;
  return generate_synthetic_dataset(o).train;
}

// A fabric from the synthetic generator, size x size: the background the spots are painted on.
float_image fabric_of_size(index_t size) {
  synthetic_options o;
  o.height = o.width = size;
  o.train_count = 1;
  o.test_count = 1;
  o.seed = 5;
  return to_float(generate_synthetic_dataset(o).train.front());
}

}  // namespace

TEST_CASE("feature neighbourhoods average each vector over the window inside the map", "[features]") {
  const filterbank_extractor ex;
  const std::vector<byte_image> images = some_images();
  feature_options plain;
  plain.height = plain.width = 64;
  plain.batch_size = 2;  // two batches: aggregation must not mix images across batches
  const std::vector<tensor> raw = extract_features(ex, images, plain);
  for (const index_t k : {3, 5}) {
    feature_options aggregated = plain;
    aggregated.neighbourhood = k;
    const std::vector<tensor> got = extract_features(ex, images, aggregated);
    REQUIRE(got.size() == raw.size());
    const index_t r = k / 2;
    for (std::size_t level = 0; level < raw.size(); ++level) {
      const tensor& in = raw[level];
      REQUIRE(got[level].shape() == in.shape());
      double worst = 0.0, scale = 0.0;
      for (index_t n = 0; n < in.n(); ++n)
        for (index_t c = 0; c < in.c(); ++c)
          for (index_t y = 0; y < in.h(); ++y)
            for (index_t x = 0; x < in.w(); ++x) {
              double sum = 0.0;
              int count = 0;
              for (index_t dy = -r; dy <= r; ++dy)
                for (index_t dx = -r; dx <= r; ++dx) {
                  const index_t yy = y + dy, xx = x + dx;
                  if (yy < 0 || yy >= in.h() || xx < 0 || xx >= in.w()) continue;
                  sum += in(n, c, yy, xx);
                  ++count;
                }
              const double expected = sum / count;
              worst = std::max(worst, std::abs(got[level](n, c, y, x) - expected));
              scale = std::max(scale, std::abs(expected));
            }
      INFO("level " << level << ", neighbourhood " << k << ": max error " << worst << " at scale " << scale);
      CHECK(worst <= 1e-5 * std::max(1.0, scale));
    }
  }
}

TEST_CASE("feature neighbourhoods must be odd and positive", "[features]") {
  const filterbank_extractor ex;
  const std::vector<byte_image> images = some_images();
  feature_options o;
  o.height = o.width = 64;
  for (const index_t bad : {0, 2, -3, 65}) {
    o.neighbourhood = bad;
    CHECK_THROWS_WITH(extract_features(ex, images, o), Catch::Contains("neighbourhood") &&
                                                           Catch::Contains(std::to_string(bad)));
  }
}

TEST_CASE("pooled feature maps keep every pool_stride-th cell of the aggregated maps", "[features]") {
  const filterbank_extractor ex;
  const std::vector<byte_image> images = some_images();
  feature_options aggregated;
  aggregated.height = aggregated.width = 72;  // filter-bank maps of 18, 9 and 5 cells: pooling must round up
  aggregated.batch_size = 2;
  aggregated.neighbourhood = 3;
  const std::vector<tensor> full = extract_features(ex, images, aggregated);
  for (const index_t p : {2, 3}) {
    feature_options pooled = aggregated;
    pooled.pool_stride = p;
    const std::vector<tensor> got = extract_features(ex, images, pooled);
    const std::vector<scale_shape> shapes = feature_shapes(ex, pooled);
    REQUIRE(got.size() == full.size());
    for (std::size_t level = 0; level < full.size(); ++level) {
      const tensor& in = full[level];
      const index_t h = (in.h() + p - 1) / p, w = (in.w() + p - 1) / p;
      INFO("level " << level << ", pool stride " << p);
      REQUIRE(got[level].shape() == shape4{in.n(), in.c(), h, w});
      CHECK(shapes[level].height == h);
      CHECK(shapes[level].width == w);
      index_t differing = 0;
      for (index_t n = 0; n < in.n(); ++n)
        for (index_t c = 0; c < in.c(); ++c)
          for (index_t y = 0; y < h; ++y)
            for (index_t x = 0; x < w; ++x) differing += got[level](n, c, y, x) != in(n, c, y * p, x * p);
      CHECK(differing == 0);
    }
  }
}

TEST_CASE("feature pool strides must be in [1, 8]", "[features]") {
  const filterbank_extractor ex;
  const std::vector<byte_image> images = some_images();
  feature_options o;
  o.height = o.width = 64;
  for (const index_t bad : {0, -2, 9}) {
    o.pool_stride = bad;
    CHECK_THROWS_WITH(extract_features(ex, images, o), Catch::Contains("pool stride") &&
                                                           Catch::Contains(std::to_string(bad)));
    CHECK_THROWS_WITH(map_cell_offsets(ex, o), Catch::Contains("pool stride"));
  }
}

TEST_CASE("map_cell_offsets puts the filter bank's responses on the spot that caused them", "[features]") {
  const filterbank_extractor ex;
  feature_options options;  // every level of the filter bank: strides 4, 8 and 16
  const std::vector<double> offsets = map_cell_offsets(ex, options);
  REQUIRE(offsets.size() == 3);
  const float_image fabric = fabric_of_size(options.height);

  const auto aligned = testing::spot_response_displacements(ex, fabric, offsets);
  const auto pytorch_grid = testing::spot_response_displacements(ex, fabric, std::vector<double>(3, 0.0));
  for (std::size_t l = 0; l < 3; ++l) {
    const double stride = static_cast<double>(ex.levels()[l].stride);
    INFO(ex.levels()[l].name << ": displacement with the level's offset (" << aligned[l].y << ", " << aligned[l].x
                             << "), on PyTorch's grid (" << pytorch_grid[l].y << ", " << pytorch_grid[l].x << ") px");
    CHECK(offsets[l] == Approx(-(stride - 1.0) / (2.0 * stride)));
    CHECK(std::abs(aligned[l].y) < 0.5);
    CHECK(std::abs(aligned[l].x) < 0.5);
    // What the offset corrects: align_corners=False moves the response half a cell down and right.
    CHECK(pytorch_grid[l].y == Approx((stride - 1.0) / 2.0).margin(0.5));
    CHECK(pytorch_grid[l].x == Approx((stride - 1.0) / 2.0).margin(0.5));
  }
}

TEST_CASE("map_cell_offsets puts the responses of pooled maps on the spot that caused them", "[features]") {
  const filterbank_extractor ex;
  feature_options options;
  options.neighbourhood = 3;
  options.pool_stride = 2;  // MSFlow's AvgPool2d(3, 2, 1): strides 8, 16 and 32 on the image
  const std::vector<double> offsets = map_cell_offsets(ex, options);
  REQUIRE(offsets.size() == 3);
  const float_image fabric = fabric_of_size(options.height);

  const testing::feature_source pooled = [&](const std::vector<float_image>& batch) {
    std::vector<byte_image> bytes;
    for (const float_image& image : batch) bytes.push_back(to_bytes(image));
    return extract_features(ex, bytes, options);
  };
  const auto aligned = testing::spot_response_displacements(pooled, fabric, offsets);
  for (std::size_t l = 0; l < 3; ++l) {
    const double stride = static_cast<double>(ex.levels()[l].stride);
    INFO(ex.levels()[l].name << " pooled: displacement (" << aligned[l].y << ", " << aligned[l].x << ") px");
    // Cell j of the pooled map is cell 2j of the level, on pixel 2·stride·j (the filter bank's grid),
    // where the stride-2·stride grid puts pixel 2·stride·j + (2·stride - 1)/2.
    CHECK(offsets[l] == Approx(-(2.0 * stride - 1.0) / (4.0 * stride)));
    CHECK(std::abs(aligned[l].y) < 0.5);
    CHECK(std::abs(aligned[l].x) < 0.5);
  }
}
