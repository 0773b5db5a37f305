// MS-Flow: a normalizing flow over feature maps whose coupling is hierarchical over channel groups
// (ALGORITHMS.md §6.3; the seed paper's full text is not available, so the architecture is a
// reconstruction from its abstract and its parameter and FLOP tables). Each scale of the input has
// its own flow (a paired scale two, see positions):
//
//   [position_norm, set from the training set]                        (relative and paired scales)
//   [actnorm, set from the training set and not trained further]      (input_normalization)
//   blocks × ( seeded channel permutation | invertible 1x1 convolution ,
//              affine_coupling with g groups: y_1 = x_1, y_i = x_i·exp(φ(s_i)) + t_i,
//              (s_i, t_i) = γ_i·F_i(y_{i−1}), kernels cycling through `kernels` )
//
// Loss: mean over the batch of (0.5·‖z‖² − log|det J|) / D, D = Σ_flows C·H·W (CS-Flow).
// Anomaly map: mean_c(z²)/2 per position of each scale, averaged over a paired scale's two flows,
// upsampled bilinearly (align_corners=false, each scale's grid moved by score_options::cell_offsets)
// to the map size and averaged over scales; image score per `image_score`.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "flowad/detector.hpp"
#include "flowad/layers/affine_coupling.hpp"
#include "flowad/layers/soft_clamp.hpp"
#include "flowad/scoring/aggregate.hpp"
#include "flowad/scoring/anomaly_map.hpp"

namespace flowad {
inline namespace v0 {

enum class block_mixing {
  permute,         // a fixed channel permutation drawn from the seed (CS-Flow's ParallelPermute)
  invertible_1x1,  // Glow's learnable LU-parameterised 1x1 convolution
};
inline std::vector<std::pair<block_mixing, const char*>> block_mixing_names() {
  return {{block_mixing::permute, "permute"}, {block_mixing::invertible_1x1, "invertible_1x1"}};
}

// Whether a scale's flow knows where on the image a feature was seen (docs/lab/msflow-bottle.md,
// items 27-36).
enum class position_mode {
  free,      // one flow on the features as they are: the same density at every position
  relative,  // one flow on the features standardised per position first (position_norm)
  paired,    // both flows on the scale; its map is the mean of the two flows' maps
};

struct scale_position {
  position_mode mode = position_mode::free;
  index_t pool_radius = 1;  // cells each position's statistics pool over (position_norm), 0..63
  friend bool operator==(const scale_position& a, const scale_position& b) {
    return a.mode == b.mode && a.pool_radius == b.pool_radius;
  }
};

// "free", "relative:R" or "paired:R" per scale, comma-separated ("free,paired:1"); "" for every
// scale free. Parsing accepts "relative" and "paired" without a radius (1) and throws `code` naming
// what is wrong.
std::string to_config_text(const std::vector<scale_position>& positions);
void parse_config_text(errc code, const std::string& key, const std::string& text, std::vector<scale_position>& out);

struct msflow_config {
  std::vector<scale_shape> scales{{304, 24, 24}};
  index_t groups = 4;
  index_t hidden = 512;
  index_t blocks = 8;
  std::vector<index_t> kernels{3, 1};  // block b uses kernels[b % kernels.size()]
  subnet_activation activation = subnet_activation::leaky_relu;
  float negative_slope = 0.1f;
  soft_clamp clamp{clamp_kind::atan, 3.0f};
  // γ, the learned gain on each conditioner's output. CS-Flow starts it at 0 (every block the identity),
  // but then no gradient reaches the conditioners until Adam has moved γ, and the loss sits on a plateau
  // for epochs (seen on MVTec bottle: after 8 epochs the loss was -1.25 from 0, -1.68 from 0.1).
  bool learn_gain = true;
  float gain_init = 0.1f;
  block_mixing mixing = block_mixing::permute;
  // An actnorm set to the training set's per-channel mean and standard deviation and then kept fixed:
  // trained, its bias moved a channel that is constant on the training set by lr/σ standard deviations
  // per step and the fit blew up.
  bool input_normalization = true;
  // Empty: every scale free. Otherwise one entry per scale. A relative or paired scale's features are
  // standardised per position (position_norm, set from the training set, before the input actnorm).
  // A paired scale has a second flow: the flows of all scales come first, in scale order, then the
  // paired scales' second flows, in scale order; a flow's index seeds its weights and permutations.
  std::vector<scale_position> positions;
  std::uint64_t seed = 0;  // weights and permutations

  // Scoring: how a map becomes an image score. (Other ways of combining the scales' maps and blurring
  // them were tried on validation and changed nothing worth a setting: docs/lab/msflow-bottle.md.)
  score_aggregation image_score = score_aggregation::top_k_mean;
  double top_k_fraction = default_top_k_fraction;  // for top_k_mean: MSFlow's 3 %

  // The training recipe.
  training_options training = default_training();

  // The seed paper's setting: EfficientNet-B5 block 35 (304 x 24 x 24), 4 groups, 8 blocks with
  // kernels 3,1, hidden 512: 14.0 M parameters, 8.1 GMAC per image (the paper's Table 4).
  static msflow_config paper();

  // flowad's default on real data: the paper's groups and blocks with hidden 256 and 1x1 conditioners
  // (every position's latent its own), on the given scales; Adam lr 1e-3, 16 epochs with a 2-epoch
  // warm-up and cosine decay; maps averaged over scales, image score the mean of the top 3 % of the map.
  // Every scale is free, unless the geometry says the extractor recommends per-position statistics
  // and gives the strides: then every scale is relative, each position's statistics pooled over
  // ±16 input pixels (relative:2,relative:1 at strides 8 and 16). Chosen on synthetic-defect
  // validation of three categories (docs/lab/positions-on-three-categories.md); 0.91 GMAC per image on ResNet18's layer2 and
  // layer3.
  static msflow_config recommended(std::vector<scale_shape> scales);
  static msflow_config recommended(const feature_geometry& geometry);
  static constexpr double position_pool_pixels = 16.0;

  // Throws errc::invalid_argument naming the first invalid field.
  void validate() const;

  // The position setting of scale s (free when `positions` is empty).
  scale_position position(std::size_t s) const { return positions.empty() ? scale_position{} : positions[s]; }

  template <class Fields>
  void fields(Fields& f) {
    f("scales", scales);
    f("groups", groups);
    f("hidden", hidden);
    f("blocks", blocks);
    f("kernels", kernels);
    f("activation", activation, subnet_activation_names());
    f("negative_slope", negative_slope);
    f("clamp", clamp.kind, clamp_kind_names());
    f("clamp_alpha", clamp.alpha);
    f("learn_gain", learn_gain);
    f("gain_init", gain_init);
    f("mixing", mixing, block_mixing_names());
    f("input_normalization", input_normalization);
    f("positions", positions);
    f("seed", seed);
    f("score.image", image_score, score_aggregation_names());
    f("score.top_k_fraction", top_k_fraction);
    training.fields(f);
  }

 private:
  static training_options default_training();
};

// One normalizing flow of a configuration: the scale it reads and whether it standardises per position.
struct msflow_stream {
  std::size_t scale = 0;
  bool position_relative = false;
};
// The flows of a configuration, in the order msflow_config::positions describes.
std::vector<msflow_stream> msflow_streams(const msflow_config& cfg);

// Parameters (learned values and fixed statistics) and multiply-accumulates of a configuration,
// computed from the configuration alone.
model_stats count(const msflow_config& cfg);

class sequential_flow;
// The flow msflow builds for stream `stream` (msflow_streams; stream s is scale s's first flow) of a
// configuration, freshly initialised (for benchmarks and custom pipelines; its position_norm and input
// actnorm, if any, still need initialize()).
std::unique_ptr<sequential_flow> make_msflow_flow(const msflow_config& cfg, std::size_t stream);

class msflow final : public detector {
 public:
  explicit msflow(const msflow_config& cfg);
  ~msflow() override;
  msflow(const msflow&) = delete;
  msflow& operator=(const msflow&) = delete;

  const char* kind() const noexcept override { return "msflow"; }
  bool fitted() const noexcept override { return fitted_; }
  std::vector<scale_shape> input_shapes() const override { return cfg_.scales; }
  model_stats stats() const override { return count(cfg_); }
  detector_config config() const override { return to_detector_config(cfg_); }
  const msflow_config& settings() const noexcept { return cfg_; }

  fit_report fit(const feature_maps& train, const fit_options& options = {}) override;
  using detector::score;
  void score(const feature_maps& features, const score_options& options, scores& out) const override;

  model_file_contents to_model_file() const override;
  // Builds a fitted model from a model file's contents (load_detector() calls it through the registry).
  static std::unique_ptr<msflow> from_model_file(const model_file_contents& contents);

  // Every learnable parameter (less stable than the rest of this class: names follow the layers).
  std::vector<const parameter*> parameters() const;

  // Latent z of every flow (msflow_streams' order) and their summed log|det J| for a batch (inference);
  // for tests and diagnostics.
  void transform(const feature_maps& features, std::vector<tensor>& z, std::vector<double>& logdet) const;

 private:
  struct impl;
  // Builds the flows; fixed permutations come from `stored` when loading a model file.
  msflow(const msflow_config& cfg, const model_file_contents* stored);
  msflow_config cfg_;
  bool fitted_ = false;
  std::unique_ptr<impl> impl_;
};

}  // namespace v0
}  // namespace flowad
