// Building an msflow configuration from command-line options (shared by info and fit).
#pragma once

#include <cmath>
#include <string>

#include "cli/args.hpp"
#include "detectors/config_codec.hpp"
#include "flowad/extract/extractor.hpp"
#include "flowad/flows/msflow.hpp"
#include "flowad/pipeline/features.hpp"

namespace flowad {
namespace cli {

inline const char* model_options_help() {
  return "  --preset NAME        seed: 304x24x24, 4 groups, 8 blocks, kernels 3,1, hidden 512 (the seed paper's);\n"
         "                       compact: hidden 256 and kernels 1 (no spatial context in the conditioners).\n"
         "                       info defaults to seed, fit, eval and validate to compact\n"
         "  --scales CxHxW,...   input shape of each scale\n"
         "  --groups G --blocks B --hidden H --kernels K1,K2,...\n"
         "  --clamp atan|tanh|tanh_legacy --alpha A --mixing permute|invertible_1x1 --seed S\n"
         "  --gain-init G        initial coupling gain (default 0.1; 0 starts every block as the identity)\n"
         "  --fixed-gain         keep the gain at --gain-init instead of learning it\n"
         "  --positions LIST     per scale, whether its flow sees where a feature is: free, relative[:R]\n"
         "                       (standardised per position, statistics pooled over R cells, default 1)\n"
         "                       or paired[:R] (a free and a relative flow, maps averaged). Default:\n"
         "                       relative at every ResNet18 and MobileNetV2 scale, pooled over +-16\n"
         "                       pixels (relative:2,relative:1 on the default levels), free for other\n"
         "                       extractors and feature files (docs/results.md items 27-36). Relative\n"
         "                       flows assume parts at about the same place in every image; give free\n"
         "                       for parts that move or turn between images\n";
}

// The preset fit and eval start from: the seed preset with 1x1 conditioners of half the width. With 3x3
// conditioners chained over 4 groups and 8 blocks, every latent position depends on most of a 16x16
// map, and a strong anomaly raises the scores far around it; per-position conditioners keep it where it
// is. Chosen on synthetic-defect validation (flowad validate, docs/results.md), at a fifth of the cost.
constexpr const char* default_fit_preset = "compact";

inline msflow_config config_from(const args& a, const std::string& default_preset = default_fit_preset) {
  const std::string preset = a.get("preset", default_preset);
  msflow_config cfg = msflow_config::seed();
  if (preset == "compact") cfg = msflow_config::compact(cfg.scales);
  else if (preset != "seed") throw error(errc::invalid_argument, "unknown preset '" + preset + "' (known: seed, compact)");
  if (a.has("scales")) cfg.scales = codec::parse_scales("--scales", a.get("scales"));
  cfg.groups = a.integer("groups", cfg.groups);
  cfg.blocks = a.integer("blocks", cfg.blocks);
  cfg.hidden = a.integer("hidden", cfg.hidden);
  if (a.has("kernels")) cfg.kernels = codec::parse_indices("--kernels", a.get("kernels"), 1, 63);
  if (a.has("clamp")) {
    const std::string c = a.get("clamp");
    if (c == "atan") cfg.clamp.kind = clamp_kind::atan;
    else if (c == "tanh") cfg.clamp.kind = clamp_kind::tanh;
    else if (c == "tanh_legacy") cfg.clamp.kind = clamp_kind::tanh_legacy;
    else throw error(errc::invalid_argument, "--clamp expects atan, tanh or tanh_legacy, got '" + c + "'");
  }
  cfg.clamp.alpha = static_cast<float>(a.number("alpha", cfg.clamp.alpha));
  if (a.has("mixing")) {
    const std::string m = a.get("mixing");
    if (m == "permute") cfg.mixing = block_mixing::permute;
    else if (m == "invertible_1x1") cfg.mixing = block_mixing::invertible_1x1;
    else throw error(errc::invalid_argument, "--mixing expects permute or invertible_1x1, got '" + m + "'");
  }
  cfg.gain_init = static_cast<float>(a.number("gain-init", cfg.gain_init));
  if (a.flag("fixed-gain")) cfg.learn_gain = false;
  cfg.random_seed = static_cast<std::uint64_t>(a.integer("seed", 0));
  // --positions is checked against the scales once the extractor or the feature files have set them.
  std::vector<scale_position> positions;
  if (a.has("positions")) positions = parse_positions(a.get("positions"));
  cfg.validate();
  cfg.positions = std::move(positions);
  return cfg;
}

// The positions of an extractor's scales when --positions is not given. For ResNet18 and MobileNetV2
// every scale is relative, each position's statistics pooled over ±16 input pixels (radius 16 / the
// level's stride in cells: 2 at stride 8, 1 at stride 16), chosen on synthetic-defect validation for
// each of them (docs/results.md item 36); every scale is free for other extractors, on which it was
// not validated.
inline std::vector<scale_position> default_positions(const extractor& ex, const feature_options& options) {
  const std::vector<std::size_t> levels = level_indices(ex, options);
  std::vector<scale_position> positions(levels.size());
  if (ex.name() != "resnet18" && ex.name() != "mobilenet_v2") return positions;
  constexpr double pooled_pixels = 16.0;
  for (std::size_t k = 0; k < levels.size(); ++k) {
    const double cell = static_cast<double>(ex.levels()[levels[k]].stride * options.pool_stride);
    positions[k] = {position_mode::relative, static_cast<index_t>(std::lround(pooled_pixels / cell))};
  }
  return positions;
}

// base on the extractor's feature shapes, with --positions or else default_positions.
inline msflow_config config_for_extractor(const args& a, const extractor& ex, const feature_options& options,
                                          msflow_config base) {
  if (!a.has("positions")) base.positions = default_positions(ex, options);
  return msflow_config_for(ex, options, std::move(base));
}

}  // namespace cli
}  // namespace flowad
