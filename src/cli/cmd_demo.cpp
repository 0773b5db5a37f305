// flowad demo: the whole pipeline on generated data, with nothing to download: a synthetic inspection
// data set (woven fabric with scratches, spots and cracks), the weight-free filter-bank extractor, an
// MS-Flow detector, the metrics, and heatmaps of every test image.
#include <cstdio>
#include <fstream>

#include "cli/commands.hpp"
#include "cli/output.hpp"
#include "flowad/data/fabric.hpp"
#include "flowad/data/mvtec_layout.hpp"
#include "flowad/io/dataset.hpp"
#include "flowad/pipeline/demo.hpp"

namespace flowad {
namespace cli {

namespace {

// What the demo writes into its folder; a marker file says the folder is the demo's, so that a later
// run replaces these and never anything else.
constexpr const char* demo_marker = ".flowad-demo";
const char* const demo_outputs[] = {"data", "heatmaps", "model.flowad"};

// Makes `out` ready for the demo's outputs: creates it, or clears the outputs of an earlier demo run in
// it. A folder that holds any of the outputs without the marker is refused: they are not the demo's.
void prepare_demo_folder(const fs::path& out) {
  std::error_code ec;
  if (fs::exists(out, ec) && !fs::is_directory(out, ec))
    throw error(errc::invalid_argument, "--out " + out.string() + " is a file, not a folder");
  const bool marked = fs::exists(out / demo_marker, ec);
  for (const char* name : demo_outputs) {
    if (!fs::exists(out / name, ec)) continue;
    if (!marked)
      throw error(errc::invalid_argument, "--out " + out.string() + " already holds " + name +
                                              " that flowad demo did not write; choose an empty or new folder");
    fs::remove_all(out / name);
  }
  fs::create_directories(out);
  std::ofstream(out / demo_marker) << "written by flowad demo: it replaces data/, heatmaps/ and model.flowad here\n";
}

class demo_command final : public command {
 public:
  explicit demo_command(CLI::App& parent) {
    app = parent.add_subcommand("demo", "the whole pipeline on generated data: fit, evaluate, write heatmaps");
    app->footer(
        "Generates a synthetic inspection data set in DIR/data (MVTec AD layout), fits MS-Flow on the\n"
        "weight-free filter-bank features of its defect-free images, evaluates it on the test images and\n"
        "writes a heatmap of every test image to DIR/heatmaps. It only ever replaces its own outputs.");
    app->add_option("--out", out, "the folder for data/, heatmaps/ and model.flowad")->capture_default_str();
    app->add_option("--train", data_options.train_count, "defect-free training images")->capture_default_str()->check(CLI::Range(1, 100000));
    app->add_option("--test", data_options.test_count, "test images")->capture_default_str()->check(CLI::Range(1, 100000));
    app->add_option("--epochs", epochs, "training epochs (default: the demo's 20)")->check(CLI::Range(1, 100000));
    app->add_option("--seed", data_options.seed, "draws the data set")->capture_default_str();
  }

  int run() override {
    // 1. Data.
    prepare_demo_folder(out);
    std::fprintf(stderr, "generating %lld training and %lld test images in %s\n", static_cast<long long>(data_options.train_count),
                 static_cast<long long>(data_options.test_count), (out / "data").c_str());
    write_mvtec_layout(generate_synthetic_dataset(data_options), out / "data");
    const mvtec_category data = read_mvtec_category(out / "data");

    // 2. Fit and evaluate.
    pipeline_config config = demo_pipeline_config();
    if (epochs > 0) config.settings.set("train.epochs", std::to_string(epochs));
    inspector model(config);
    evaluation_options options;
    fit_progress_bars bars(options.fit, &options.fit.on_extract);
    const evaluation_result r = evaluate(model, data, options);
    bars.finish();

    // 3. Heatmaps and the model.
    std::vector<std::string> prefixes;
    for (const test_sample& t : data.test) prefixes.push_back(t.defect_type);
    const auto written = write_heatmaps(out / "heatmaps", model, r.images, r.maps, data.test_masks(), prefixes);
    model.save(out / "model.flowad");

    const model_stats stats = model.model().stats();
    std::printf("\nsynthetic inspection data: %zu training images, %zu test images (%zu defective)\n", data.train.size(),
                data.test.size(), static_cast<std::size_t>(std::count(r.labels.begin(), r.labels.end(), 1)));
    std::printf("MS-Flow on filter-bank features: %.2f M parameters, %.2f GMAC per image\n", stats.parameters * 1e-6,
                stats.macs_per_image * 1e-9);
    std::printf("image AUROC %.4f   pixel AUROC %.4f   AUPRO %.4f   fit %.1f s   %.1f ms per test image\n", r.image_auroc,
                r.pixel_auroc, r.aupro, r.fit_seconds, r.ms_per_image);
    std::printf("heatmaps: %zu overlays in %s (ground truth outlined in white), e.g. %s\n", written.size(),
                (out / "heatmaps").c_str(), written.empty() ? "-" : written.back().filename().c_str());
    std::printf("model: %s (score new images with: flowad score %s IMAGE...)\n", (out / "model.flowad").c_str(),
                (out / "model.flowad").c_str());
    return 0;
  }

 private:
  fs::path out = "flowad-demo";
  synthetic_options data_options = demo_data();
  int epochs = 0;

  static synthetic_options demo_data() {
    synthetic_options o;
    o.train_count = 96;
    o.test_count = 40;
    o.seed = 1;
    return o;
  }
};

}  // namespace

std::unique_ptr<command> make_demo(CLI::App& parent) { return std::make_unique<demo_command>(parent); }

}  // namespace cli
}  // namespace flowad
