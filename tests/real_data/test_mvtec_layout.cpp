#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <numeric>

#include "flowad/io/dataset.hpp"
#include "flowad/io/image.hpp"
#include "flowad/io/preprocess.hpp"
#include "support/shared_data.hpp"

using namespace flowad;
namespace fs = std::filesystem;

namespace {

fs::path bottle_root() { return flowad::testing::shared_path("data/mvtec_bottle"); }

}  // namespace

TEST_CASE("MVTec bottle has the published layout", "[real-data]") {
  const mvtec_category bottle = read_mvtec_category(bottle_root());
  CHECK(bottle.train.size() == 209);
  REQUIRE(bottle.test.size() == 83);
  const std::vector<int> labels = bottle.test_labels();
  CHECK(std::count(labels.begin(), labels.end(), 1) == 63);
  CHECK(bottle.defect_types() == std::vector<std::string>{"broken_large", "broken_small", "contamination"});

  std::map<std::string, int> per_type;
  for (const test_sample& s : bottle.test) ++per_type[s.defect_type];
  CHECK(per_type["good"] == 20);
  CHECK(per_type["broken_large"] == 20);
  CHECK(per_type["broken_small"] == 22);
  CHECK(per_type["contamination"] == 21);

  // Every defective image has a non-empty 900x900 mask of its own; good images have none.
  for (const test_sample& s : bottle.test) {
    INFO(s.image);
    if (s.label == 0) {
      CHECK(s.mask.empty());
      continue;
    }
    REQUIRE(fs::is_regular_file(s.mask));
    CHECK(s.mask.filename().string() == s.image.stem().string() + "_mask.png");
    const byte_image mask = read_mask(s.mask);
    CHECK(mask.height() == 900);
    CHECK(mask.width() == 900);
    CHECK(std::count(mask.data(), mask.data() + mask.size(), 1) > 0);
  }
}

TEST_CASE("MVTec bottle images decode as 900x900 RGB and batch to ImageNet tensors", "[real-data]") {
  const mvtec_category bottle = read_mvtec_category(bottle_root());
  for (const fs::path& path : {bottle.train.front(), bottle.train.back(), bottle.test.front().image}) {
    INFO(path);
    const byte_image image = read_image(path);
    CHECK(image.height() == 900);
    CHECK(image.width() == 900);
    CHECK(image.channels() == 3);
  }

  const std::vector<fs::path> paths(bottle.train.begin(), bottle.train.begin() + 4);
  const tensor batch = load_image_batch(paths, 256, 256);
  REQUIRE(batch.shape() == shape4{4, 3, 256, 256});
  // Normalised values of [0, 1] inputs lie in [-0.485 / 0.229, (1 - 0.406) / 0.225].
  const auto [lo, hi] = std::minmax_element(batch.data(), batch.data() + batch.numel());
  CHECK(*lo >= -2.12f);
  CHECK(*hi <= 2.641f);
  CHECK(*hi - *lo > 1.0f);  // real content, not a constant

  std::vector<fs::path> mask_paths;
  for (const test_sample& s : bottle.test)
    if (s.defect_type == "broken_large" || s.defect_type == "good") mask_paths.push_back(s.mask);
  const tensor masks = load_mask_batch(mask_paths, 256, 256);
  for (std::size_t i = 0; i < mask_paths.size(); ++i) {
    const float* m = masks.data() + i * 256 * 256;
    const float area = std::accumulate(m, m + 256 * 256, 0.0f);
    INFO(mask_paths[i]);
    CHECK((area > 0.0f) == !mask_paths[i].empty());
  }
}
