// A procedural inspection data set: no files, fully determined by a seed. The demo (`flowad demo`)
// fits and evaluates on it.
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
//
// flowad/data/mvtec_layout.hpp writes such a data set to disk; flowad/data/synthetic_defects.hpp
// draws the same kinds of defect on real images.
#pragma once

#include <array>
#include <cstdint>
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

}  // namespace v0
}  // namespace flowad
