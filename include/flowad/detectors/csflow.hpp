// CS-Flow (Rudolph, Wehrbein, Rosenhahn, Wandt, WACV 2022; ALGORITHMS.md §3, after the official
// marco-rudolph/cs-flow@88a13b8): one flow over all feature scales at once,
//
//   z = ( blocks × [ a fixed channel permutation per scale (seeded),
//                    cross_scale_coupling with kernel kernels[b]: affine couplings whose scales and
//                    shifts come from CrossConvolutions that mix neighbouring scales ] )(x_0, x_1, x_2),
//
// hidden width `hidden`, LeakyReLU 0.1, γ initialised to 0 (every block starts as the identity),
// soft clamp φ(s) = α·0.636·atan(s/α) with α = 3, outputs hard-clamped to ±1e6.
// Loss: mean_n (0.5·Σ z² − Σ_scales log|det J|) / D with D = Σ_j C_j·H_j·W_j (utils.py get_loss).
// Training: Adam (lr 2e-4, eps 1e-4, weight decay 1e-5, PyTorch's betas), gradient-norm clip 1,
// batch 16, no schedule (train.py).
// Image score: mean(z²/2) over all D values of the scales (train.py; the Jacobian is not used).
// Map: anomalib's, the product over the scales of mean_c z_j², each upsampled bilinearly
// (align_corners=False) to the map size. The official code's map is scale 0's alone and serves only
// visualisation; the product asks every scale to agree, and it is the one that has been evaluated
// pixel-wise (anomalib's README: pixel AUROC 0.921 on MVTec AD).
//
// Deviations from the official code, and why:
// - Features: the official code feeds EfficientNet-B5 (block 35, 304 channels, stride 32) with the
//   image at 3 sizes (768, 384, 192 → 24x24, 12x12, 6x6); flowad's recipe reads ResNet18 layer1..3
//   (64/128/256 channels, strides 4/8/16) of one image, whose sizes also halve from scale to scale.
//   Channel counts therefore differ per scale; each convolution is sized for its target scale.
//   Scale j + 1 must be half of scale j rounded up, which every input size gives on ResNet18 (400x300:
//   100x75, 50x38, 25x19); where a finer size is odd, the coarser scale's x2 upsampling is cropped by
//   its last row or column (never needed at the paper's 24/12/6).
// - Budget: hidden 32 instead of 1024 and 6 epochs instead of 240 (4 × 60), so that fitting a
//   209-image category at 256x256 (14 steps of 16 per epoch) stays near 3 minutes on this 2-core CPU.
//   Measured with the test "[.csflow-budget]" (optimiser steps on generated features of the real
//   shapes): 3.6 s per step on one thread at hidden 32 (6.4 s at 64, 2.2 s at 16); on two threads
//   about 2 s if they scale as oneDNN's convolutions do here (not measured idle: the machine was shared,
//   and a loaded two-thread run took 5.3 s), so 6 epochs ≈ 170 s; at hidden 64 only 3 epochs would
//   fit, at 1024 not one. The width is cut
//   as well as the epochs because 3 epochs (42 steps) would leave the γs, which start at 0 and move
//   about one learning rate per step, practically at the identity. `hidden` and `train.epochs`
//   restore the paper's values.
// - Permutations are drawn by flowad's generator, not numpy's (the same kind of fixed permutation).
// - The inverse is exact (the official reverse pass takes t from the wrong conditioner).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "flowad/detector.hpp"

namespace flowad {
inline namespace v0 {

struct csflow_config {
  std::vector<scale_shape> scales{{64, 64, 64}, {128, 32, 32}, {256, 16, 16}};
  index_t blocks = 4;                        // n_coupling_blocks
  std::vector<index_t> kernels{3, 3, 3, 5};  // block b uses kernels[b % kernels.size()]
  index_t hidden = default_hidden;           // fc_internal (paper: 1024; see the budget above)
  float clamp_alpha = 3.0f;                  // α of the atan soft clamp
  std::uint64_t seed = 0;                    // weights and permutations
  training_options training = default_training();

  static constexpr index_t default_hidden = 32;
  static constexpr int default_epochs = 6;

  // The recipe (official defaults, budgeted as above) on the given scales.
  static csflow_config recommended(std::vector<scale_shape> scales);
  // The paper's model: 304 channels at 24x24, 12x12, 6x6, hidden 1024, 240 epochs
  // (275.23 M parameters, 65.85 GMAC per image).
  static csflow_config paper();

  // Throws errc::invalid_argument naming the first invalid field.
  void validate() const;

  template <class Fields>
  void fields(Fields& f) {
    f("scales", scales);
    f("blocks", blocks);
    f("kernels", kernels);
    f("hidden", hidden);
    f("clamp_alpha", clamp_alpha);
    f("seed", seed);
    training.fields(f);
  }

 private:
  static training_options default_training();
};

class csflow final : public detector {
 public:
  // Validates the configuration; the flow itself is allocated when first needed (fit, load,
  // parameters()), so that describing a configuration (stats(), config()) costs nothing.
  explicit csflow(const csflow_config& cfg);
  ~csflow() override;
  csflow(const csflow&) = delete;
  csflow& operator=(const csflow&) = delete;

  const char* kind() const noexcept override { return "csflow"; }
  bool fitted() const noexcept override { return fitted_; }
  std::vector<scale_shape> input_shapes() const override { return cfg_.scales; }
  // Counted from the configuration: every convolution weight and bias and the γs; MACs of the
  // convolutions (ALGORITHMS.md §3's count).
  model_stats stats() const override;
  detector_config config() const override { return to_detector_config(cfg_); }
  const csflow_config& settings() const noexcept { return cfg_; }

  fit_report fit(const feature_maps& train, const fit_options& options = {}) override;
  using detector::score;
  void score(const feature_maps& features, const score_options& options, scores& out) const override;

  model_file_contents to_model_file() const override;
  static std::unique_ptr<csflow> from_model_file(const model_file_contents& contents);

  // Every learnable parameter, block by block (builds the flow if needed).
  std::vector<const parameter*> parameters() const;

 private:
  struct impl;
  csflow_config cfg_;
  bool fitted_ = false;
  std::unique_ptr<impl> impl_;
};

}  // namespace v0
}  // namespace flowad
