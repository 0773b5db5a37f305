// A procedural inspection data set: no files, fully determined by a seed.
//
// The "product" is a plain-woven fabric whose look is fixed by the seed: warp and weft threads of
// two close colours, per-thread thickness-like brightness variation, fibre grain running along the
// threads, dark holes where threads cross, and a low-frequency shading field. Every image is a crop
// of that fabric with mild per-image variation: a shift of up to ~3 pixels (scaled with the image),
// a brightness gain of +-7%, a small colour-balance change and sensor noise (sigma 0.012).
//
// Anomalous test images carry exactly one defect, with its pixel mask (pixels whose defect coverage
// is at least one half):
//   - scratch: a thin curved line (quadratic Bezier), lighter (mostly) or darker than the fabric;
//   - spot:    an irregular blob tinted rust, oil-dark or bluish, the weave still visible through it;
//   - crack:   a dark, tapering random-walk line with one to three branches.
// Defects are drawn on the fabric texture, so they are visible to a detector of local texture but
// overlap the fabric's own intensity range: a per-pixel intensity threshold does not separate them.
//
// Everything is drawn from flowad's detail::rng, never from std:: distributions, so the same seed
// gives the same bytes on every platform. Image i of a split depends on (seed, split, i) only: it
// does not change when counts change.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "flowad/io/image.hpp"

namespace flowad {
inline namespace v0 {

// Defect type names, sorted (also the MVTec folder names written by write_mvtec_layout).
inline constexpr std::array<const char*, 3> synthetic_defect_types{"crack", "scratch", "spot"};

struct synthetic_options {
  index_t height = 256;           // at least 32
  index_t width = 256;            // at least 32
  index_t train_count = 64;       // defect-free training images, >= 1
  index_t test_count = 40;        // test images, >= 1
  double anomaly_fraction = 0.5;  // share of anomalous test images, in [0, 1], rounded to nearest
  std::uint64_t seed = 1;
};

struct synthetic_dataset {
  std::vector<byte_image> train;          // RGB, defect-free
  std::vector<byte_image> test;           // RGB
  std::vector<int> labels;                // per test image: 0 good, 1 anomalous
  std::vector<std::string> defect_types;  // per test image: "good" or a synthetic_defect_types entry
  std::vector<byte_image> masks;          // per test image: 1 channel of 0/1, all zero when good
};

// Generates a data set. The test set is ordered as read_mvtec_category lists it after
// write_mvtec_layout: by defect folder name ("crack", "good", "scratch", "spot"), then by index.
// The anomalous images are split evenly over the three defect types (the first types get one more
// when the count does not divide). Throws errc::invalid_argument for options outside their domains.
synthetic_dataset generate_synthetic_dataset(const synthetic_options& options = {});

// One synthetic defect drawn onto a copy of a real image, with its 0/1 mask: a scratch, spot or crack as
// in the synthetic data set, a "patch" (a mirrored, brightness-changed piece of the image pasted
// elsewhere: CutPaste) or a "displaced" region (below), chosen by the seed among the first four when
// type is empty. Defect-free images plus such defects make a validation set with
// which settings and thresholds can be chosen without any real defective image (and without looking at
// the test set). The defects are sized for the image (relative to a 256-pixel side).
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

// Writes the data set in the MVTec AD layout (see flowad/io/dataset.hpp): train/good/000.png,
// test/<type>/000.png, ground_truth/<type>/000_mask.png (0/255), numbering each folder from 0.
// The root is created; it must not exist or be empty, so files of an older data set never mix in
// (errc::invalid_argument otherwise). errc::invalid_argument when the data set's columns disagree,
// errc::io_error when a file cannot be written.
void write_mvtec_layout(const synthetic_dataset& dataset, const std::filesystem::path& root);

}  // namespace v0
}  // namespace flowad
