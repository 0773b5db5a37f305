// What several commands print or write: progress bars wired into the library's callbacks, heatmap
// images, and JSON.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "cli/progress.hpp"
#include "flowad/pipeline/evaluate.hpp"
#include "flowad/pipeline/inspector.hpp"

namespace flowad {
namespace cli {

namespace fs = std::filesystem;

// Progress bars for feature extraction (one per pass) and training. Wires itself into `options`,
// which must not outlive it.
class fit_progress_bars {
 public:
  explicit fit_progress_bars(fit_options& options, progress_callback* on_extract = nullptr);
  fit_progress_bars(const fit_progress_bars&) = delete;
  fit_progress_bars& operator=(const fit_progress_bars&) = delete;
  void finish();
  // Reports fit stages (out-of-fold calibration fits several models) on stderr and starts each with
  // fresh bars. Wires itself into options.on_fit.
  void follow_fits(inspector_fit_options& options);

 private:
  std::unique_ptr<progress> fit_bar_, extract_bar_;
};

// Before any work: errc::io_error when the file `path` (given with `option`) could not be written later
// because its folder does not exist or is a file, so that a long fit does not end in a failed save.
void require_output_folder_of(const fs::path& path, const char* option);
// Creates the folder `out` (given with `option`) and its parents; errc::io_error naming it when it is
// a file or cannot be created.
void create_output_folder(const fs::path& out, const char* option);

// For every image i: <out>/<prefix>_<stem>_heatmap.png, the overlay of maps[i] on the image at its own
// size (with the ground-truth outline when masks[i] names a mask), and <out>/<prefix>_<stem>_map.png,
// the map in gray at its own resolution. Returns the overlays' paths; writes nothing for a detector
// that does not localise (heatmaps_note() says so).
std::vector<fs::path> write_heatmaps(const fs::path& out, const inspector& model, const std::vector<fs::path>& images,
                                     const tensor& maps, const std::vector<fs::path>& masks = {},
                                     const std::vector<std::string>& prefixes = {});
// What to print about heatmaps written by write_heatmaps: "wrote N heatmaps to DIR" or why none were.
std::string heatmaps_note(const inspector& model, std::size_t written, const fs::path& out);

// The pipeline and detector of a fitted inspector, for JSON reports.
nlohmann::json describe(const inspector& model);
// A detector configuration as a JSON object of its settings.
nlohmann::json to_json(const detector_config& config);

// Writes JSON (2-space indented), throwing errc::io_error when the file cannot be written.
void write_json(const fs::path& path, const nlohmann::json& j);

// "0.1234" or "n/a" for a NaN.
std::string metric_text(double value);

}  // namespace cli
}  // namespace flowad
