// Validation on held-out defect-free images with synthetic defects (pipeline/evaluate.hpp): the folds
// partition the images, every held-out image is scored clean and with its defects, and bad splits
// are clear errors.
#include <algorithm>
#include <catch2/catch.hpp>
#include <set>

#include "flowad/data/fabric.hpp"
#include "flowad/extract/filterbank.hpp"
#include "flowad/io/image.hpp"
#include "flowad/pipeline/evaluate.hpp"
#include "support/synthetic_images.hpp"
#include "support/temp_folder.hpp"

using namespace flowad;
using flowad::testing::temp_folder;

namespace {

std::vector<std::filesystem::path> write_good_images(const temp_folder& dir) { return testing::write_good_images(dir, 3); }

evaluation_options tiny_options() { return evaluation_options{}; }

// A tiny MS-Flow on the filter bank's features of 64 x 64 images.
inspector tiny_model() {
  pipeline_config c = pipeline_config::recommended("filterbank");
  c.height = c.width = 64;
  c.settings = {{"groups", "2"}, {"hidden", "8"}, {"blocks", "1"}, {"train.epochs", "1"}, {"train.batch_size", "4"}};
  return inspector(c);
}

}  // namespace

TEST_CASE("validation folds partition the defect-free images", "[validation]") {
  temp_folder dir;
  const std::vector<std::filesystem::path> good = write_good_images(dir);
  const evaluation_options options = tiny_options();
  REQUIRE(validation_held_out_count(good.size(), 0.2) == 2);
  REQUIRE(validation_fold_count(good.size(), 0.2) == 5);

  std::set<std::filesystem::path> seen;
  for (int fold = 0; fold < 5; ++fold) {
    validation_options split;
    split.fold = fold;
    split.defects_per_image = 2;
    inspector model = tiny_model();
    const evaluation_result r = validate_with_synthetic_defects(model, good, options, split);
    REQUIRE(r.images.size() == 2);
    for (const auto& p : r.images) CHECK(seen.insert(p).second);  // no image held out twice

    // Each held-out image: clean (label 0, empty mask), then its two defects (label 1, mask set).
    REQUIRE(r.labels == std::vector<int>{0, 1, 1, 0, 1, 1});
    REQUIRE(r.maps.n() == 6);
    REQUIRE(r.masks.n() == 6);
    for (index_t i = 0; i < 6; ++i) {
      const float* m = r.masks.data() + i * 64 * 64;
      const bool any = std::any_of(m, m + 64 * 64, [](float v) { return v != 0.0f; });
      CHECK(any == (r.labels[static_cast<std::size_t>(i)] == 1));
    }
    // The two defects of an image differ.
    CHECK(!std::equal(r.masks.data() + 64 * 64, r.masks.data() + 2 * 64 * 64, r.masks.data() + 2 * 64 * 64));
  }
  CHECK(seen == std::set<std::filesystem::path>(good.begin(), good.end()));
}

TEST_CASE("validation keeps the single-split hold-out as fold 0", "[validation]") {
  temp_folder dir;
  const std::vector<std::filesystem::path> good = write_good_images(dir);
  const evaluation_options options = tiny_options();
  inspector a = tiny_model(), b = tiny_model();
  validation_options one_defect, two_defects;
  two_defects.defects_per_image = 2;
  const evaluation_result r1 = validate_with_synthetic_defects(a, good, options, one_defect);
  const evaluation_result r2 = validate_with_synthetic_defects(b, good, options, two_defects);
  CHECK(r1.images == r2.images);
  // The first defect of each image is the one a single-defect validation draws.
  const index_t plane = 64 * 64;
  for (index_t i = 0; i < 2; ++i)
    CHECK(std::equal(r1.masks.data() + (2 * i + 1) * plane, r1.masks.data() + (2 * i + 2) * plane,
                     r2.masks.data() + (3 * i + 1) * plane));
}

TEST_CASE("validation scores at the requested map size, with masks to match", "[validation]") {
  // Input 64 x 64, metrics on 48 x 40 maps (e.g. models at several input sizes compared at one).
  temp_folder dir;
  const std::vector<std::filesystem::path> good = write_good_images(dir);
  evaluation_options options = tiny_options();
  options.map_height = 48;
  options.map_width = 40;
  inspector model = tiny_model();
  const evaluation_result r = validate_with_synthetic_defects(model, good, options, validation_options{});
  REQUIRE(r.maps.shape() == shape4{4, 1, 48, 40});
  REQUIRE(r.masks.shape() == shape4{4, 1, 48, 40});
  for (index_t i = 0; i < 4; ++i) {
    const float* m = r.masks.data() + i * 48 * 40;
    CHECK(std::any_of(m, m + 48 * 40, [](float v) { return v != 0.0f; }) == (r.labels[static_cast<std::size_t>(i)] == 1));
  }
  CHECK(r.pixel_auroc > 0.0);
}

TEST_CASE("validation rejects splits that do not exist", "[validation]") {
  temp_folder dir;
  const std::vector<std::filesystem::path> good = write_good_images(dir);
  const evaluation_options options = tiny_options();
  inspector model = tiny_model();
  auto message = [&](const validation_options& split) {
    try {
      validate_with_synthetic_defects(model, good, options, split);
    } catch (const error& e) {
      CHECK(e.code() == errc::invalid_argument);
      return std::string(e.what());
    }
    FAIL("no error");
    return std::string();
  };
  validation_options split;
  split.fold = 5;
  CHECK_THAT(message(split), Catch::Contains("fold 5") && Catch::Contains("folds 0..4"));
  split.fold = -1;
  CHECK_THAT(message(split), Catch::Contains("fold -1"));
  split = {};
  split.defects_per_image = 0;
  CHECK_THAT(message(split), Catch::Contains("defects_per_image"));
  split = {};
  split.holdout = 1.0;
  CHECK_THAT(message(split), Catch::Contains("holdout"));
}
