// Building an msflow configuration from command-line options (shared by info and fit).
#pragma once

#include <string>

#include "cli/args.hpp"
#include "detectors/config_codec.hpp"
#include "flowad/flows/msflow.hpp"

namespace flowad {
namespace cli {

inline const char* model_options_help() {
  return "  --preset NAME        seed (default): 304x24x24, 4 groups, 8 blocks, kernels 3,1, hidden 512\n"
         "  --scales CxHxW,...   input shape of each scale\n"
         "  --groups G --blocks B --hidden H --kernels K1,K2,...\n"
         "  --clamp atan|tanh --alpha A --mixing permute|invertible_1x1 --seed S\n";
}

inline msflow_config config_from(const args& a) {
  const std::string preset = a.get("preset", "seed");
  if (preset != "seed") throw error(errc::invalid_argument, "unknown preset '" + preset + "' (known: seed)");
  msflow_config cfg = msflow_config::seed();
  if (a.has("scales")) cfg.scales = codec::parse_scales("--scales", a.get("scales"));
  cfg.groups = a.integer("groups", cfg.groups);
  cfg.blocks = a.integer("blocks", cfg.blocks);
  cfg.hidden = a.integer("hidden", cfg.hidden);
  if (a.has("kernels")) cfg.kernels = codec::parse_indices("--kernels", a.get("kernels"), 1, 63);
  if (a.has("clamp")) {
    const std::string c = a.get("clamp");
    if (c == "atan") cfg.clamp.kind = clamp_kind::atan;
    else if (c == "tanh") cfg.clamp.kind = clamp_kind::tanh;
    else throw error(errc::invalid_argument, "--clamp expects atan or tanh, got '" + c + "'");
  }
  cfg.clamp.alpha = static_cast<float>(a.number("alpha", cfg.clamp.alpha));
  if (a.has("mixing")) {
    const std::string m = a.get("mixing");
    if (m == "permute") cfg.mixing = block_mixing::permute;
    else if (m == "invertible_1x1") cfg.mixing = block_mixing::invertible_1x1;
    else throw error(errc::invalid_argument, "--mixing expects permute or invertible_1x1, got '" + m + "'");
  }
  cfg.random_seed = static_cast<std::uint64_t>(a.integer("seed", 0));
  cfg.validate();
  return cfg;
}

}  // namespace cli
}  // namespace flowad
