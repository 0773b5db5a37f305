// End-to-end scoring: decoded images to anomaly maps and image scores (ResNet18 features, the detector,
// the maps at the input size), for the shipped default of each detector, at batch 1 and 16, with the
// machine's FP32 peak measured in the same run. benchmarks/peer/compare_pipeline.sh runs it next to the
// same networks in PyTorch and ONNX Runtime.
//
//   bench_pipeline [--json] [--threads N] [--repeats R] [--configs msflow,patchcore] [--cases score_b1,score_b16]
//                  [--models DIR] [--fit] [--train-images N] [--size S] [--warmup W] [--no-peak]
//                  [--fit-repeats F] [--profile]
//
// Each config is an inspector with pipeline_config::recommended("resnet18", weights, detector), fitted
// on the first N (default all 209) training images of MVTec bottle resized to S x S (default 256), with
// one training epoch (scoring costs the same after one epoch as after sixteen) and no threshold, and
// saved as DIR/<config>.flowad (default DIR: pipeline_models beside the program). With --fit the program
// fits and saves every config and exits; without it, it loads them (fitting those missing first), so that
// a scoring run's peak RSS counts scoring, not training. A case scores the first B test images, already
// decoded and resized to S x S (what is timed: conversion to floats, normalisation, the extractor, the
// detector, the maps upsampled to S x S, the image scores).
// Case fit_epoch (detectors that train): one training epoch of a fresh detector with the shipped default
// configuration on N random feature maps of ResNet18's shapes (default N = 209, MVTec bottle's training
// set: 14 steps of batch 16), the statistics it sets from the data included; timed F times (--fit-repeats,
// default 3), no warm-up (every repeat builds its detector, as a fit does).
// Each scoring case runs W untimed calls (default 2) and then R timed ones. --profile then runs one more
// call with oneDNN's verbose log on (its lines on stdout: benchmarks/executed_work.py counts the work oneDNN
// executed and where its time went, in steady state); --no-peak skips the machine's peak.
// The data and weights are found below $FLOWAD_SHARED (default: ../shared beside the source root).
#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include <dnnl.h>

#include "flowad/detail/random.hpp"
#include "flowad/detectors/patchcore.hpp"
#include "flowad/flowad.hpp"
#include "bench_program.hpp"
#include "machine_peak.hpp"

namespace {

std::string shared_folder() {
  if (const char* env = std::getenv("FLOWAD_SHARED"); env && *env) return env;
  return FLOWAD_SHARED_DEFAULT;
}

// Images read and resized to size x size (antialiased bilinear, as the pipeline resizes).
std::vector<flowad::byte_image> read_resized(const std::vector<std::filesystem::path>& paths, flowad::index_t size) {
  std::vector<flowad::byte_image> images;
  images.reserve(paths.size());
  for (const auto& p : paths)
    images.push_back(flowad::to_bytes(flowad::resize_bilinear(flowad::to_float(flowad::read_image(p)), size, size)));
  return images;
}

constexpr const char* fit_epoch_case = "fit_epoch";

// One epoch of a fresh detector of `kind` with `config` (its epochs set to 1) on `images` random samples of
// its input shapes.
bench::timing time_fit_epoch(const std::string& kind, flowad::detector_config config, std::size_t images, int repeats) {
  config.set("train.epochs", "1");
  const std::vector<flowad::scale_shape> shapes = flowad::make_detector(kind, config)->input_shapes();
  std::vector<flowad::tensor> features;
  std::vector<flowad::const_view> views;
  flowad::detail::rng r(11);
  for (const flowad::scale_shape& s : shapes) {
    features.emplace_back(flowad::shape4{static_cast<flowad::index_t>(images), s.channels, s.height, s.width});
    for (flowad::index_t i = 0; i < features.back().numel(); ++i)
      features.back().data()[i] = static_cast<float>(r.normal());
  }
  for (const flowad::tensor& t : features) views.push_back(t.cview());
  return bench::time_it([&] { (void)flowad::make_detector(kind, config)->fit(views); }, 0, repeats);
}

int parse_batch(const std::string& name) {
  if (name == fit_epoch_case) return 0;
  const std::string prefix = "score_b";
  if (name.rfind(prefix, 0) == 0 && name.size() > prefix.size() &&
      name.find_first_not_of("0123456789", prefix.size()) == std::string::npos)
    return std::stoi(name.substr(prefix.size()));
  std::fprintf(stderr, "bench_pipeline: unknown case '%s' (score_b<N>, N > 0, or fit_epoch)\n", name.c_str());
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  bool fit_only = false, measure_peak = true, profile = false;
  int warmup = 2, fit_repeats = 3;
  std::filesystem::path models = std::filesystem::path(argv[0]).parent_path() / "pipeline_models";
  std::size_t train_images = 209;
  flowad::index_t size = 256;
  bench::run_options run;
  run.threads = omp_get_max_threads();
  run.configs = {"msflow", "fastflow", "patchcore", "fcl"};
  std::vector<std::string> cases{"score_b1", "score_b16"};
  CLI::App app("End-to-end scoring of the shipped defaults (see the head of bench_pipeline.cpp)", "bench_pipeline");
  bench::add_run_options(app, run, "msflow, fastflow, patchcore, fcl");
  app.add_option("--cases", cases, "score_b<N>, fit_epoch")->delimiter(',');
  app.add_option("--models", models, "folder of the fitted models");
  app.add_flag("--fit", fit_only, "fit and save every config, then exit");
  app.add_option("--train-images", train_images, "training images")->check(CLI::PositiveNumber);
  app.add_option("--size", size, "image side")->check(CLI::PositiveNumber);
  app.add_option("--warmup", warmup, "untimed calls before a scoring case")->check(CLI::NonNegativeNumber);
  app.add_flag("--no-peak{false}", measure_peak, "skip measuring the machine's peak");
  app.add_flag("--profile", profile, "one more call with oneDNN's verbose log");
  app.add_option("--fit-repeats", fit_repeats, "timed fit_epoch runs")->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);
  const bool json = run.json;
  const int threads = run.threads, repeats = run.repeats;
  const std::vector<std::string>& configs = run.configs;
  for (const std::string& c : cases) parse_batch(c);
  omp_set_num_threads(threads);

  try {
    const std::string shared = shared_folder();
    const flowad::mvtec_category bottle = flowad::read_mvtec_category(shared + "/data/mvtec_bottle");
    std::filesystem::create_directories(models);
    for (const std::string& kind : configs) {
      const std::filesystem::path file = models / (kind + ".flowad");
      if (!fit_only && std::filesystem::exists(file)) continue;
      flowad::pipeline_config pc = flowad::pipeline_config::recommended("resnet18", shared + "/weights/resnet18", kind);
      pc.height = pc.width = size;
      {
        // One epoch for the detectors that train: scoring costs the same after any number.
        const auto ex = flowad::make_extractor(pc.extractor, pc.weights);
        if (flowad::pipeline_detector_config(pc, *ex, flowad::pipeline_features(pc, *ex, size, size)).has("train.epochs"))
          pc.settings.set("train.epochs", "1");
      }
      std::vector<std::filesystem::path> train_paths = bottle.train;
      if (train_paths.size() > train_images) train_paths.resize(train_images);
      flowad::inspector insp(pc);
      flowad::inspector_fit_options fo;
      fo.calibration = flowad::calibration_method::holdout;
      fo.holdout = 0.0;  // no threshold: one fit
      insp.fit(read_resized(train_paths, size), fo);
      insp.save(file);
      std::fprintf(stderr, "bench_pipeline: fitted %s on %zu images -> %s\n", kind.c_str(), train_paths.size(),
                   file.c_str());
    }
    if (fit_only) return 0;

    int largest_batch = 1;
    for (const std::string& c : cases) largest_batch = std::max(largest_batch, parse_batch(c));
    std::vector<std::filesystem::path> test_paths = bottle.test_images();
    if (test_paths.size() > static_cast<std::size_t>(largest_batch)) test_paths.resize(static_cast<std::size_t>(largest_batch));
    const std::vector<flowad::byte_image> test = read_resized(test_paths, size);

    if (!json) {
      std::printf("flowad %s, %s, %d threads\n\n", flowad::version().string, flowad::detail::backend_description().c_str(),
                  threads);
      std::printf("%-10s %-10s %10s %10s %10s %10s %12s\n", "config", "case", "ms/batch", "min", "max", "images/s",
                  "det. GMAC");
    }
    std::fflush(stdout);

    for (const std::string& kind : configs) {
      const flowad::inspector insp = flowad::inspector::load(models / (kind + ".flowad"));
      const flowad::model_stats stats = insp.model().stats();
      // PatchCore's bank decides its scoring cost; the peers are built with as many rows.
      const auto* bank = dynamic_cast<const flowad::patchcore*>(&insp.model());
      const long bank_rows = bank ? static_cast<long>(bank->bank_size()) : 0;
      for (const std::string& case_name : cases) {
        const int batch = parse_batch(case_name);
        if (batch == 0) {
          const flowad::detector_config config = insp.model().config();
          if (!config.has("train.epochs")) continue;  // PatchCore does not train
          const bench::timing t = time_fit_epoch(kind, config, train_images, fit_repeats);
          if (json)
            std::printf("{\"side\": \"flowad\", \"variant\": \"flowad\", \"config\": \"e2e_%s\", \"case\": \"%s\", "
                        "\"ms_median\": %.3f, \"ms_min\": %.3f, \"ms_max\": %.3f, \"images\": %zu, \"peak_rss_mb\": %.1f, "
                        "\"threads\": %d, \"repeats\": %d}\n",
                        kind.c_str(), case_name.c_str(), t.median_ms, t.min_ms, t.max_ms, train_images, bench::peak_rss_mb(),
                        threads, fit_repeats);
          else
            std::printf("%-10s %-10s %10.1f %10.1f %10.1f %10.1f\n", kind.c_str(), case_name.c_str(), t.median_ms,
                        t.min_ms, t.max_ms, static_cast<double>(train_images) / (t.median_ms * 1e-3));
          std::fflush(stdout);
          continue;
        }
        const std::vector<flowad::byte_image> images(test.begin(), test.begin() + std::min<std::size_t>(test.size(), batch));
        // Steady-state scoring, as an application scoring frame after frame would: the scores (maps)
        // and the inspector's buffers are reused from call to call.
        flowad::scores out;
        const bench::timing t = bench::time_it([&] { insp.score(images, out); }, warmup, repeats);
        if (profile) {
          std::fflush(stdout);
          dnnl_set_verbose(1);
          insp.score(images, out);
          dnnl_set_verbose(0);
          std::fflush(stdout);
        }
        const double images_per_s = static_cast<double>(images.size()) / (t.median_ms * 1e-3);
        if (json) {
          std::printf("{\"side\": \"flowad\", \"variant\": \"flowad\", \"config\": \"e2e_%s\", \"case\": \"%s\", "
                      "\"ms_median\": %.3f, \"ms_min\": %.3f, \"ms_max\": %.3f, \"images_per_s\": %.2f, "
                      "\"detector_macs_per_image\": %.6e, \"detector_parameters\": %.0f, \"size\": %ld, "
                      "\"bank_rows\": %ld, \"peak_rss_mb\": %.1f, \"threads\": %d, \"repeats\": %d}\n",
                      kind.c_str(), case_name.c_str(), t.median_ms, t.min_ms, t.max_ms, images_per_s,
                      stats.macs_per_image, stats.parameters, static_cast<long>(size), bank_rows, bench::peak_rss_mb(),
                      threads, repeats);
        } else {
          std::printf("%-10s %-10s %10.2f %10.2f %10.2f %10.1f %12.3f\n", kind.c_str(), case_name.c_str(), t.median_ms,
                      t.min_ms, t.max_ms, images_per_s, stats.macs_per_image * 1e-9);
        }
        std::fflush(stdout);
      }
    }
    const double rss = bench::peak_rss_mb();
    if (!measure_peak) return 0;
    // The machine's peak last, so that its buffers do not count in the cases' peak RSS.
    const double fma = bench::fma_peak(threads), sgemm = bench::sgemm_peak();
    const double peak = std::max(fma, sgemm);
    if (json)
      std::printf("{\"side\": \"flowad\", \"case\": \"peak\", \"gflops\": %.1f, \"fma_gflops\": %.1f, \"sgemm_gflops\": %.1f, "
                  "\"threads\": %d}\n", peak, fma, sgemm, threads);
    else
      std::printf("\npeak RSS %.0f MB; FP32 peak on %d threads: %.1f GFLOP/s\n", rss, threads, peak);
  } catch (const flowad::error& e) {
    std::fprintf(stderr, "bench_pipeline: %s\n", e.what());
    return 1;
  }
  return 0;
}
