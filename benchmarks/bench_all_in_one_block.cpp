// all_in_one_block: FastFlow's step (coupling with hidden C/2 and a 3x3 subnet, tanh clamp 2, gain 0.1;
// global affine; permutation). Inference runs the fused output pass; training the three layers.
#include "bench_common.hpp"
#include "flowad/layers/all_in_one_block.hpp"

namespace {

flowad::all_in_one_config block_config(const flowad::shape4& s) {
  flowad::all_in_one_config cfg;
  flowad::affine_coupling_config& c = cfg.coupling;
  c.channels = s.c;
  c.groups = 2;
  c.hidden = s.c / 2;
  c.kernel = 3;
  c.activation = flowad::subnet_activation::relu;
  c.clamp = {flowad::clamp_kind::tanh, 2.0f};
  c.learn_gain = false;
  c.gain_init = 0.1f;
  c.seed = 1;
  cfg.permutation_seed = 2;
  return cfg;
}

void run(benchmark::State& state, bool with_backward, bool cold) {
  flowad::all_in_one_block layer(block_config(bench::shape_of(state)));
  bench::run_flow_layer(state, layer, with_backward, cold);
}

void all_in_one_forward(benchmark::State& state) { run(state, false, false); }
void all_in_one_forward_cold(benchmark::State& state) { run(state, false, true); }
void all_in_one_forward_backward(benchmark::State& state) { run(state, true, false); }
void all_in_one_forward_backward_cold(benchmark::State& state) { run(state, true, true); }

}  // namespace

BENCHMARK(all_in_one_forward)->Apply(bench::standard_args);
BENCHMARK(all_in_one_forward_cold)->Apply(bench::standard_args);
BENCHMARK(all_in_one_forward_backward)->Apply(bench::standard_args);
BENCHMARK(all_in_one_forward_backward_cold)->Apply(bench::standard_args);
BENCHMARK_MAIN();
