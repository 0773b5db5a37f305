// all_in_one_block: FastFlow's step (coupling with hidden C/2 and a 3x3 subnet, tanh clamp 2, gain 0.1;
// global affine; permutation). Inference runs the fused output pass; training the three layers.
#include <vector>

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
  bench::thread_count threads(state);
  const flowad::shape4 s = bench::shape_of(state);
  flowad::all_in_one_block layer(block_config(s));
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
