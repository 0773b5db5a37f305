// DifferNet (Rudolph, Wandt, Rosenhahn, WACV 2021; ALGORITHMS.md §5.3, after the official
// marco-rudolph/differnet@9bdf026): an image-level flow on pooled features of rotated copies of an image.
//
//   v = [mean_{h,w} x_1 | mean_{h,w} x_2 | ...]          each scale averaged over H, W, concatenated
//   z = flow(v),  blocks × ( fixed seeded permutation, then vector_coupling: two-step Glow coupling,
//                            φ(s) = α·0.636·atan(s/α), α = 3, output clamped to ±1e6, subnets
//                            Linear(d/2, 2048)–ReLU–Linear(2048, 2048)–ReLU–Linear(2048, 2048)–ReLU–
//                            Linear(2048, d) with PyTorch's default initialisation )
//
// Loss: mean_n (0.5·‖z‖² − log|det J|) / d; Adam(2e-4, betas (0.8, 0.8), eps 1e-4, weight decay 1e-5),
// no schedule, no clipping; a batch is 24 images with all their training copies (96 vectors).
// Score of one sample: mean_d z² (no 0.5, no log-determinant); the image pipeline averages it over an
// image's rotated copies (rotations()), which is the reference's mean over 64 transforms × d.
// DifferNet does not localise: localises() is false and score() returns no maps (N x 1 x 0 x 0).
//
// Deviations from the official code, and why:
// * Features: the pipeline's ResNet18 layer1..layer3 of one 256 x 256 image (64 + 128 + 256 = 448
//   values) instead of AlexNet's last map at 448, 224 and 112 pixels (768 values): flowad's backbones
//   give several levels of one pass; the pooling and concatenation are the reference's. The paper
//   preset (paper()) keeps the reference's 3 x 256 AlexNet shapes, for its size.
// * Permutations: flowad's seeded generator, not NumPy's legacy permutations of 768 (the input size
//   differs anyway); stored in model files and checked on load.
// * Rotations: fixed angles i·360/rotations.test at test time (the reference's evaluate.py; train.py
//   draws them at random, which a library should not); training copies are a fixed seeded set of
//   rotations.train angles per image, U[−180°, 180°) as RandomRotation(180), drawn once because
//   features are extracted once before fitting instead of every epoch.
// * Epochs: default_epochs instead of the recipe's 192 (meta 24 × sub 8), the time budget of a fit
//   on this kind of machine (docs/api.md); `train.epochs=192` restores it. No model is selected on a
//   test set (the reference reports the best epoch's test AUROC).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "flowad/detector.hpp"
#include "flowad/layers/soft_clamp.hpp"

namespace flowad {
inline namespace v0 {

struct differnet_config {
  std::vector<scale_shape> scales{{64, 64, 64}, {128, 32, 32}, {256, 16, 16}};
  index_t blocks = 8;         // n_coupling_blocks
  index_t hidden = 2048;      // fc_internal
  index_t hidden_layers = 3;  // ReLU layers per subnet
  float clamp_alpha = 3.0f;   // φ(s) = α·0.636·atan(s/α)
  std::uint64_t seed = 0;     // subnet weights and permutations
  // Rotated copies of each image (the image pipeline makes them; features of copies come consecutive):
  // training copies per image (n_transforms) and test copies at angles i·360/test (n_transforms_test).
  index_t train_rotations = 4;
  index_t test_rotations = 64;
  std::uint64_t rotation_seed = 0;  // the training copies' angles
  training_options training = default_training();

  // The recipe on the given scales, trained for default_epochs instead of 192.
  static differnet_config recommended(std::vector<scale_shape> scales);
  // The reference's sizes: AlexNet's 256 channels at three image sizes (13², 6², 2²), 768 inputs.
  static differnet_config paper();
  // The most epochs whose fit of a 209-image category (with its 836 copies' features) stays within 3
  // minutes on 2 idle cores: 8.6 s per epoch (docs/api.md, DifferNet).
  static constexpr int default_epochs = 18;
  static constexpr int images_per_batch = 24;

  index_t input_size() const noexcept;  // d = Σ channels
  // Throws errc::invalid_argument naming the first invalid field.
  void validate() const;

  template <class Fields>
  void fields(Fields& f) {
    f("scales", scales);
    f("blocks", blocks);
    f("hidden", hidden);
    f("hidden_layers", hidden_layers);
    f("clamp_alpha", clamp_alpha);
    f("seed", seed);
    f("rotations.train", train_rotations);
    f("rotations.test", test_rotations);
    f("rotations.seed", rotation_seed);
    training.fields(f);
  }

 private:
  static training_options default_training();
};

class differnet final : public detector {
 public:
  explicit differnet(const differnet_config& cfg);
  ~differnet() override;
  differnet(const differnet&) = delete;
  differnet& operator=(const differnet&) = delete;

  const char* kind() const noexcept override { return "differnet"; }
  bool fitted() const noexcept override { return fitted_; }
  std::vector<scale_shape> input_shapes() const override { return cfg_.scales; }
  model_stats stats() const override;
  detector_config config() const override { return to_detector_config(cfg_); }
  const differnet_config& settings() const noexcept { return cfg_; }
  bool localises() const noexcept override { return false; }
  image_rotations rotations() const override;

  // Fits on train_rotations consecutive copies per image (N must be a multiple of it; batches hold
  // train.batch_size images with all their copies, the loss averages over the copies).
  fit_report fit(const feature_maps& train, const fit_options& options = {}) override;
  using detector::score;
  // One score per sample (copy): mean z². out.maps is N x 1 x 0 x 0.
  void score(const feature_maps& features, const score_options& options, scores& out) const override;

  model_file_contents to_model_file() const override;
  static std::unique_ptr<differnet> from_model_file(const model_file_contents& contents);

  // Every learnable parameter, block by block (S2's Linear layers, then S1's).
  std::vector<const parameter*> parameters() const;

 private:
  struct impl;
  differnet_config cfg_;
  bool fitted_ = false;
  std::unique_ptr<impl> impl_;
};

}  // namespace v0
}  // namespace flowad
