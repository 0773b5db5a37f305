// Command-line options shared by several commands, each group turned into the library's own
// configuration. The defaults are the library's: an option not given leaves the library's value.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "flowad/pipeline/inspector.hpp"

namespace flowad {
namespace cli {

// "HxW" (e.g. 400x300: 400 high, 300 wide) or "S" for S x S.
struct image_dims {
  index_t height = 0;
  index_t width = 0;
};
image_dims parse_dims(const std::string& option, const std::string& text);

// The --model value that asks for a detector chosen on validation (flowad fit --model auto).
inline constexpr const char* auto_detector = "auto";

// --model and --set: the detector kind and changes to its recommended configuration.
struct detector_options {
  std::string kind = pipeline_config{}.detector;
  std::vector<std::string> assignments;  // key=value
  int epochs = 0;                         // 0: the recipe's
  std::string host;                       // fcl's teacher-student host (the setting host); empty: the default

  void attach(CLI::App& app);
  detector_config settings() const;
};

// How images become features, and which detector: everything pipeline_config holds.
struct pipeline_options {
  std::string extractor = pipeline_config{}.extractor;
  std::string weights;
  bool embed_weights = false;
  std::string size;  // "HxW"; empty: from the first training image
  index_t shorter_side = pipeline_config{}.shorter_side;
  std::vector<std::string> levels;
  index_t neighbourhood = pipeline_config{}.neighbourhood;
  index_t pool_stride = pipeline_config{}.pool_stride;
  detector_options detector;

  // with_embedding: also --embed-weights (commands that save a model).
  void attach(CLI::App& app, bool with_embedding);
  pipeline_config config() const;
};

// --calibration: "auto", "holdout" or "folds:K" into options.calibration and calibration_folds.
void parse_calibration(const std::string& text, inspector_fit_options& options);

// --calibration, --holdout, --target-fpr, --holdout-seed of fitting an inspector.
struct threshold_options {
  std::string calibration = "auto";
  double holdout = inspector_fit_options{}.holdout;
  double target_fpr = inspector_fit_options{}.target_fpr;
  std::uint64_t holdout_seed = inspector_fit_options{}.holdout_seed;
  void attach(CLI::App& app);
  void apply(inspector_fit_options& options) const;
};

}  // namespace cli
}  // namespace flowad
