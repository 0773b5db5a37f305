// flowad info: what a detector configuration or a saved model holds and costs, and what flowad runs on.
#include <cstdio>

#include "cli/commands.hpp"
#include "cli/fit_auto.hpp"
#include "cli/options.hpp"
#include "flowad/detail/backend.hpp"
#include "flowad/io/model_file.hpp"
#include "flowad/version.hpp"

namespace flowad {
namespace cli {

namespace {

void print_settings(const detector_config& config) {
  for (const auto& [key, value] : config.entries()) std::printf("  %-26s %s\n", key.c_str(), value.c_str());
}

void print_stats(const detector& d) {
  const model_stats s = d.stats();
  if (!d.fitted() && s.parameters == 0.0) {  // a memory bank (PatchCore): its size comes from the training set
    std::printf("parameters  none until fit: the model is built from the training images\n");
    std::printf("compute     grows with what fit keeps; see a fitted model's info\n");
    return;
  }
  std::printf("parameters  %.2f M (%.0f)\n", s.parameters * 1e-6, s.parameters);
  const image_rotations rotations = d.rotations();
  if (rotations.any())  // DifferNet: the flow runs once per rotated copy of an image
    std::printf("compute     %.3f GMAC per transformed image (forward pass of the detector, extractor excluded); an image "
                "is scored on %zu rotated copies\n", s.macs_per_image * 1e-9, rotations.test_angles.size());
  else
    std::printf("compute     %.2f GMAC per image (forward pass of the detector, extractor excluded)\n", s.macs_per_image * 1e-9);
}

class info_command final : public command {
 public:
  explicit info_command(CLI::App& parent) {
    app = parent.add_subcommand("info", "the settings, parameters and compute of a detector configuration or a saved model");
    app->footer(
        "Without a model file: the configuration `flowad fit` would build with the same options, for square\n"
        "images of --shorter-side (or --size); --paper gives the detector's paper configuration instead.\n"
        "Every setting listed can be changed with --set KEY=VALUE in fit, eval and validate.");
    app->add_option("--model-file,model_file", model_file, "a saved model");
    app->add_flag("--paper", paper, "the configuration of the detector's paper, with the paper's feature shapes");
    pipeline.attach(*app, false);
  }

  int run() override {
    std::printf("flowad      %s (%s)\n", version().string, detail::backend_description().c_str());
    if (!model_file.empty()) {
      const model_file_contents contents = read_model_file(model_file);
      const auto d = load_detector(model_file);
      std::printf("model       %s (%s, written by flowad %s)\n", d->kind(), model_file.c_str(), contents.library_version.c_str());
      std::printf("settings\n");
      print_settings(d->config());
      if (!d->metadata().empty()) {
        std::printf("metadata\n");
        for (const auto& [key, value] : d->metadata()) std::printf("  %-26s %s\n", key.c_str(), value.c_str());
      }
      print_stats(*d);
      if (const auto selection = recorded_selection(*d, model_file)) print_selection(*selection);  // fit --model auto
      return 0;
    }
    detector_config config;
    std::string origin;
    if (paper) {
      config = paper_config(pipeline.detector.kind);
      config.update(pipeline.detector.settings());
      origin = "the paper's configuration";
    } else {
      const pipeline_config pc = pipeline.config();
      const auto ex = make_extractor(pc.extractor, pc.weights);
      const feature_options fo = pipeline_features(pc, *ex);
      config = pipeline_detector_config(pc, *ex, fo);
      origin = "as flowad fit builds it on " + pc.extractor + " features of " + std::to_string(fo.height) + "x" +
               std::to_string(fo.width) + " images";
    }
    const auto d = make_detector(pipeline.detector.kind, config);
    std::printf("model       %s (%s)\nsettings\n", d->kind(), origin.c_str());
    print_settings(config);
    print_stats(*d);
    return 0;
  }

 private:
  std::string model_file;
  bool paper = false;
  pipeline_options pipeline;
};

}  // namespace

std::unique_ptr<command> make_info(CLI::App& parent) { return std::make_unique<info_command>(parent); }

}  // namespace cli
}  // namespace flowad
