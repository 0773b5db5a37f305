// `flowad fit --model auto`: which options it takes, and the selection with its progress and table.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "cli/options.hpp"
#include "flowad/pipeline/auto_select.hpp"

namespace flowad {
namespace cli {

// Throws errc::invalid_argument for options that do not go with --model auto (settings, levels and
// pooling are per detector; feature maps) or --candidates without it.
void check_auto_options(const pipeline_options& pipeline, const std::vector<std::string>& candidates, bool feature_maps);

// The candidates' figures as a table, the choice marked, and the rule.
void print_selection(const detector_selection& selection);

// Validates the candidates (--candidates, else the library's) on the images, printing each one's
// figures and the table, then fits the chosen one on every image as `flowad fit` does.
inspector fit_auto(const pipeline_options& pipeline, const std::vector<std::string>& candidates,
                   const std::vector<std::filesystem::path>& good, inspector_fit_options& options, inspector_fit_report& report);

}  // namespace cli
}  // namespace flowad
