#include "cli/output.hpp"

#include <cmath>
#include <cstdio>
#include <fstream>

#include "flowad/io/heatmap.hpp"
#include "flowad/io/image.hpp"
#include "flowad/version.hpp"

namespace flowad {
namespace cli {

fit_progress_bars::fit_progress_bars(fit_options& options, progress_callback* on_extract) {
  if (on_extract)
    *on_extract = [this](long done, long total) {
      if (!extract_bar_ || done == 0)
        extract_bar_ = std::make_unique<progress>("features", total, "img");
      extract_bar_->update(done);
    };
  options.on_progress = [this](const fit_progress& p) {
    if (!fit_bar_) fit_bar_ = std::make_unique<progress>(p.stage ? p.stage : "fit", p.steps, p.stage ? "row" : "step");
    if (p.stage) {
      fit_bar_->update(p.step, "", p.epoch_end);
      return;
    }
    char note[96];
    std::snprintf(note, sizeof note, "epoch %d/%d loss %.4f", p.epoch + 1, p.epochs, p.loss);
    fit_bar_->update(p.step, note, p.epoch_end);
  };
}

void fit_progress_bars::finish() {
  if (fit_bar_) fit_bar_->finish();
  if (extract_bar_) extract_bar_->finish();
}

void fit_progress_bars::follow_fits(inspector_fit_options& options) {
  options.on_fit = [this](const fit_stage& s) {
    finish();
    fit_bar_.reset();
    extract_bar_.reset();
    if (s.count < 2) return;  // a single fit needs no heading
    if (s.final_model)
      std::fprintf(stderr, "fit %zu/%zu: the final model on all %zu images\n", s.index, s.count, s.images);
    else
      std::fprintf(stderr, "fit %zu/%zu: calibration fold %zu of %zu (a model on the other %zu images scores it)\n", s.index,
                   s.count, s.fold + 1, s.count - 1, s.images);
  };
}

void require_output_folder_of(const fs::path& path, const char* option) {
  const fs::path folder = path.has_parent_path() ? path.parent_path() : fs::path(".");
  std::error_code ec;
  if (!fs::is_directory(folder, ec))
    throw error(errc::io_error, std::string(option) + " " + path.string() + ": folder " + folder.string() +
                                    " does not exist (nothing was fitted)");
}

void create_output_folder(const fs::path& out, const char* option) {
  std::error_code ec;
  if (fs::exists(out, ec) && !fs::is_directory(out, ec))
    throw error(errc::io_error, std::string(option) + " " + out.string() + " is not a folder");
  fs::create_directories(out, ec);
  if (ec) throw error(errc::io_error, std::string("cannot create the ") + option + " folder " + out.string() + ": " + ec.message());
}

std::vector<fs::path> write_heatmaps(const fs::path& out, const inspector& model, const std::vector<fs::path>& images,
                                     const tensor& maps, const std::vector<fs::path>& masks,
                                     const std::vector<std::string>& prefixes) {
  std::vector<fs::path> written;
  if (!model.model().localises()) return written;
  create_output_folder(out, "heatmaps");
  for (std::size_t i = 0; i < images.size(); ++i) {
    const byte_image image = read_image(images[i]);
    verdict v;
    v.map = tensor({1, 1, maps.h(), maps.w()});
    copy(maps.cview().batch(static_cast<index_t>(i), 1), v.map.view());
    byte_image truth;
    if (i < masks.size() && !masks[i].empty()) truth = read_mask(masks[i]);
    const std::string stem = (prefixes.empty() ? "" : prefixes[i] + "_") + images[i].stem().string();
    const fs::path overlay = out / (stem + "_heatmap.png");
    write_png(overlay, model.heatmap(image, v, truth.empty() ? nullptr : &truth));
    write_map_png(out / (stem + "_map.png"), v.map.cview(), model.heatmap_range().lo, model.heatmap_range().hi);
    written.push_back(overlay);
  }
  return written;
}

std::string heatmaps_note(const inspector& model, std::size_t written, const fs::path& out) {
  if (!model.model().localises())
    return std::string("no heatmaps: ") + model.model().kind() + " scores whole images and gives no anomaly maps";
  return "wrote " + std::to_string(written) + " heatmaps to " + out.string() + " (ground truth outlined in white)";
}

nlohmann::json to_json(const detector_config& config) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [key, value] : config.entries()) j[key] = value;
  return j;
}

nlohmann::json describe(const inspector& model) {
  const feature_options& f = model.feature_settings();
  const model_stats stats = model.model().stats();
  return {{"extractor", model.config().extractor},
          {"levels", f.levels},
          {"height", f.height},
          {"width", f.width},
          {"neighbourhood", f.neighbourhood},
          {"pool_stride", f.pool_stride},
          {"detector", model.model().kind()},
          {"parameters", stats.parameters},
          {"macs_per_image", stats.macs_per_image},
          {"settings", to_json(model.model().config())},
          {"flowad_version", version().string}};
}

void write_json(const fs::path& path, const nlohmann::json& j) {
  std::ofstream out(path, std::ios::trunc);
  out << j.dump(2) << "\n";
  if (!out) throw error(errc::io_error, "cannot write " + path.string());
}

std::string metric_text(double value) {
  if (std::isnan(value)) return "n/a";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4f", value);
  return buf;
}

}  // namespace cli
}  // namespace flowad
