// A long run through the image-level API: fits a small inspector on generated images, saves and loads
// it as a deployment would, then reads, decodes and inspects PNG files over and over in one process,
// printing resident memory (/proc/self/statm) and open file descriptors (/proc/self/fd) every N
// images. With --check it exits 1 unless memory stayed within 5 % of its level after warm-up (the first
// tenth of the run) and the descriptor count never changed. docs/reliability.md, "Long runs";
// benchmarks/long_run.sh runs the 10,000-image version.
//
//   long_run [--images 10000] [--every 500] [--detector msflow] [--set KEY=VALUE ...]
//            [--extractor filterbank --weights DIR] [--size 64] [--check]
// Without --set, MS-Flow is made small (hidden 64, 4 blocks): what is measured is whether anything
// accumulates per image, which does not depend on the model's size, and the run stays within minutes.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <unistd.h>

#include "flowad/data/fabric.hpp"
#include "flowad/error.hpp"
#include "flowad/io/image.hpp"
#include "flowad/pipeline/inspector.hpp"

namespace fs = std::filesystem;

namespace {

constexpr double allowed_growth = 0.05;  // of resident memory after warm-up
constexpr std::size_t distinct_images = 8;

struct options {
  std::size_t images = 10000;
  std::size_t every = 500;
  std::string detector = "msflow";
  std::vector<std::string> settings;  // KEY=VALUE
  std::string extractor = "filterbank";
  std::string weights;
  flowad::index_t size = 64;
  bool check = false;
};

options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--images") o.images = std::stoul(value());
    else if (arg == "--every") o.every = std::stoul(value());
    else if (arg == "--detector") o.detector = value();
    else if (arg == "--set") o.settings.push_back(value());
    else if (arg == "--extractor") o.extractor = value();
    else if (arg == "--weights") o.weights = value();
    else if (arg == "--size") o.size = std::stol(value());
    else if (arg == "--check") o.check = true;
    else throw std::invalid_argument("unknown option " + arg);
  }
  if (o.images == 0 || o.every == 0) throw std::invalid_argument("--images and --every must be positive");
  return o;
}

double resident_mb() {
  std::ifstream statm("/proc/self/statm");
  long pages_total = 0, pages_resident = 0;
  statm >> pages_total >> pages_resident;
  return static_cast<double>(pages_resident) * static_cast<double>(::sysconf(_SC_PAGESIZE)) / (1024.0 * 1024.0);
}

// Counts its own descriptor for the listing too, the same at every call.
long open_descriptors() {
  return static_cast<long>(std::distance(fs::directory_iterator("/proc/self/fd"), fs::directory_iterator()));
}

// A fresh folder for the model and the images, removed at the end.
struct scratch_folder {
  fs::path path = fs::temp_directory_path() / ("flowad_long_run_" + std::to_string(::getpid()));
  scratch_folder() { fs::create_directories(path); }
  ~scratch_folder() {
    std::error_code ignored;
    fs::remove_all(path, ignored);
  }
};

int run(const options& o) {
  scratch_folder scratch;
  flowad::synthetic_options data_options;
  data_options.height = data_options.width = o.size;
  data_options.train_count = 16;
  data_options.test_count = static_cast<flowad::index_t>(distinct_images);
  const flowad::synthetic_dataset data = flowad::generate_synthetic_dataset(data_options);
  std::vector<fs::path> files;
  for (std::size_t i = 0; i < data.test.size(); ++i) {
    files.push_back(scratch.path / ("test_" + std::to_string(i) + ".png"));
    flowad::write_png(files.back(), data.test[i]);
  }

  // The memory behaviour does not depend on how well the model is trained: one epoch, one holdout
  // calibration, so that the run is mostly scoring.
  flowad::pipeline_config config = flowad::pipeline_config::recommended(o.extractor, o.weights, o.detector);
  config.shorter_side = o.size;
  if (o.detector != "patchcore") config.settings.set("train.epochs", "1");  // PatchCore does not train
  if (o.detector == "msflow" && o.settings.empty()) {
    config.settings.set("hidden", "64");
    config.settings.set("blocks", "4");
  }
  for (const std::string& setting : o.settings) {
    const std::size_t eq = setting.find('=');
    if (eq == std::string::npos) throw std::invalid_argument("--set expects KEY=VALUE, got " + setting);
    config.settings.set(setting.substr(0, eq), setting.substr(eq + 1));
  }
  flowad::inspector_fit_options fit_options;
  fit_options.calibration = flowad::calibration_method::holdout;
  {
    flowad::inspector fitted(config);
    fitted.fit(data.train, fit_options);
    fitted.save(scratch.path / "model.flowad");
  }
  const flowad::inspector inspector = flowad::inspector::load(scratch.path / "model.flowad");

  std::cout << "long run: " << o.images << " images of " << o.size << "x" << o.size << " (" << files.size()
            << " PNG files read in turn), " << o.detector << " on " << o.extractor << ", one process\n\n";
  std::cout << "| images | resident MB | open fds | images/s |\n|---:|---:|---:|---:|\n";
  std::printf("| %zu | %.1f | %ld | |\n", std::size_t{0}, resident_mb(), open_descriptors());
  const std::size_t warm_up = std::max(o.every, (o.images / 10) / o.every * o.every);
  double warm_mb = 0.0, peak_after_warm_up = 0.0, low_after_warm_up = 1e300;
  long fds_at_start = open_descriptors(), fds_low = fds_at_start, fds_high = fds_at_start;
  std::size_t anomalous = 0;
  auto last = std::chrono::steady_clock::now();
  for (std::size_t i = 1; i <= o.images; ++i) {
    const flowad::verdict v = inspector.inspect(flowad::read_image(files[i % files.size()]));
    anomalous += v.anomalous ? 1 : 0;
    if (i % o.every != 0 && i != o.images) continue;
    const double mb = resident_mb();
    const long fds = open_descriptors();
    const auto now = std::chrono::steady_clock::now();
    const double rate = static_cast<double>(i % o.every == 0 ? o.every : i % o.every) /
                        std::chrono::duration<double>(now - last).count();
    last = now;
    std::printf("| %zu | %.1f | %ld | %.0f |\n", i, mb, fds, rate);
    std::fflush(stdout);
    fds_low = std::min(fds_low, fds);
    fds_high = std::max(fds_high, fds);
    if (i == warm_up) warm_mb = mb;
    if (i >= warm_up) {
      peak_after_warm_up = std::max(peak_after_warm_up, mb);
      low_after_warm_up = std::min(low_after_warm_up, mb);
    }
  }
  const double growth = (peak_after_warm_up - warm_mb) / warm_mb;
  const bool flat_memory = warm_mb > 0.0 && growth <= allowed_growth;
  const bool flat_descriptors = fds_low == fds_at_start && fds_high == fds_at_start;
  std::printf("\nresident memory after warm-up (%zu images): %.1f MB, then %.1f-%.1f MB (%+.1f %% at most; "
              "allowed %.0f %%)\nopen descriptors: %ld at the start, %ld-%ld during the run\n%zu of %zu verdicts "
              "anomalous\n",
              warm_up, warm_mb, low_after_warm_up, peak_after_warm_up, 100.0 * growth, 100.0 * allowed_growth,
              fds_at_start, fds_low, fds_high, anomalous, o.images);
  if (!o.check) return 0;
  std::printf("%s\n", flat_memory && flat_descriptors ? "flat: memory and descriptors"
                                                      : (flat_memory ? "descriptors changed" : "memory grew"));
  return flat_memory && flat_descriptors ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(parse(argc, argv));
  } catch (const std::exception& e) {
    std::cerr << "long_run: " << e.what() << "\n";
    return 2;
  }
}
