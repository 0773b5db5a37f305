// Invertible 1x1 convolution: a [N·H·W, C] x [C, C] product per pass, reported in GFLOP/s.
//
// Besides the layer itself, the "candidate" benchmarks time the two oneDNN formulations the layer could
// use on the same problems (a 1x1 convolution through detail::conv2d and a matrix product through
// detail::matmul), so the choice the layer makes (matmul) can be re-checked on a quiet machine.
#include <vector>

#include "bench_common.hpp"
#include "flowad/detail/backend.hpp"
#include "flowad/layers/invertible_1x1.hpp"

namespace {

using flowad::index_t;

// Multiply-accumulates of backward(): diff_src (M·C²), dL/dW (M·C²), and the chain to L and U (2·C³).
double backward_macs(const flowad::shape4& s) {
  const double c = static_cast<double>(s.c);
  return 2.0 * static_cast<double>(s.pixels()) * c * c + 2.0 * c * c * c;
}

template <bool cold>
void inv1x1_forward(benchmark::State& state) {
  bench::thread_count threads(state);
  const flowad::shape4 s = bench::shape_of(state);
  flowad::invertible_1x1 layer(s.c, 1);
  const flowad::tensor x = bench::random_input(s);
  flowad::tensor y(s, flowad::layout::nhwc);
  std::vector<double> logdet(static_cast<std::size_t>(s.n));
  flowad::workspace ws;
  layer.forward(x.view(), y.view(), logdet, ws);  // builds W and the primitive, first touch outside timing
  const bench::onednn_cache_disabled no_cache(cold);
  for (auto _ : state) {
    if (cold) layer.clear_primitive_cache();
    layer.forward(x.view(), y.view(), logdet, ws);
    benchmark::DoNotOptimize(y.data());
  }
  bench::label(state);
  bench::report_flops(state, 2.0 * layer.macs_per_sample(s.h, s.w) * static_cast<double>(s.n));
}

template <bool cold>
void inv1x1_forward_backward(benchmark::State& state) {
  bench::thread_count threads(state);
  const flowad::shape4 s = bench::shape_of(state);
  flowad::invertible_1x1 layer(s.c, 1);
  const flowad::tensor x = bench::random_input(s), diff_y = bench::random_input(s, 2);
  flowad::tensor y(s, flowad::layout::nhwc), diff_x(s, flowad::layout::nhwc);
  std::vector<double> logdet(static_cast<std::size_t>(s.n)), diff_logdet(static_cast<std::size_t>(s.n), -1.0);
  flowad::workspace ws;
  layer.forward(x.view(), y.view(), logdet, ws, flowad::pass_mode::training);
  layer.backward(x.view(), y.view(), diff_y.view(), diff_logdet, diff_x.view(), ws);
  const bench::onednn_cache_disabled no_cache(cold);
  for (auto _ : state) {
    if (cold) layer.clear_primitive_cache();
    layer.forward(x.view(), y.view(), logdet, ws, flowad::pass_mode::training);
    layer.backward(x.view(), y.view(), diff_y.view(), diff_logdet, diff_x.view(), ws);
    benchmark::DoNotOptimize(diff_x.data());
  }
  bench::label(state);
  bench::report_flops(state, 2.0 * (layer.macs_per_sample(s.h, s.w) * static_cast<double>(s.n) + backward_macs(s)));
}

// One optimiser step's rebuild of W and W^-1 from the factors (in double), plus a forward pass on one pixel.
void inv1x1_weight_rebuild(benchmark::State& state) {
  bench::thread_count threads(state);
  const flowad::shape4 s = bench::shape_of(state);
  flowad::invertible_1x1 layer(s.c, 1);
  const flowad::tensor x = bench::random_input({1, s.c, 1, 1});
  flowad::tensor y({1, s.c, 1, 1}, flowad::layout::nhwc);
  std::vector<double> logdet(1);
  flowad::workspace ws;
  layer.forward(x.view(), y.view(), logdet, ws);
  for (auto _ : state) {
    layer.log_s().mark_updated();
    layer.forward(x.view(), y.view(), logdet, ws);
    benchmark::DoNotOptimize(y.data());
  }
  state.SetLabel("C=" + std::to_string(s.c) + " threads=" + std::to_string(state.range(1)));
}

// --- the two oneDNN formulations, on the problems the brief names: 304x24x24 batch 16, 256x64x64 batch 8 ---

void candidate_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"shape", "threads"});
  for (int s : {1, 2})
    for (int t : {1, 2}) b->Args({s, t});
  b->UseRealTime()->Unit(benchmark::kMillisecond);
}

flowad::parameter square_weights(index_t c) {
  flowad::parameter w("weights", {c, c, 1, 1});
  flowad::detail::rng r(3);
  for (float& v : w.values()) v = static_cast<float>(r.normal() / static_cast<double>(c));
  return w;
}

void inv1x1_candidate_conv_forward(benchmark::State& state) {
  bench::thread_count threads(state);
  const flowad::shape4 s = bench::shape_of(state);
  const flowad::detail::conv2d conv({s.c, s.c, 1, flowad::detail::activation::none, 0.0f, false});
  const flowad::parameter w = square_weights(s.c);
  const flowad::tensor x = bench::random_input(s);
  flowad::tensor y(s, flowad::layout::nhwc);
  flowad::detail::exec_context ctx;
  conv.forward(x.data(), y.data(), s.n, s.h, s.w, w, nullptr, ctx);
  for (auto _ : state) {
    conv.forward(x.data(), y.data(), s.n, s.h, s.w, w, nullptr, ctx);
    benchmark::DoNotOptimize(y.data());
  }
  state.SetLabel(s.str() + " threads=" + std::to_string(state.range(1)) + " " + conv.implementation(s.n, s.h, s.w));
  bench::report_flops(state, 2.0 * conv.macs(s.n, s.h, s.w));
}

void inv1x1_candidate_matmul_forward(benchmark::State& state) {
  bench::thread_count threads(state);
  const flowad::shape4 s = bench::shape_of(state);
  const index_t m = s.pixels(), c = s.c;
  const flowad::detail::matmul product;
  const flowad::parameter w = square_weights(c);
  const flowad::tensor x = bench::random_input(s);
  flowad::tensor y(s, flowad::layout::nhwc);
  flowad::detail::exec_context ctx;
  product.run(false, false, m, c, c, x.data(), c, w.data(), c, y.data(), c, 0.0f, ctx);
  for (auto _ : state) {
    product.run(false, false, m, c, c, x.data(), c, w.data(), c, y.data(), c, 0.0f, ctx);
    benchmark::DoNotOptimize(y.data());
  }
  state.SetLabel(s.str() + " threads=" + std::to_string(state.range(1)) + " " +
                 product.implementation(false, false, m, c, c));
  bench::report_flops(state, 2.0 * static_cast<double>(m) * static_cast<double>(c * c));
}

// Backward data + backward weights.
void inv1x1_candidate_conv_backward(benchmark::State& state) {
  bench::thread_count threads(state);
  const flowad::shape4 s = bench::shape_of(state);
  const flowad::detail::conv2d conv({s.c, s.c, 1, flowad::detail::activation::none, 0.0f, false});
  flowad::parameter w = square_weights(s.c);
  const flowad::tensor x = bench::random_input(s), diff_y = bench::random_input(s, 2);
  flowad::tensor diff_x(s, flowad::layout::nhwc);
  flowad::detail::exec_context ctx;
  auto run = [&] {
    conv.backward_data(diff_y.data(), diff_x.data(), s.n, s.h, s.w, w, ctx);
    conv.backward_weights(x.data(), diff_y.data(), s.n, s.h, s.w, w, nullptr, ctx);
  };
  run();
  for (auto _ : state) {
    run();
    benchmark::DoNotOptimize(diff_x.data());
  }
  bench::label(state);
  bench::report_flops(state, 4.0 * conv.macs(s.n, s.h, s.w));
}

void inv1x1_candidate_matmul_backward(benchmark::State& state) {
  bench::thread_count threads(state);
  const flowad::shape4 s = bench::shape_of(state);
  const index_t m = s.pixels(), c = s.c;
  const flowad::detail::matmul product;
  const flowad::parameter w = square_weights(c);
  std::vector<float> diff_w(static_cast<std::size_t>(c * c));
  const flowad::tensor x = bench::random_input(s), diff_y = bench::random_input(s, 2);
  flowad::tensor diff_x(s, flowad::layout::nhwc);
  flowad::detail::exec_context ctx;
  auto run = [&] {
    product.run(false, false, m, c, c, diff_y.data(), c, w.data(), c, diff_x.data(), c, 0.0f, ctx);
    product.run(true, false, c, c, m, diff_y.data(), c, x.data(), c, diff_w.data(), c, 0.0f, ctx);
  };
  run();
  for (auto _ : state) {
    run();
    benchmark::DoNotOptimize(diff_x.data());
  }
  bench::label(state);
  bench::report_flops(state, 4.0 * static_cast<double>(m) * static_cast<double>(c * c));
}

}  // namespace

BENCHMARK_TEMPLATE(inv1x1_forward, false)->Name("inv1x1_forward")->Apply(bench::standard_args);
BENCHMARK_TEMPLATE(inv1x1_forward, true)->Name("inv1x1_forward_cold")->Apply(bench::standard_args);
BENCHMARK_TEMPLATE(inv1x1_forward_backward, false)->Name("inv1x1_forward_backward")->Apply(bench::standard_args);
BENCHMARK_TEMPLATE(inv1x1_forward_backward, true)->Name("inv1x1_forward_backward_cold")->Apply(bench::standard_args);
BENCHMARK(inv1x1_weight_rebuild)->Apply(candidate_args);
BENCHMARK(inv1x1_candidate_conv_forward)->Apply(candidate_args);
BENCHMARK(inv1x1_candidate_matmul_forward)->Apply(candidate_args);
BENCHMARK(inv1x1_candidate_conv_backward)->Apply(candidate_args);
BENCHMARK(inv1x1_candidate_matmul_backward)->Apply(candidate_args);
BENCHMARK_MAIN();
