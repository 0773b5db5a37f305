// Affine coupling: the flow's compute. At 304 channels the block is MS-Flow's seed block (4 groups,
// hidden 512, 3x3); at 256x64x64 it is a classic two-group coupling with hidden 256, 3x3.
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
  flowad::affine_coupling layer = make_layer(bench::shape_of(state));
  bench::run_flow_layer(state, layer, with_backward, cold);
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
