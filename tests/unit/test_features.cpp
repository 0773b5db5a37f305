// Images to feature maps (pipeline/features.hpp): local aggregation over a neighbourhood, and where
// the maps' cells sit in the image.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>

#include "flowad/extract/filterbank.hpp"
#include "flowad/io/synthetic.hpp"
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

}  // namespace

TEST_CASE("feature neighbourhoods average each vector over the window inside the map", "[features]") {
  const filterbank_extractor ex;
  const std::vector<byte_image> images = some_images();
  feature_options plain;
  plain.image_size = 64;
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
  o.image_size = 64;
  for (const index_t bad : {0, 2, -3, 65}) {
    o.neighbourhood = bad;
    CHECK_THROWS_WITH(extract_features(ex, images, o), Catch::Contains("neighbourhood") &&
                                                           Catch::Contains(std::to_string(bad)));
  }
}

TEST_CASE("map_cell_offsets puts the filter bank's responses on the spot that caused them", "[features]") {
  const filterbank_extractor ex;
  feature_options options;  // every level of the filter bank: strides 4, 8 and 16
  const std::vector<double> offsets = map_cell_offsets(ex, options);
  REQUIRE(offsets.size() == 3);
  // A fabric from the synthetic generator, at the default input size.
  synthetic_options o;
  o.height = o.width = options.image_size;
  o.train_count = 1;
  o.test_count = 1;
  o.seed = 5;
  const float_image fabric = to_float(generate_synthetic_dataset(o).train.front());

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
