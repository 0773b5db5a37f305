// MS-Flow: a normalizing flow over feature maps whose coupling is hierarchical over channel groups
// (ALGORITHMS.md §6.3). Each scale of the input has its own flow (a paired scale two, see positions):
//
//   [position_norm, set from the training set]                        (relative and paired scales)
//   [actnorm, set from the training set and not trained further]      (input_normalization)
//   blocks × ( seeded channel permutation | invertible 1x1 convolution ,
//              affine_coupling with g groups: y_1 = x_1, y_i = x_i·exp(φ(s_i)) + t_i,
//              (s_i, t_i) = γ_i·F_i(y_{i−1}), kernels cycling through `kernels` )
//
// Loss: mean over the batch of (0.5·‖z‖² − log|det J|) / D, D = Σ_flows C·H·W (CS-Flow).
// Anomaly map: mean_c(z²)/2 per position of each scale (or, for position-wise flows, the negative
// log-likelihood per position: score_options::statistic), averaged over a paired scale's two flows,
// upsampled bilinearly (align_corners=false, each scale's grid moved by score_options::cell_offsets)
// to the map size and combined over scales. msflow_config::positions says which scales' flows see
// the features relative to their place on the image.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "flowad/detector.hpp"
#include "flowad/layers/affine_coupling.hpp"
#include "flowad/layers/soft_clamp.hpp"

namespace flowad {
inline namespace v0 {

struct model_file_contents;

enum class block_mixing {
  permute,         // a fixed channel permutation drawn from the seed (CS-Flow's ParallelPermute)
  invertible_1x1,  // Glow's learnable LU-parameterised 1x1 convolution
};

// Whether a scale's flow knows where on the image a feature was seen (docs/results.md items 27-36).
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
  bool input_normalization = true;
  // Empty: every scale free. Otherwise one entry per scale. A relative or paired scale's features are
  // standardised per position (position_norm, set from the training set, before the input actnorm).
  // A paired scale has a second flow: the flows of all scales come first, in scale order, then the
  // paired scales' second flows, in scale order; a flow's index seeds its weights and permutations.
  std::vector<scale_position> positions;
  std::uint64_t random_seed = 0;  // weights, permutations

  // The seed paper's setting: EfficientNet-B5 block 35 (304 x 24 x 24), 4 groups, 8 blocks with
  // kernels 3,1, hidden 512: 14.0 M parameters, 8.1 GMAC per image.
  static msflow_config seed();

  // flowad's default for real data (flowad fit, eval and validate): the seed's groups and blocks with
  // hidden 256 and kernel 1, conditioners that see one position each, on the given scales. Chosen on
  // synthetic-defect validation (docs/results.md); 0.91 GMAC per image on ResNet18's layer2 and layer3.
  static msflow_config compact(std::vector<scale_shape> scales);

  // Throws errc::invalid_argument naming the first invalid field.
  void validate() const;

  // The position setting of scale s (free when `positions` is empty).
  scale_position position(std::size_t s) const { return positions.empty() ? scale_position{} : positions[s]; }
};

// "free", "relative:R" or "paired:R" per scale, comma-separated ("free,paired:1"); parse accepts
// "relative" and "paired" without a radius (1) and throws errc::invalid_argument naming what is wrong.
std::string to_string(const std::vector<scale_position>& positions);
std::vector<scale_position> parse_positions(const std::string& text);

// One normalizing flow of a configuration: the scale it reads and whether it standardises per position.
struct msflow_stream {
  std::size_t scale = 0;
  bool position_relative = false;
};
// The flows of a configuration, in the order msflow_config::positions describes.
std::vector<msflow_stream> msflow_streams(const msflow_config& cfg);

// Parameters and multiply-accumulates of a configuration, computed from the configuration alone.
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
  const msflow_config& config() const noexcept { return cfg_; }

  fit_report fit(const feature_maps& train, const fit_options& options = {}) override;
  scores score(const feature_maps& features, const score_options& options = {}) const override;
  void score(const feature_maps& features, const score_options& options, scores& out) const override;
  // Throws errc::invalid_argument if score() would refuse these options (a bad map or batch size, a
  // statistic this configuration does not define); usable before fit() to fail early.
  void check_score_options(const score_options& options) const;

  void save(const std::filesystem::path& path) const override;
  static std::unique_ptr<msflow> load(const std::filesystem::path& path);
  // Builds a model from a decoded model file (used by load_detector).
  static std::unique_ptr<msflow> from_contents(const model_file_contents& contents);

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
