#include "flowad/detail/random.hpp"
#include "flowad/detector.hpp"

namespace flowad {
inline namespace v0 {

std::vector<double> image_rotations::training_angles(std::size_t image) const {
  // One generator per image, so that an image's angles do not depend on which other images are fitted.
  detail::rng r(training_seed * 0x9E3779B97F4A7C15ull + 0xA5A5A5A5ull + static_cast<std::uint64_t>(image) * 0xD6E8FEB86659FD93ull);
  std::vector<double> angles(static_cast<std::size_t>(training_copies));
  for (double& a : angles) a = r.uniform(-180.0, 180.0);
  return angles;
}

}  // namespace v0
}  // namespace flowad
