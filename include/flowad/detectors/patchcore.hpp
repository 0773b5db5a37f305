// PatchCore (Roth et al., CVPR 2022; ALGORITHMS.md §5.4, after amazon-science/patchcore-inspection and
// anomalib): no training, a memory bank of the training images' patch features.
//
//   patch feature  every scale averaged over its k x k neighbourhood (zero padding, divided by k²),
//                  the deeper scales upsampled bilinearly to the first scale's grid and concatenated:
//                  one D = Σ C_s vector per position of the first scale (anomalib's form);
//   memory bank    a greedy k-center coreset of every training patch feature, picked with distances
//                  measured after a random linear projection to projection_dimension (the official
//                  ApproximateGreedyCoresetSampler: δ starts at the mean distance to a few random
//                  points, which are not kept), coreset_fraction of the patches (1: all of them);
//   patch score    the Euclidean distance to the nearest bank feature;
//   image score    the largest patch score s*, re-weighted by the paper's eq. 7:
//                  s = (1 − exp d_0 / Σ_{j<b} exp d_j)·s*, d_j the distances from that patch to the b
//                  bank features nearest its nearest one (d_0 = s*); b = reweight_neighbours (anomalib's
//                  9); b = 1 gives the official code's plain maximum;
//   anomaly map    the patch scores upsampled bilinearly to the map size, then smoothed by a Gaussian
//                  of blur_sigma cells of the first scale (the official σ = 4 px at stride 8: 0.5).
//
// fit() stores the bank; scoring finds nearest neighbours with oneDNN matrix products against it, so
// memory and scoring time grow with the bank (bank_size() x feature_dimension() floats).
#pragma once

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "flowad/detector.hpp"

namespace flowad {
inline namespace v0 {

// How nearest neighbours are searched: both find the nearest bank row by matrix products and then
// compute the distance to the row found exactly in single precision. bfloat16 products (where the CPU
// multiplies bfloat16 natively, AVX512_BF16 or AMX; float32 elsewhere) run twice as fast; their
// rounding (about 2^-8·‖q − μ‖·‖b − μ‖ in a squared distance, μ the bank's mean) can pick a row a little
// farther than the nearest when several are that close. On validation of three categories no metric
// moved by more than 0.0002 (docs/lab/patchcore-search-precision.md).
enum class search_precision { bfloat16, float32 };
inline std::vector<std::pair<search_precision, const char*>> search_precision_names() {
  return {{search_precision::bfloat16, "bfloat16"}, {search_precision::float32, "float32"}};
}

struct patchcore_config {
  std::vector<scale_shape> scales{{128, 32, 32}, {256, 16, 16}};  // ResNet18 layer2 and layer3 at 256 x 256
  index_t patch_size = 3;              // local aggregation neighbourhood (odd)
  double coreset_fraction = 0.1;       // share of the training patches kept in the bank, (0, 1]
  index_t projection_dimension = 128;  // the coreset's random projection; 0: distances in full dimension
  index_t coreset_start_points = 10;   // random points the coreset's first distances are averaged over
  std::uint64_t seed = 0;              // projection and start points
  index_t reweight_neighbours = 9;     // b of eq. 7; 1: the plain maximum
  double blur_sigma = 0.5;             // map smoothing, in cells of the first scale; 0: none
  search_precision search = search_precision::bfloat16;  // docs/lab/patchcore-search-precision.md

  // The published recipe on the given scales (10 % bank, eq. 7 with b = 9, σ = 4 px at stride 8).
  static patchcore_config recommended(std::vector<scale_shape> scales);

  // Throws errc::invalid_argument naming the first invalid field.
  void validate() const;

  // Values per patch feature (Σ channels).
  index_t feature_dimension() const noexcept;

  template <class Fields>
  void fields(Fields& f) {
    f("scales", scales);
    f("patch_size", patch_size);
    f("coreset_fraction", coreset_fraction);
    f("projection_dimension", projection_dimension);
    f("coreset_start_points", coreset_start_points);
    f("seed", seed);
    f("score.reweight_neighbours", reweight_neighbours);
    f("score.blur_sigma", blur_sigma);
    f("score.search", search, search_precision_names());
  }
};

class patchcore final : public detector {
 public:
  explicit patchcore(const patchcore_config& cfg);
  ~patchcore() override;
  patchcore(const patchcore&) = delete;
  patchcore& operator=(const patchcore&) = delete;

  const char* kind() const noexcept override { return "patchcore"; }
  bool fitted() const noexcept override { return fitted_; }
  std::vector<scale_shape> input_shapes() const override { return cfg_.scales; }
  // parameters: the bank's values; macs_per_image: the nearest-neighbour search of one image.
  model_stats stats() const override;
  detector_config config() const override { return to_detector_config(cfg_); }
  const patchcore_config& settings() const noexcept { return cfg_; }

  // Builds the memory bank. fit_report::seconds is the time taken; there are no epochs. Progress is
  // reported as the coreset grows (one "step" per 1 % of it).
  fit_report fit(const feature_maps& train, const fit_options& options = {}) override;
  using detector::score;
  void score(const feature_maps& features, const score_options& options, scores& out) const override;

  model_file_contents to_model_file() const override;
  static std::unique_ptr<patchcore> from_model_file(const model_file_contents& contents);

  // Feature vectors in the bank (0 before fit), and the bank itself: bank_size() rows of
  // feature_dimension() values.
  index_t bank_size() const noexcept;
  const std::vector<float>& bank() const noexcept;

 private:
  struct impl;
  patchcore_config cfg_;
  bool fitted_ = false;
  std::unique_ptr<impl> impl_;
};

}  // namespace v0
}  // namespace flowad
