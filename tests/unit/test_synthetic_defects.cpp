#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <set>
#include <string>

#include "flowad/data/fabric.hpp"
#include "flowad/data/synthetic_defects.hpp"

using namespace flowad;

namespace {

index_t count_set(const byte_image& mask) {
  return std::count_if(mask.data(), mask.data() + mask.size(), [](std::uint8_t v) { return v != 0; });
}

}  // namespace

// The validation of `flowad validate` rests on these masks: they must mark what was drawn.
TEST_CASE("synthetic defects on a given image come with masks on the pixels they change", "[io]") {
  synthetic_options o;
  o.height = 256;
  o.width = 320;
  o.train_count = 1;
  o.test_count = 1;
  o.seed = 3;
  const byte_image fabric = generate_synthetic_dataset(o).train.front();
  // Anti-aliased drawing changes a rim of pixels that the mask (coverage >= 1/2) leaves out; nothing
  // the defect changes lies farther than `rim` pixels from its mask.
  constexpr index_t rim = 2;
  for (const std::string type : {"crack", "displaced", "patch", "scratch", "spot"}) {
    double beyond_rim = 0.0, unchanged = 0.0;
    constexpr int samples = 12;
    for (std::uint64_t seed = 0; seed < samples; ++seed) {
      const defect_sample d = add_synthetic_defect(fabric, seed, type);
      INFO(type << " seed " << seed);
      CHECK(d.type == type);
      REQUIRE(d.image.height() == fabric.height());
      REQUIRE(d.image.width() == fabric.width());
      REQUIRE(d.image.channels() == 3);
      REQUIRE(d.mask.height() == fabric.height());
      REQUIRE(d.mask.width() == fabric.width());
      REQUIRE(d.mask.channels() == 1);
      CHECK(count_set(d.mask) >= 8);
      CHECK(std::all_of(d.mask.data(), d.mask.data() + d.mask.size(), [](std::uint8_t v) { return v <= 1; }));
      const auto near_mask = [&](index_t y, index_t x) {
        for (index_t v = std::max<index_t>(0, y - rim); v <= std::min(fabric.height() - 1, y + rim); ++v)
          for (index_t u = std::max<index_t>(0, x - rim); u <= std::min(fabric.width() - 1, x + rim); ++u)
            if (d.mask(v, u, 0)) return true;
        return false;
      };
      double changed = 0, far = 0, masked = 0, masked_unchanged = 0;
      for (index_t y = 0; y < fabric.height(); ++y)
        for (index_t x = 0; x < fabric.width(); ++x) {
          int diff = 0;
          for (index_t c = 0; c < 3; ++c) diff += std::abs(int(d.image(y, x, c)) - int(fabric(y, x, c)));
          const bool is_changed = diff > 6, in_mask = d.mask(y, x, 0) != 0;
          if (is_changed) {
            changed += 1;
            if (!in_mask && !near_mask(y, x)) far += 1;
          }
          if (in_mask) {
            masked += 1;
            if (!is_changed) masked_unchanged += 1;
          }
        }
      REQUIRE(changed > 0);
      beyond_rim += far / changed / samples;
      unchanged += masked_unchanged / masked / samples;
    }
    INFO(type << ": changed beyond the rim " << beyond_rim << ", mask unchanged " << unchanged);
    CHECK(beyond_rim < 0.01);
    CHECK(unchanged < 0.05);
  }
  // A function of the seed; the type drawn by the seed when none is asked for.
  const defect_sample a = add_synthetic_defect(fabric, 7), b = add_synthetic_defect(fabric, 7);
  CHECK(std::equal(a.image.data(), a.image.data() + a.image.size(), b.image.data()));
  CHECK(std::equal(a.mask.data(), a.mask.data() + a.mask.size(), b.mask.data()));
  CHECK(a.type == b.type);
  std::set<std::string> drawn;
  for (std::uint64_t seed = 0; seed < 40; ++seed) drawn.insert(add_synthetic_defect(fabric, seed).type);
  CHECK(drawn == std::set<std::string>{"crack", "patch", "scratch", "spot"});
  // Drawn from a list; one type alone is that type's defect.
  const std::vector<std::string> all(validation_defect_types.begin(), validation_defect_types.end());
  drawn.clear();
  for (std::uint64_t seed = 0; seed < 60; ++seed) drawn.insert(add_synthetic_defect(fabric, seed, all).type);
  CHECK(drawn == std::set<std::string>(all.begin(), all.end()));
  const defect_sample named = add_synthetic_defect(fabric, 5, "displaced"),
                      listed = add_synthetic_defect(fabric, 5, std::vector<std::string>{"displaced"});
  CHECK(std::equal(named.image.data(), named.image.data() + named.image.size(), listed.image.data()));
  CHECK_THROWS_WITH(add_synthetic_defect(fabric, 1, std::vector<std::string>{}), Catch::Contains("no defect type"));
  CHECK_THROWS_WITH(add_synthetic_defect(fabric, 1, std::vector<std::string>{"spot", "dent"}), Catch::Contains("'dent'"));
  // Bad input.
  CHECK_THROWS_WITH(add_synthetic_defect(fabric, 1, "dent"), Catch::Contains("'dent'"));
  CHECK_THROWS_WITH(add_synthetic_defect(byte_image(64, 64, 1), 1), Catch::Contains("64x64x1"));
  CHECK_THROWS_WITH(add_synthetic_defect(byte_image(16, 64, 3), 1), Catch::Contains("16x64x3"));
}
