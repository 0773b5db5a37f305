// Where an extractor's response to a small spot lands in an upsampled anomaly map: the geometric
// check behind feature_level::center_offset.
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <functional>
#include <vector>

#include "flowad/extract/extractor.hpp"
#include "flowad/io/image.hpp"
#include "flowad/io/preprocess.hpp"
#include "flowad/scoring/anomaly_map.hpp"
#include "flowad/workspace.hpp"

namespace flowad {
namespace testing {

// Mean displacement, in map pixels, of the response's centroid from the spot's centre.
struct displacement {
  double y = 0.0, x = 0.0;
};

// Feature maps of a batch of images, one tensor per level (any layout).
using feature_source = std::function<std::vector<tensor>(const std::vector<float_image>&)>;

// For each level `features` returns: 5x5 red spots are painted one at a time on a grid over
// `background` (an RGB float image whose size is the map size); each level's squared feature difference
// to the clean image, upsampled to that size with cell_offsets[level], has its centroid taken within 40
// pixels of the spot.
inline std::vector<displacement> spot_response_displacements(const feature_source& features,
                                                             const float_image& background,
                                                             const std::vector<double>& cell_offsets) {
  const index_t size_h = background.height(), size_w = background.width();
  constexpr index_t radius = 2, window = 40, step = 24;
  std::vector<std::pair<index_t, index_t>> spots;
  for (index_t y = 48; y + 48 <= size_h; y += step)
    for (index_t x = 48; x + 48 <= size_w; x += step) spots.emplace_back(y, x);
  REQUIRE(!spots.empty());
  std::vector<float_image> batch{background};
  for (const auto& [cy, cx] : spots) {
    float_image spotted = background;
    for (index_t y = cy - radius; y <= cy + radius; ++y)
      for (index_t x = cx - radius; x <= cx + radius; ++x) {
        spotted(y, x, 0) = 1.0f;
        spotted(y, x, 1) = spotted(y, x, 2) = 0.0f;
      }
    batch.push_back(spotted);
  }
  const std::vector<tensor> levels = features(batch);
  REQUIRE(levels.size() == cell_offsets.size());

  std::vector<displacement> out;
  for (std::size_t l = 0; l < levels.size(); ++l) {
    const tensor& f = levels[l];
    tensor energy({static_cast<index_t>(spots.size()), 1, f.h(), f.w()});
    for (index_t s = 0; s < energy.n(); ++s)
      for (index_t y = 0; y < f.h(); ++y)
        for (index_t x = 0; x < f.w(); ++x) {
          double sum = 0.0;
          for (index_t c = 0; c < f.c(); ++c) {
            const double d = f(s + 1, c, y, x) - f(0, c, y, x);
            sum += d * d;
          }
          energy(s, 0, y, x) = static_cast<float>(sum);
        }
    const tensor map = upsample_bilinear(energy.view(), size_h, size_w, cell_offsets[l]);
    displacement mean;
    for (std::size_t s = 0; s < spots.size(); ++s) {
      const auto [cy, cx] = spots[s];
      double w = 0.0, wy = 0.0, wx = 0.0;
      for (index_t y = std::max<index_t>(0, cy - window); y <= std::min(size_h - 1, cy + window); ++y)
        for (index_t x = std::max<index_t>(0, cx - window); x <= std::min(size_w - 1, cx + window); ++x) {
          const double v = map(static_cast<index_t>(s), 0, y, x);
          w += v;
          wy += v * static_cast<double>(y - cy);
          wx += v * static_cast<double>(x - cx);
        }
      REQUIRE(w > 0.0);
      mean.y += wy / w / static_cast<double>(spots.size());
      mean.x += wx / w / static_cast<double>(spots.size());
    }
    out.push_back(mean);
  }
  return out;
}

// The same for the raw levels of an extractor.
inline std::vector<displacement> spot_response_displacements(const extractor& ex, const float_image& background,
                                                             const std::vector<double>& cell_offsets) {
  const feature_source raw_levels = [&ex](const std::vector<float_image>& batch) {
    workspace ws;
    return ex.extract(normalize_images(batch, ex.normalization()).view(), ws, layout::nchw);
  };
  return spot_response_displacements(raw_levels, background, cell_offsets);
}

}  // namespace testing
}  // namespace flowad
