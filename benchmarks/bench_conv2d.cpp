// The backend convolution alone, each pass on its own: the 3x3 convolutions of the two benchmark
// flows' conditioners (docs/performance.md), by the direct method and by `automatic` (Winograd
// F(4x4, 3x3) on AVX-512), and the 1x1 convolutions of the `compact` preset's conditioners on
// ResNet18's layer2 and layer3 (the default of docs/results.md), which only the direct method
// computes. GFLOP/s counts the direct method's 2 x multiply-accumulates for both, so a rate above
// the machine's peak means fewer multiplications, not faster ones.
//
//   build/benchmarks/bench_conv2d --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <array>
#include <string>

#include "bench_common.hpp"
#include "flowad/detail/backend.hpp"

namespace {

using bench::index_t;
using flowad::detail::conv2d;
using flowad::detail::conv_algorithm;

struct conv_shape {
  const char* name;
  index_t n, in, out, h, w, kernel;
};

// msflow_seed: 76 → hidden 512 → 152 on 24x24; fastflow_256: 128 → hidden 128 → 256 on 64x64; compact:
// 32 → hidden 256 → 64 on layer2's 32x32 and 64 → 256 → 128 on layer3's 16x16 (4 groups); batch 16;
// RD's decoder and bottleneck blocks (ResNet18 widths) at batch 1 and 16, where Winograd's per-call
// weight transform weighs most.
constexpr std::array<conv_shape, 14> shapes{{{"msflow 76>512 24x24", 16, 76, 512, 24, 24, 3},
                                            {"msflow 512>152 24x24", 16, 512, 152, 24, 24, 3},
                                            {"fastflow 128>128 64x64", 16, 128, 128, 64, 64, 3},
                                            {"fastflow 128>256 64x64", 16, 128, 256, 64, 64, 3},
                                            {"compact 32>256 32x32", 16, 32, 256, 32, 32, 1},
                                            {"compact 256>64 32x32", 16, 256, 64, 32, 32, 1},
                                            {"compact 64>256 16x16", 16, 64, 256, 16, 16, 1},
                                            {"compact 256>128 16x16", 16, 256, 128, 16, 16, 1},
                                            {"rd 512>512 8x8 b1", 1, 512, 512, 8, 8, 3},
                                            {"rd 512>512 8x8 b16", 16, 512, 512, 8, 8, 3},
                                            {"rd 256>256 16x16 b1", 1, 256, 256, 16, 16, 3},
                                            {"rd 256>256 16x16 b16", 16, 256, 256, 16, 16, 3},
                                            {"rd 128>128 32x32 b1", 1, 128, 128, 32, 32, 3},
                                            {"rd 64>64 64x64 b1", 1, 64, 64, 64, 64, 3}}};

enum pass : int { forward_pass, backward_data_pass, backward_weights_pass };
constexpr std::array<const char*, 3> pass_names{{"forward", "backward_data", "backward_weights"}};

void convolution(benchmark::State& state) {
  const conv_shape& s = shapes[static_cast<std::size_t>(state.range(0))];
  const bench::thread_count threads(state);  // reads range(1)
  const auto algorithm = state.range(2) == 0 ? conv_algorithm::direct : conv_algorithm::automatic;
  const auto which = static_cast<pass>(state.range(3));

  conv2d conv({s.in, s.out, s.kernel, flowad::detail::activation::none, 0.0f, true, algorithm});
  flowad::parameter weights("w", {s.out, s.in, s.kernel, s.kernel}), bias("b", {s.out});
  const flowad::tensor src = bench::random_input({s.n, s.in, s.h, s.w}, 1);
  const flowad::tensor diff_dst = bench::random_input({s.n, s.out, s.h, s.w}, 2);
  flowad::tensor dst({s.n, s.out, s.h, s.w}, flowad::layout::nhwc), diff_src({s.n, s.in, s.h, s.w}, flowad::layout::nhwc);
  const flowad::tensor w = bench::random_input({s.out, s.in, s.kernel, s.kernel}, 3, 0.05f);
  std::copy(w.data(), w.data() + w.numel(), weights.values().begin());
  weights.mark_updated();
  flowad::detail::exec_context ctx;

  auto run = [&] {
    switch (which) {
      case forward_pass: conv.forward(src.data(), dst.data(), s.n, s.h, s.w, weights, &bias, ctx); break;
      case backward_data_pass: conv.backward_data(diff_dst.data(), diff_src.data(), s.n, s.h, s.w, weights, ctx); break;
      case backward_weights_pass:
        conv.backward_weights(src.data(), diff_dst.data(), s.n, s.h, s.w, weights, &bias, ctx);
        break;
    }
  };
  run();  // primitives, staging buffers and reordered weights are made here, outside the timing
  for (auto _ : state) run();

  const double flops = 2.0 * conv.macs(s.n, s.h, s.w);
  state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(std::string(s.name) + ", " + pass_names[static_cast<std::size_t>(which)] + ", " +
                 (algorithm == conv_algorithm::direct ? "direct" : "automatic") + " [" +
                 conv.implementation(s.n, s.h, s.w) + "]");
}

void conv_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"shape", "threads", "winograd", "pass"});
  for (int s = 0; s < static_cast<int>(shapes.size()); ++s)
    for (int t : {1, 2})
      for (int algorithm : {0, 1})
        if (algorithm == 0 || shapes[static_cast<std::size_t>(s)].kernel == 3)  // 1x1: direct only
          for (int p : {forward_pass, backward_data_pass, backward_weights_pass}) b->Args({s, t, algorithm, p});
  b->UseRealTime()->Unit(benchmark::kMillisecond);
}

BENCHMARK(convolution)->Apply(conv_args);

// A conditioner's two chained 3x3 convolutions for inference (conv2d::forward_into, as the flows score):
// msflow_seed's 76 → 512 → 152 on 24 x 24 at batch 1 and 16, by the direct method and by `automatic`
// (Winograd; at few tiles with its weights transformed ahead).
void conditioner_inference(benchmark::State& state) {
  const index_t n = state.range(0), in = 76, hidden = 512, out = 152, h = 24, w = 24;
  const bench::thread_count threads(state);  // reads range(1)
  const auto algorithm = state.range(2) == 0 ? conv_algorithm::direct : conv_algorithm::automatic;
  conv2d first({in, hidden, 3, flowad::detail::activation::leaky_relu, 0.1f, true, algorithm});
  conv2d second({hidden, out, 3, flowad::detail::activation::none, 0.0f, true, algorithm});
  flowad::parameter w1("w1", {hidden, in, 3, 3}), b1("b1", {hidden}), w2("w2", {out, hidden, 3, 3}), b2("b2", {out});
  const flowad::tensor r1 = bench::random_input({hidden, in, 3, 3}, 3, 0.05f), r2 = bench::random_input({out, hidden, 3, 3}, 4, 0.05f);
  std::copy(r1.data(), r1.data() + r1.numel(), w1.values().begin());
  std::copy(r2.data(), r2.data() + r2.numel(), w2.values().begin());
  w1.mark_updated();
  w2.mark_updated();
  const flowad::tensor src = bench::random_input({n, in, h, w}, 1);
  flowad::tensor mid({n, hidden, h, w}, flowad::layout::nhwc), dst({n, out, h, w}, flowad::layout::nhwc);
  flowad::detail::exec_context ctx;
  auto run = [&] { first.forward_into(second, src.data(), mid.data(), dst.data(), n, h, w, w1, &b1, w2, &b2, ctx); };
  run();
  for (auto _ : state) run();
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * (first.macs(n, h, w) + second.macs(n, h, w)) * 1e-9,
                                                 benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(std::string("msflow_seed conditioner, batch ") + std::to_string(n) + ", " +
                 (algorithm == conv_algorithm::direct ? "direct" : "automatic") + " [" + first.implementation(n, h, w) + "]");
}
BENCHMARK(conditioner_inference)
    ->ArgNames({"batch", "threads", "winograd"})
    ->ArgsProduct({{1, 16}, {2}, {0, 1}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
