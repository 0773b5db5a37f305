// PatchCore scoring against the size of its memory bank: the features of 256 x 256 images through
// ResNet18's layer2 and layer3 (128x32x32 and 256x16x16, 1,024 patches of 384 values per image), a bank
// of the given share of bottle's 209 x 1,024 training patches (10 %: 21,402 rows, 32.9 MB), scored at
// batch 1 and 16 on 1 and 2 threads, with float32 and bfloat16 products (score.search). The bank's rows
// are random: the work does not depend on them.
// Counters: ms per image, bank megabytes, and GFLOP/s of the nearest-neighbour products (2 x the MACs
// of stats(), the work actually executed).
//
//   bench_patchcore --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>
#include <omp.h>

#include <cmath>
#include <memory>

#include "flowad/detail/random.hpp"
#include "flowad/detectors/patchcore.hpp"
#include "flowad/io/model_file.hpp"

namespace {

using namespace flowad;

constexpr index_t bottle_patches = 209 * 32 * 32;

std::unique_ptr<detector> patchcore_with_bank(double fraction, search_precision search) {
  patchcore_config cfg = patchcore_config::recommended({{128, 32, 32}, {256, 16, 16}});
  cfg.search = search;
  const index_t rows = static_cast<index_t>(std::llround(fraction * bottle_patches)), dimension = cfg.feature_dimension();
  model_file_contents m;
  m.kind = "patchcore";
  m.config = to_detector_config(cfg);
  stored_tensor bank{"bank", {rows, dimension}, std::vector<float>(static_cast<std::size_t>(rows * dimension))};
  detail::rng r(1);
  for (float& v : bank.values) v = static_cast<float>(r.normal());
  m.tensors.push_back(std::move(bank));
  return detector_from_model_file(m);
}

tensor random_features(shape4 shape, std::uint64_t seed) {
  tensor t(shape, layout::nhwc);
  detail::rng r(seed);
  for (index_t i = 0; i < t.numel(); ++i) t.data()[i] = static_cast<float>(r.normal());
  return t;
}

// Args: {bank share in percent, batch, threads, bfloat16 search (0/1)}.
void BM_patchcore_score(benchmark::State& state) {
  const double fraction = static_cast<double>(state.range(0)) / 100.0;
  const index_t batch = state.range(1);
  const int previous = omp_get_max_threads();
  omp_set_num_threads(static_cast<int>(state.range(2)));
  const std::unique_ptr<detector> model =
      patchcore_with_bank(fraction, state.range(3) ? search_precision::bfloat16 : search_precision::float32);
  const tensor layer2 = random_features({batch, 128, 32, 32}, 2), layer3 = random_features({batch, 256, 16, 16}, 3);
  score_options options;
  options.map_height = options.map_width = 256;
  options.batch_size = batch;
  scores out;
  model->score({layer2.cview(), layer3.cview()}, options, out);  // warm-up: primitives and buffers
  for (auto _ : state) {
    model->score({layer2.cview(), layer3.cview()}, options, out);
    benchmark::DoNotOptimize(out.image.data());
  }
  const double images = static_cast<double>(state.iterations()) * static_cast<double>(batch);
  state.counters["ms_per_image"] = benchmark::Counter(images * 1e-3, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.counters["bank_MB"] = model->stats().parameters * 4.0 / 1e6;
  state.counters["GFLOPs"] = benchmark::Counter(images * 2.0 * model->stats().macs_per_image * 1e-9, benchmark::Counter::kIsRate);
  omp_set_num_threads(previous);
}

BENCHMARK(BM_patchcore_score)
    ->ArgNames({"bank_percent", "batch", "threads", "bf16"})
    ->ArgsProduct({{1, 10, 25}, {1, 16}, {1, 2}, {0, 1}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
