// Fixed channel permutation: pure data movement, so it reports GB/s (read + write), not GFLOP/s.
#include <vector>

#include "bench_common.hpp"
#include "flowad/layers/permute.hpp"

namespace {

void permute_forward(benchmark::State& state) {
  bench::thread_count threads(state);
  const flowad::shape4 s = bench::shape_of(state);
  const flowad::permute layer(s.c, 1);
  const flowad::tensor x = bench::random_input(s);
  flowad::tensor y(s, flowad::layout::nhwc);
  std::vector<double> logdet(static_cast<std::size_t>(s.n));
  flowad::workspace ws;
  layer.forward(x.view(), y.view(), logdet, ws);
  for (auto _ : state) {
    layer.forward(x.view(), y.view(), logdet, ws);
    benchmark::DoNotOptimize(y.data());
  }
  bench::label(state);
  bench::report_bytes(state, 2.0 * static_cast<double>(x.bytes()));
}

void permute_forward_backward(benchmark::State& state) {
  bench::thread_count threads(state);
  const flowad::shape4 s = bench::shape_of(state);
  flowad::permute layer(s.c, 1);
  const flowad::tensor x = bench::random_input(s), diff_y = bench::random_input(s, 2);
  flowad::tensor y(s, flowad::layout::nhwc), diff_x(s, flowad::layout::nhwc);
  std::vector<double> logdet(static_cast<std::size_t>(s.n)), diff_logdet(static_cast<std::size_t>(s.n), -1.0);
  flowad::workspace ws;
  layer.forward(x.view(), y.view(), logdet, ws, flowad::pass_mode::training);  // first touch outside timing
  layer.backward(x.view(), y.view(), diff_y.view(), diff_logdet, diff_x.view(), ws);
  for (auto _ : state) {
    layer.forward(x.view(), y.view(), logdet, ws, flowad::pass_mode::training);
    layer.backward(x.view(), y.view(), diff_y.view(), diff_logdet, diff_x.view(), ws);
    benchmark::DoNotOptimize(diff_x.data());
  }
  bench::label(state);
  bench::report_bytes(state, 4.0 * static_cast<double>(x.bytes()));
}

}  // namespace

// A permutation has no primitives to create, so cold and cached coincide; only cached is reported.
BENCHMARK(permute_forward)->Apply(bench::standard_args);
BENCHMARK(permute_forward_backward)->Apply(bench::standard_args);
BENCHMARK_MAIN();
