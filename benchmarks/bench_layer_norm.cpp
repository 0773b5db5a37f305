// layer_norm on FastFlow's ResNet18 levels (64x64x64, 128x32x32, 256x16x16; batch 32, its training batch):
// streaming work, so it reports GB/s of the passes it makes over memory: forward reads src twice
// (statistics, then normalisation) and writes dst; backward without diff_src reads src and diff_dst once
// (FastFlow's case: frozen features); with diff_src it reads them twice and writes diff_src.
// Run with --benchmark_repetitions=5 --benchmark_report_aggregates_only=true for medians.
#include <array>
#include <string>

#include "bench_common.hpp"
#include "flowad/nn/layer_norm.hpp"

namespace {

using flowad::index_t;
using flowad::layout;
using flowad::shape4;

constexpr std::array<shape4, 3> fastflow_shapes{{{32, 64, 64, 64}, {32, 128, 32, 32}, {32, 256, 16, 16}}};

// Args: {shape index, threads, layout (0 NHWC, 1 NCHW)}.
void fastflow_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"shape", "threads", "nchw"});
  for (int s = 0; s < static_cast<int>(fastflow_shapes.size()); ++s)
    for (int l : {0, 1})
      for (int t : {1, 2}) b->Args({s, t, l});
  b->UseRealTime()->Unit(benchmark::kMillisecond);
}

enum class pass { forward, backward_weights, backward };

template <pass P>
void layer_norm_pass(benchmark::State& state) {
  bench::thread_count threads(state);
  const shape4 s = fastflow_shapes[static_cast<std::size_t>(state.range(0))];
  const layout l = state.range(2) != 0 ? layout::nchw : layout::nhwc;
  flowad::tensor x(s, l), diff_y(s, l), y(s, l), diff_x(s, l);
  // random_input is NHWC: copy it into the benchmarked layout.
  flowad::copy(bench::random_input(s, 1, 2.0f).view(), x.view());
  flowad::copy(bench::random_input(s, 2).view(), diff_y.view());
  flowad::layer_norm ln(s.c, s.h, s.w);
  flowad::workspace ws;
  const flowad::view no_diff_src;
  auto step = [&] {
    if constexpr (P == pass::forward) ln.forward(x.view(), y.view(), ws);
    if constexpr (P == pass::backward_weights) ln.backward(x.view(), diff_y.view(), no_diff_src, ws);
    if constexpr (P == pass::backward) ln.backward(x.view(), diff_y.view(), diff_x.view(), ws);
  };
  ln.forward(x.view(), y.view(), ws, flowad::pass_mode::training);  // the statistics backward reads
  step();  // first touch of every buffer outside the timing
  for (auto _ : state) {
    step();
    benchmark::DoNotOptimize(P == pass::forward ? y.data() : ln.weight().grad());
  }
  // run_layer_benchmarks.sh reads "<shape> threads=N" and shows the rest (the layout) as the implementation.
  state.SetLabel(s.str() + " threads=" + std::to_string(state.range(1)) + (l == layout::nchw ? " NCHW" : " NHWC"));
  const double passes = P == pass::forward ? 3.0 : (P == pass::backward_weights ? 2.0 : 5.0);
  bench::report_bytes(state, passes * static_cast<double>(x.bytes()));
}

}  // namespace

BENCHMARK_TEMPLATE(layer_norm_pass, pass::forward)->Name("layer_norm_forward")->Apply(fastflow_args);
BENCHMARK_TEMPLATE(layer_norm_pass, pass::backward_weights)
    ->Name("layer_norm_backward_weights")
    ->Apply(fastflow_args);
BENCHMARK_TEMPLATE(layer_norm_pass, pass::backward)->Name("layer_norm_backward")->Apply(fastflow_args);
BENCHMARK_MAIN();
