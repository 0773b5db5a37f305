// msflow_config: presets, validation and the text form of position settings.
#include <algorithm>
#include <cmath>

#include "flowad/detectors/msflow.hpp"

namespace flowad {
inline namespace v0 {

training_options msflow_config::default_training() {
  // CS-Flow's recipe, which the seed paper is assumed to follow (ALGORITHMS.md §6.3).
  training_options t;
  t.epochs = 240;
  t.batch_size = 16;
  t.optimizer.learning_rate = 2e-4f;
  t.optimizer.eps = 1e-4f;
  t.optimizer.weight_decay = 1e-5f;
  t.max_grad_norm = 1.0;
  t.schedule.kind = lr_schedule::constant;
  t.schedule.warmup_fraction = 0.0;
  return t;
}

msflow_config msflow_config::paper() { return msflow_config{}; }

msflow_config msflow_config::recommended(std::vector<scale_shape> scales) {
  msflow_config cfg;
  cfg.scales = std::move(scales);
  cfg.positions.assign(cfg.scales.size(), scale_position{});
  cfg.hidden = 256;
  cfg.kernels = {1};
  cfg.training.epochs = 16;
  cfg.training.optimizer.learning_rate = 1e-3f;
  cfg.training.schedule.kind = lr_schedule::cosine;
  cfg.training.schedule.warmup_fraction = 0.125;  // 2 of 16 epochs
  cfg.training.schedule.final_factor = 0.05;
  return cfg;
}

msflow_config msflow_config::recommended(const feature_geometry& geometry) {
  msflow_config cfg = recommended(geometry.shapes);
  if (geometry.position_statistics && geometry.strides.size() == geometry.shapes.size())
    for (std::size_t s = 0; s < cfg.positions.size(); ++s) {
      const double cells = position_pool_pixels / static_cast<double>(std::max<index_t>(1, geometry.strides[s]));
      cfg.positions[s] = {position_mode::relative, std::min<index_t>(63, static_cast<index_t>(std::lround(cells)))};
    }
  return cfg;
}

void msflow_config::validate() const {
  const auto fail = [](const std::string& what) { throw error(errc::invalid_argument, "msflow_config: " + what); };
  if (scales.empty() || scales.size() > 16) fail("needs 1 to 16 scales, got " + std::to_string(scales.size()));
  for (const scale_shape& s : scales) {
    if (s.channels <= 0 || s.height <= 0 || s.width <= 0 || s.channels > (1 << 16) || s.height > (1 << 14) ||
        s.width > (1 << 14))
      fail("scale shapes must be positive and plausible, got " + to_config_text(scales));
    if (s.channels < groups)
      fail("a scale of " + std::to_string(s.channels) + " channels cannot be split into " + std::to_string(groups) + " groups");
  }
  if (groups < 2 || groups > 4096) fail("groups must be in [2, 4096], got " + std::to_string(groups));
  if (hidden <= 0 || hidden > (1 << 16)) fail("hidden must be in [1, 65536], got " + std::to_string(hidden));
  if (blocks <= 0 || blocks > 4096) fail("blocks must be in [1, 4096], got " + std::to_string(blocks));
  if (kernels.empty() || kernels.size() > 64) fail("kernels must list 1 to 64 sizes");
  for (index_t k : kernels)
    if (k <= 0 || k % 2 == 0 || k > 63) fail("kernels must be odd and in [1, 63], got " + std::to_string(k));
  if (!(negative_slope >= 0.0f && negative_slope < 1.0f)) fail("negative_slope must be in [0, 1)");
  if (clamp.kind != clamp_kind::none && !(clamp.alpha > 0.0f && std::isfinite(clamp.alpha)))
    fail("clamp_alpha must be positive and finite");
  if (!std::isfinite(gain_init)) fail("gain_init must be finite");
  if (!positions.empty() && positions.size() != scales.size())
    fail("positions has " + std::to_string(positions.size()) + " entries for " + std::to_string(scales.size()) +
         " scales (give one per scale, or none)");
  for (const scale_position& p : positions)
    if (p.pool_radius < 0 || p.pool_radius > 63)
      fail("a position pool radius must be in [0, 63], got " + std::to_string(p.pool_radius));
  if (!(top_k_fraction > 0.0 && top_k_fraction <= 1.0)) fail("score.top_k_fraction must be in (0, 1]");
  training.validate();
}

std::string to_config_text(const std::vector<scale_position>& positions) {
  std::string out;
  for (const scale_position& p : positions) {
    if (!out.empty()) out += ",";
    if (p.mode == position_mode::free) out += "free";
    else out += (p.mode == position_mode::relative ? "relative:" : "paired:") + std::to_string(p.pool_radius);
  }
  return out;
}

void parse_config_text(errc code, const std::string& key, const std::string& text, std::vector<scale_position>& out) {
  out.clear();
  for (const std::string& item : detail::split(text, ',')) {
    const std::vector<std::string> parts = detail::split(item, ':');
    const auto fail = [&](const std::string& why) {
      throw error(code, "setting '" + key + "' = '" + text + "': '" + item + "' " + why +
                            " (expected free, relative[:R] or paired[:R] per scale, comma-separated)");
    };
    if (parts.empty() || parts.size() > 2) fail("is not a position setting");
    scale_position p;
    if (parts[0] == "free") p.mode = position_mode::free;
    else if (parts[0] == "relative") p.mode = position_mode::relative;
    else if (parts[0] == "paired") p.mode = position_mode::paired;
    else fail("names no position mode");
    if (parts.size() == 2) {
      if (p.mode == position_mode::free) fail("gives a radius to a free scale");
      long long r = 0;
      if (!detail::parse_integer(parts[1], r) || r < 0 || r > 63) fail("has a radius that is not an integer in [0, 63]");
      p.pool_radius = static_cast<index_t>(r);
    }
    out.push_back(p);
  }
}

}  // namespace v0
}  // namespace flowad
