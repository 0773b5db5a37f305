// FastFlow (Yu et al. 2021; ALGORITHMS.md §4, after gathierry/FastFlow, the reference the community
// uses, and anomalib): per feature scale a trainable LayerNorm over C x H x W, then a flow of FrEIA
// AllInOneBlocks,
//
//   z = flow(LayerNorm(x)),  blocks × ( affine coupling with subnet conv k×k → ReLU → conv k×k of
//                                       hidden = hidden_ratio·C/2 channels, a = 0.1·subnet,
//                                       φ(s) = α·tanh(s) (FrEIA before 2023-08), α = 2;
//                                       then Ψ·u + offset per channel, then a fixed permutation ),
//
// k = 3 in every block (the ResNet18 recipe, conv3x3_only) or 3 and 1 alternating.
// Loss: Σ_scales mean_n (0.5·‖z‖² − log|det J|), not divided by the dimension (fastflow.py).
// Map: per scale −exp(−mean_c z²/2), upsampled bilinearly (align_corners=false) and averaged over the
// scales; image score: the map's maximum (anomalib). The LayerNorm is trained with the flow but is not
// part of its log-determinant, as in the reference.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "flowad/detector.hpp"
#include "flowad/layers/soft_clamp.hpp"
#include "flowad/scoring/aggregate.hpp"

namespace flowad {
inline namespace v0 {

struct fastflow_config {
  std::vector<scale_shape> scales{{64, 64, 64}, {128, 32, 32}, {256, 16, 16}};
  index_t blocks = 8;              // flow_steps
  double hidden_ratio = 1.0;       // subnet width = hidden_ratio · (C − C/2)
  bool conv3x3_only = true;        // false: 3x3 in even blocks, 1x1 in odd ones
  soft_clamp clamp{clamp_kind::tanh_legacy, 2.0f};
  bool layer_norm = true;          // the trainable LayerNorm([C, H, W]) in front of each flow
  std::uint64_t seed = 0;          // subnet weights and permutations
  score_aggregation image_score = score_aggregation::max;
  double top_k_fraction = default_top_k_fraction;  // for image_score top_k_mean
  training_options training = default_training();

  // The recipe for ResNet18 (gathierry configs/resnet18.yaml) on the given scales, trained for
  // default_epochs instead of the recipe's 500: see docs/lab/test-set-runs.md for the budget.
  static fastflow_config recommended(std::vector<scale_shape> scales);
  static constexpr int default_epochs = 30;

  // Throws errc::invalid_argument naming the first invalid field.
  void validate() const;

  template <class Fields>
  void fields(Fields& f) {
    f("scales", scales);
    f("blocks", blocks);
    f("hidden_ratio", hidden_ratio);
    f("conv3x3_only", conv3x3_only);
    f("clamp", clamp.kind, clamp_kind_names());
    f("clamp_alpha", clamp.alpha);
    f("layer_norm", layer_norm);
    f("seed", seed);
    f("score.image", image_score, score_aggregation_names());
    f("score.top_k_fraction", top_k_fraction);
    training.fields(f);
  }

 private:
  static training_options default_training();
};

class fastflow final : public detector {
 public:
  explicit fastflow(const fastflow_config& cfg);
  ~fastflow() override;
  fastflow(const fastflow&) = delete;
  fastflow& operator=(const fastflow&) = delete;

  const char* kind() const noexcept override { return "fastflow"; }
  bool fitted() const noexcept override { return fitted_; }
  std::vector<scale_shape> input_shapes() const override { return cfg_.scales; }
  model_stats stats() const override;
  detector_config config() const override { return to_detector_config(cfg_); }
  const fastflow_config& settings() const noexcept { return cfg_; }

  fit_report fit(const feature_maps& train, const fit_options& options = {}) override;
  using detector::score;
  void score(const feature_maps& features, const score_options& options, scores& out) const override;

  model_file_contents to_model_file() const override;
  static std::unique_ptr<fastflow> from_model_file(const model_file_contents& contents);

  // Every learnable parameter: each scale's LayerNorm weight and bias, then its blocks'.
  std::vector<const parameter*> parameters() const;

 private:
  struct impl;
  fastflow_config cfg_;
  bool fitted_ = false;
  std::unique_ptr<impl> impl_;
};

}  // namespace v0
}  // namespace flowad
