// Per-channel affine layers (actnorm, global_affine): streaming elementwise work, so they report GB/s
// (bytes read + written), not GFLOP/s.
#include <vector>

#include "bench_common.hpp"
#include "flowad/layers/actnorm.hpp"

namespace {

using flowad::index_t;

template <class Layer>
Layer make_layer(index_t channels, const flowad::tensor& x);

template <>
flowad::actnorm make_layer<flowad::actnorm>(index_t channels, const flowad::tensor& x) {
  flowad::actnorm layer(channels);
  layer.initialize(x.view());
  return layer;
}

template <>
flowad::global_affine make_layer<flowad::global_affine>(index_t channels, const flowad::tensor&) {
  return flowad::global_affine(channels);
}

template <class Layer>
void affine_forward(benchmark::State& state) {
  bench::thread_count threads(state);
  const flowad::shape4 s = bench::shape_of(state);
  const flowad::tensor x = bench::random_input(s);
  const Layer layer = make_layer<Layer>(s.c, x);
  flowad::tensor y(s, flowad::layout::nhwc);
  std::vector<double> logdet(static_cast<std::size_t>(s.n));
  flowad::workspace ws;
  layer.forward(x.view(), y.view(), logdet, ws);  // first touch outside timing
  for (auto _ : state) {
    layer.forward(x.view(), y.view(), logdet, ws);
    benchmark::DoNotOptimize(y.data());
  }
  bench::label(state);
  bench::report_bytes(state, 2.0 * static_cast<double>(x.bytes()));
}

template <class Layer>
void affine_forward_backward(benchmark::State& state) {
  bench::thread_count threads(state);
  const flowad::shape4 s = bench::shape_of(state);
  const flowad::tensor x = bench::random_input(s), diff_y = bench::random_input(s, 2);
  Layer layer = make_layer<Layer>(s.c, x);
  flowad::tensor y(s, flowad::layout::nhwc), diff_x(s, flowad::layout::nhwc);
  std::vector<double> logdet(static_cast<std::size_t>(s.n)), diff_logdet(static_cast<std::size_t>(s.n), -1.0);
  flowad::workspace ws;
  layer.forward(x.view(), y.view(), logdet, ws, flowad::pass_mode::training);
  layer.backward(x.view(), y.view(), diff_y.view(), diff_logdet, diff_x.view(), ws);
  for (auto _ : state) {
    layer.forward(x.view(), y.view(), logdet, ws, flowad::pass_mode::training);
    layer.backward(x.view(), y.view(), diff_y.view(), diff_logdet, diff_x.view(), ws);
    benchmark::DoNotOptimize(diff_x.data());
  }
  bench::label(state);
  // forward: read x, write y; backward: read x and diff_y, write diff_x.
  bench::report_bytes(state, 5.0 * static_cast<double>(x.bytes()));
}

// Data-dependent initialisation: two passes over the batch (mean, then deviations), in double.
void actnorm_initialize(benchmark::State& state) {
  bench::thread_count threads(state);
  const flowad::shape4 s = bench::shape_of(state);
  const flowad::tensor x = bench::random_input(s);
  flowad::actnorm layer(s.c);
  layer.initialize(x.view());
  for (auto _ : state) {
    layer.initialize(x.view());
    benchmark::DoNotOptimize(layer.bias().data());
  }
  bench::label(state);
  bench::report_bytes(state, 2.0 * static_cast<double>(x.bytes()));
}

}  // namespace

// No primitives to create, so cold and cached coincide; only cached is reported.
BENCHMARK_TEMPLATE(affine_forward, flowad::actnorm)->Name("actnorm_forward")->Apply(bench::standard_args);
BENCHMARK_TEMPLATE(affine_forward_backward, flowad::actnorm)
    ->Name("actnorm_forward_backward")
    ->Apply(bench::standard_args);
BENCHMARK(actnorm_initialize)->Apply(bench::standard_args);
BENCHMARK_TEMPLATE(affine_forward, flowad::global_affine)->Name("global_affine_forward")->Apply(bench::standard_args);
BENCHMARK_TEMPLATE(affine_forward_backward, flowad::global_affine)
    ->Name("global_affine_forward_backward")
    ->Apply(bench::standard_args);
BENCHMARK_MAIN();
