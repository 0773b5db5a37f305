// Synthetic defects drawn on real images. Defect-free images plus such defects make a validation set
// with which settings and thresholds can be chosen without any real defective image (and without
// looking at the test set).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "flowad/io/image.hpp"

namespace flowad {
inline namespace v0 {

// One synthetic defect drawn onto a copy of a real image, with its 0/1 mask: a scratch, spot or crack as
// in the synthetic data set (flowad/data/fabric.hpp), a "patch" (a mirrored, brightness-changed piece
// of the image pasted elsewhere: CutPaste) or a "displaced" region (below), chosen by the seed among
// the first four when type is empty. The defects are sized for the image (relative to a 256-pixel
// side), which must be RGB and at least 32x32 (errc::invalid_argument otherwise, as for an unknown
// type).
struct defect_sample {
  byte_image image;
  byte_image mask;
  std::string type;
};
defect_sample add_synthetic_defect(const byte_image& image, std::uint64_t seed, const std::string& type = "");

// Every type add_synthetic_defect draws, sorted. "displaced" is a large irregular region (40 to 150
// pixels across at a 256-pixel side) showing the image itself translated by a quarter to half of its
// side: a missing or misplaced part, normal material in the wrong place.
inline constexpr std::array<const char*, 5> validation_defect_types{"crack", "displaced", "patch", "scratch", "spot"};

// What an empty type above draws from: the validation set every result before "displaced" existed
// was measured on.
inline constexpr std::array<const char*, 4> default_validation_defect_types{"crack", "patch", "scratch", "spot"};

// The same with the type drawn (by the seed) from choose_from; a single type is used as given, so
// add_synthetic_defect(image, seed, {t}) equals add_synthetic_defect(image, seed, t).
defect_sample add_synthetic_defect(const byte_image& image, std::uint64_t seed,
                                   const std::vector<std::string>& choose_from);

}  // namespace v0
}  // namespace flowad
