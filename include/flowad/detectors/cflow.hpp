// CFlow-AD (Gudovskiy et al., WACV 2022; ALGORITHMS.md §5.1 after the official gudovskiy/cflow-ad@b2ebf9e
// and anomalib's port): per feature level a conditional flow over feature *vectors* (fibres: every
// position of every image is one sample),
//
//   z = flow(x | c),  blocks × FrEIA AllInOneBlock on C x 1 x 1 fibres: affine coupling whose subnet
//                     Linear(C1 + P → 2·(C1 + P)) → ReLU → Linear(→ 2·C2) reads [x_1 | c] (a 1x1
//                     convolution on the oneDNN backend), a = 0.1·subnet, φ(s) = α·tanh(s) (the FrEIA
//                     the official code pins), α = 1.9; then softplus global affine, hard permutation,
//
// c = positionalencoding2d(P = 128, H, W) of the fibre's position (sin/cos of x in the first P/2
// channels, of y in the last P/2). Training: every fibre of a level in a seeded random order, in fibre
// batches (train.batch_size, 256 as the official code), one Adam step per fibre batch, with
//   log_prob = (C·(−0.91894) − 0.5·‖z‖² + log|det J|) / C,   loss = mean(−logsigmoid(log_prob)).
// Map: per level p_l = exp(log_prob − r_l) at each position, upsampled bilinearly (score_options'
// cell offsets) and summed over the levels into S; anomaly map = L − S (L levels), image score = the
// map's maximum.
//
// Deviations from the official code, and why:
// * r_l is a *fixed* reference: the largest log_prob of level l over the training fibres, found at the
//   end of fit() and stored in the model. The official code subtracts the maximum over the whole test
//   set (anomalib: over the batch) and uses max(S) over the test set instead of L; the maintainer called
//   the test-set normalisation improper (cflow-ad#24), and it makes one image's score depend on the
//   others. With a fixed r_l and L, images are scored alone. (The exponent is capped at 50 so that a
//   fibre far likelier than any training fibre cannot overflow.)
// * Hard permutations (anomalib's default; official: permute_soft=True, a random rotation).
// * Levels are trained one after another, each by its own run of the shared trainer (its own Adam and
//   schedule): the levels share no parameter and their losses are separate, so this is the official
//   joint loop minus its interleaving. Fibres are shuffled over the whole training set, not within
//   batches of 32 images.
// * Schedule: the recipe's warm-up over 2 of 25 meta-epochs from lr/10 and cosine decay to lr·0.1³,
//   as shares of the (much shorter) run; default_epochs instead of the recipe's 25·8 = 200.
// * The recipe reads WRN50-2 layer2..4; flowad's recommended configuration takes the extractor's three
//   levels (ResNet18 layer1..3, recipe_levels 3). paper() has the WRN50-2 shapes at 256x256.
// * Maps upsample with align_corners=False (plus the extractor's cell offsets), not align_corners=True.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "flowad/detector.hpp"
#include "flowad/layers/soft_clamp.hpp"
#include "flowad/scoring/aggregate.hpp"

namespace flowad {
inline namespace v0 {

struct cflow_config {
  std::vector<scale_shape> scales{{64, 64, 64}, {128, 32, 32}, {256, 16, 16}};
  index_t blocks = 8;                 // coupling_blocks
  index_t condition_channels = 128;   // P of the positional encoding (even, and a multiple of 4)
  double hidden_ratio = 2.0;          // subnet hidden width = hidden_ratio · (C − C/2 + P)
  soft_clamp clamp{clamp_kind::tanh_legacy, 1.9f};
  std::uint64_t seed = 0;             // subnet weights and permutations
  score_aggregation image_score = score_aggregation::max;
  double top_k_fraction = default_top_k_fraction;  // for image_score top_k_mean
  training_options training = default_training();  // batch_size counts fibres

  // The official recipe on the given levels, trained for default_epochs instead of 200: the most epochs
  // whose fit of a 209-image category of ResNet18 features at 256x256 (1.1 M fibres) stays within 3
  // minutes on 2 idle cores, 81 s per epoch timed on generated features of those shapes
  // ("[cflow_timing]" in tests/unit; docs/api.md).
  static cflow_config recommended(std::vector<scale_shape> scales);
  // The paper's size: WRN50-2 layer2..4 at 256x256 input (512x32x32, 1024x16x16, 2048x8x8).
  static cflow_config paper();
  static constexpr int default_epochs = 2;

  // Throws errc::invalid_argument naming the first invalid field.
  void validate() const;

  template <class Fields>
  void fields(Fields& f) {
    f("scales", scales);
    f("blocks", blocks);
    f("condition_channels", condition_channels);
    f("hidden_ratio", hidden_ratio);
    f("clamp", clamp.kind, clamp_kind_names());
    f("clamp_alpha", clamp.alpha);
    f("seed", seed);
    f("score.image", image_score, score_aggregation_names());
    f("score.top_k_fraction", top_k_fraction);
    training.fields(f);
  }

 private:
  static training_options default_training();
};

// positionalencoding2d(P, H, W) of the official code into dst (1 x P x H x W, any layout): with
// D = P/2 and d_k = exp(−2k·ln(10⁴)/D), k < D/2, channel 2k is sin(x·d_k), 2k+1 cos(x·d_k), D+2k
// sin(y·d_k), D+2k+1 cos(y·d_k) at column x, row y. Throws unless P is a positive multiple of 4.
void positional_encoding_2d(view dst);

class cflow final : public detector {
 public:
  explicit cflow(const cflow_config& cfg);
  ~cflow() override;
  cflow(const cflow&) = delete;
  cflow& operator=(const cflow&) = delete;

  const char* kind() const noexcept override { return "cflow"; }
  bool fitted() const noexcept override { return fitted_; }
  std::vector<scale_shape> input_shapes() const override { return cfg_.scales; }
  model_stats stats() const override;
  detector_config config() const override { return to_detector_config(cfg_); }
  const cflow_config& settings() const noexcept { return cfg_; }

  fit_report fit(const feature_maps& train, const fit_options& options = {}) override;
  using detector::score;
  void score(const feature_maps& features, const score_options& options, scores& out) const override;

  model_file_contents to_model_file() const override;
  static std::unique_ptr<cflow> from_model_file(const model_file_contents& contents);

  // Every learnable parameter, level by level, block by block.
  std::vector<const parameter*> parameters() const;
  // Per level, the reference log_prob r_l of the map (empty before fit()).
  const std::vector<float>& references() const noexcept { return references_; }

 private:
  struct impl;
  cflow_config cfg_;
  bool fitted_ = false;
  std::vector<float> references_;
  std::unique_ptr<impl> impl_;
};

}  // namespace v0
}  // namespace flowad
