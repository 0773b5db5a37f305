// Scoring one fitted detector from several threads at once must give what serial scoring gives, bit
// for bit (score() is const and thread-safe); each thread scores `repeats` times into the same result,
// so that reused buffers are exercised too.
#pragma once

#include <catch2/catch.hpp>

#include <cstring>
#include <thread>
#include <vector>

#include "flowad/detector.hpp"

namespace flowad {
namespace testing {

inline void check_concurrent_scores_match_serial(const detector& model, const feature_maps& features,
                                                 const score_options& options = {}, std::size_t threads = 4,
                                                 int repeats = 3) {
  const scores reference = model.score(features, options);
  std::vector<scores> results(threads);
  std::vector<std::thread> workers;
  for (std::size_t t = 0; t < threads; ++t)
    workers.emplace_back([&, t] {
      for (int r = 0; r < repeats; ++r) model.score(features, options, results[t]);
    });
  for (auto& w : workers) w.join();
  for (const scores& r : results) {
    CHECK(r.image == reference.image);
    REQUIRE(r.maps.bytes() == reference.maps.bytes());
    // Detectors without maps (DifferNet) leave them empty, and memcmp must not see their null data.
    if (reference.maps.bytes() > 0)
      CHECK(std::memcmp(r.maps.data(), reference.maps.data(), reference.maps.bytes()) == 0);
  }
}

}  // namespace testing
}  // namespace flowad
