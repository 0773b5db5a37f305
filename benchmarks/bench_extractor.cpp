// The built-in extractors on a batch of 256x256 images: ms per batch, images/s and GFLOP/s
// (2 x the network's multiply-accumulates of the direct method), cached primitives, at batch 1 and 16
// and 1 and 2 threads. ResNet18 runs twice: as built by default (its stride-1 3x3 convolutions on
// Winograd, activation_format::winograd) and with every convolution direct (`preferred`).
//
// ResNet18 and MobileNetV2 read their weights from $FLOWAD_SHARED/weights (default: ../shared beside
// the source root, as for the real-data tests) and report an error when they are missing.
// bm_chunk runs ResNet18 (default build) at batch 16 in chunks of 1..16 images (inference_net's
// max_chunk): the time against the arena that the chunk sets.
//   build/benchmarks/bench_extractor --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <string>
#include <vector>

#include "bench_common.hpp"
#include "flowad/extract/extractor.hpp"
#include "flowad/extract/resnet18.hpp"

namespace {

struct extractor_case {
  const char* label;
  const char* name;
  const char* weights;  // below the shared folder; empty for weight-free extractors
};

const std::vector<extractor_case> extractor_cases = {
    {"resnet18", "resnet18", "weights/resnet18"},
    {"resnet18_direct", "resnet18", "weights/resnet18"},
    {"mobilenet_v2", "mobilenet_v2", "weights/mobilenet_v2/mobilenet_v2_dequant_bnfolded.npz"},
    {"filterbank", "filterbank", ""},
};

std::unique_ptr<flowad::extractor> make(const extractor_case& c, const std::string& weights) {
  if (std::string(c.label) == "resnet18_direct")
    return std::make_unique<flowad::resnet18_extractor>(weights, flowad::detail::activation_format::preferred);
  return flowad::make_extractor(c.name, weights);
}

constexpr flowad::index_t image_size = 256;

// Args: {extractor, batch, threads}.
void bm_extract(benchmark::State& state) {
  const extractor_case& c = extractor_cases[static_cast<std::size_t>(state.range(0))];
  const flowad::index_t batch = state.range(1);
  const bench::thread_count threads(state, 2);
  std::unique_ptr<flowad::extractor> ex;
  try {
    ex = make(c, *c.weights ? bench::shared_folder() + "/" + c.weights : std::string());
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
    return;
  }
  const flowad::shape4 images{batch, 3, image_size, image_size};
  const flowad::tensor x = bench::random_input(images);
  std::vector<flowad::tensor> maps;
  flowad::workspace ws;
  ex->extract(x.view(), maps, ws);  // creates the primitives and sizes every buffer outside the timing
  for (auto _ : state) {
    ex->extract(x.view(), maps, ws);
    benchmark::DoNotOptimize(maps.front().data());
  }
  state.SetLabel(std::string(c.label) + " " + images.str() + " threads=" + std::to_string(state.range(2)));
  bench::report_flops(state, 2.0 * ex->macs(images));
  state.counters["images"] =
      benchmark::Counter(static_cast<double>(batch), benchmark::Counter::kIsIterationInvariantRate);
}

BENCHMARK(bm_extract)
    ->ArgNames({"extractor", "batch", "threads"})
    ->ArgsProduct({{0, 1, 2, 3}, {1, 16}, {1, 2}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// Args: {chunk, threads}; ResNet18 at batch 16.
void bm_chunk(benchmark::State& state) {
  const flowad::index_t chunk = state.range(0);
  const bench::thread_count threads(state, 1);
  std::unique_ptr<flowad::resnet18_extractor> ex;
  try {
    ex = std::make_unique<flowad::resnet18_extractor>(bench::shared_folder() + "/weights/resnet18");
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
    return;
  }
  ex->network().set_max_chunk(chunk);
  const flowad::shape4 images{16, 3, image_size, image_size};
  const flowad::tensor x = bench::random_input(images);
  std::vector<flowad::tensor> maps;
  flowad::workspace ws;
  ex->extract(x.view(), maps, ws);
  for (auto _ : state) {
    ex->extract(x.view(), maps, ws);
    benchmark::DoNotOptimize(maps.front().data());
  }
  state.SetLabel("resnet18 " + images.str() + " chunk=" + std::to_string(chunk));
  bench::report_flops(state, 2.0 * ex->macs(images));
}

BENCHMARK(bm_chunk)
    ->ArgNames({"chunk", "threads"})
    ->ArgsProduct({{1, 2, 4, 8, 16}, {2}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
