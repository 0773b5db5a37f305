// Affine coupling: the flow's compute. At 304 channels the block is MS-Flow's seed block (4 groups,
// hidden 512, 3x3); at 256x64x64 it is a classic two-group coupling with hidden 256, 3x3.
#include <vector>

#include "bench_common.hpp"
#include "flowad/layers/affine_coupling.hpp"

namespace {

flowad::affine_coupling make_layer(const flowad::shape4& s) {
  flowad::affine_coupling_config cfg;
  cfg.channels = s.c;
  cfg.groups = s.c == 304 ? 4 : 2;
  cfg.hidden = s.c == 304 ? 512 : 256;
  cfg.kernel = 3;
  cfg.gain_init = 0.5f;
  cfg.seed = 1;
  return flowad::affine_coupling(cfg);
}

void run(benchmark::State& state, bool with_backward, bool cold) {
  bench::thread_count threads(state);
  const flowad::shape4 s = bench::shape_of(state);
  flowad::affine_coupling layer = make_layer(s);
  const flowad::tensor x = bench::random_input(s), diff_y = bench::random_input(s, 2);
  flowad::tensor y(s, flowad::layout::nhwc), diff_x(s, flowad::layout::nhwc);
  std::vector<double> logdet(static_cast<std::size_t>(s.n)), diff_logdet(static_cast<std::size_t>(s.n), -1e-3);
  flowad::workspace ws;
  const flowad::pass_mode mode = with_backward ? flowad::pass_mode::training : flowad::pass_mode::inference;
  auto step = [&] {
    layer.forward(x.view(), y.view(), logdet, ws, mode);
    if (with_backward) layer.backward(x.view(), y.view(), diff_y.view(), diff_logdet, diff_x.view(), ws);
  };
  step();  // sizes buffers and creates primitives outside the timing
  const bench::onednn_cache_disabled no_cache(cold);
  for (auto _ : state) {
    if (cold) layer.clear_primitive_cache();
    step();
    benchmark::DoNotOptimize(y.data());
  }
  bench::label(state);
  // Training: forward + backward-data + backward-weights, 3x the forward multiply-accumulates.
  const double macs = layer.macs_per_sample(s.h, s.w) * static_cast<double>(s.n) * (with_backward ? 3.0 : 1.0);
  bench::report_flops(state, 2.0 * macs);
}

void coupling_forward(benchmark::State& state) { run(state, false, false); }
void coupling_forward_cold(benchmark::State& state) { run(state, false, true); }
void coupling_forward_backward(benchmark::State& state) { run(state, true, false); }
void coupling_forward_backward_cold(benchmark::State& state) { run(state, true, true); }

}  // namespace

BENCHMARK(coupling_forward)->Apply(bench::standard_args);
BENCHMARK(coupling_forward_cold)->Apply(bench::standard_args);
BENCHMARK(coupling_forward_backward)->Apply(bench::standard_args);
BENCHMARK(coupling_forward_backward_cold)->Apply(bench::standard_args);
BENCHMARK_MAIN();
