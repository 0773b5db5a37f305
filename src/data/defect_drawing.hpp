// What the fabric data set (data/fabric.cpp) and the defects on real images (data/synthetic_defects.cpp)
// share: the seed mixer, the size conventions, and the defect drawing itself.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>

#include "flowad/detail/random.hpp"
#include "flowad/io/image.hpp"

namespace flowad {
inline namespace v0 {
namespace detail {

// Defects are sized for images at least this large, on either side.
inline constexpr index_t min_defect_image_side = 32;
// Sizes in the drawing code are given for an image of this side and scaled with the shorter side.
inline constexpr double reference_side = 256.0;

// splitmix64's finaliser: turns structured seeds (seed, split, index) into unrelated rng seeds.
inline std::uint64_t mix(std::uint64_t z) noexcept {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

inline float clamp01(double v) noexcept {
  return static_cast<float>(std::min(1.0, std::max(0.0, v)));
}

// Draws a defect of `type` (a validation_defect_types entry; anything else draws a crack) onto the RGB
// image (values in [0, 1]) from r, sized by `scale` (the shorter side over reference_side). A defect
// that falls mostly outside the image is drawn again on the clean image, up to 100 times, so that
// every mask has a visible size. Returns the 1-channel mask: 1 where the defect's anti-aliased
// coverage is at least 1/2.
byte_image draw_visible_defect(float_image& image, const std::string& type, rng& r, double scale);

}  // namespace detail
}  // namespace v0
}  // namespace flowad
