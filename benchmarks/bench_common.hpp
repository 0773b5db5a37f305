// Shared set-up for the layer microbenchmarks.
//
// Every benchmark runs at the three standard shapes of the layer issue (304x24x24 at batch 1 and 16,
// 256x64x64 at batch 8) and at 1 and 2 threads, measures wall time (OpenMP threads make CPU time
// meaningless), and reports GFLOP/s (2 x multiply-accumulates) or, for pure data movement, GB/s.
// "cached" runs reuse primitives created before timing; "cold" drops them every iteration (and turns
// off oneDNN's own primitive cache), so the time includes descriptor and primitive creation.
// Run with --benchmark_repetitions=5 --benchmark_report_aggregates_only=true for medians.
#pragma once

#include <benchmark/benchmark.h>
#include <dnnl.h>
#include <omp.h>

#include <array>
#include <cstdlib>
#include <string>
#include <vector>

#include "flowad/detail/random.hpp"
#include "flowad/layers/flow_layer.hpp"
#include "flowad/tensor.hpp"

namespace bench {

using flowad::index_t;
using flowad::shape4;

inline constexpr std::array<shape4, 3> standard_shapes{{{1, 304, 24, 24}, {16, 304, 24, 24}, {8, 256, 64, 64}}};

// Args: {shape index, threads}.
inline void standard_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"shape", "threads"});
  for (int s = 0; s < static_cast<int>(standard_shapes.size()); ++s)
    for (int t : {1, 2}) b->Args({s, t});
  b->UseRealTime()->Unit(benchmark::kMillisecond);
}

inline shape4 shape_of(const benchmark::State& state) { return standard_shapes[static_cast<std::size_t>(state.range(0))]; }

// Sets the OpenMP thread count, argument `arg` of the benchmark, for the benchmark's duration
// (benchmarks may; the library never does).
class thread_count {
 public:
  explicit thread_count(const benchmark::State& state, int arg = 1) : previous_(omp_get_max_threads()) {
    omp_set_num_threads(static_cast<int>(state.range(arg)));
  }
  ~thread_count() { omp_set_num_threads(previous_); }
  thread_count(const thread_count&) = delete;
  thread_count& operator=(const thread_count&) = delete;

 private:
  int previous_;
};

// oneDNN keeps a process-wide primitive cache of its own: a cold benchmark disables it for its
// duration, so that clear_primitive_cache() really makes every descriptor and primitive be rebuilt.
class onednn_cache_disabled {
 public:
  explicit onednn_cache_disabled(bool active) : active_(active) {
    if (!active_) return;
    dnnl_get_primitive_cache_capacity(&previous_);
    dnnl_set_primitive_cache_capacity(0);
  }
  ~onednn_cache_disabled() {
    if (active_) dnnl_set_primitive_cache_capacity(previous_);
  }
  onednn_cache_disabled(const onednn_cache_disabled&) = delete;
  onednn_cache_disabled& operator=(const onednn_cache_disabled&) = delete;

 private:
  bool active_;
  int previous_ = 0;
};

// The folder with data/ and weights/: $FLOWAD_SHARED, else the one CMake found (../shared beside the
// source root).
inline std::string shared_folder() {
  if (const char* env = std::getenv("FLOWAD_SHARED"); env && *env) return env;
  return FLOWAD_SHARED_DEFAULT;
}

inline flowad::tensor random_input(shape4 s, std::uint64_t seed = 1, float scale = 1.0f) {
  flowad::tensor t(s, flowad::layout::nhwc);
  flowad::detail::rng r(seed);
  for (index_t i = 0; i < t.numel(); ++i) t.data()[i] = scale * static_cast<float>(r.normal());
  return t;
}

inline void label(benchmark::State& state) {
  state.SetLabel(shape_of(state).str() + " threads=" + std::to_string(state.range(1)));
}

// flops: floating-point operations of one iteration (2 per multiply-accumulate). Printed as GFLOP=x/s.
inline void report_flops(benchmark::State& state, double flops) {
  state.counters["GFLOP"] =
      benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}
// bytes: bytes read plus written by one iteration. Printed as GB=x/s.
inline void report_bytes(benchmark::State& state, double bytes) {
  state.counters["GB"] = benchmark::Counter(bytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

// Times a compute layer's forward (inference) or forward (training) + backward at the state's shape and
// thread count, cached or cold, and reports GFLOP/s of its convolutions (training: forward,
// backward-data and backward-weights, 3x the forward multiply-accumulates).
inline void run_flow_layer(benchmark::State& state, flowad::flow_layer& layer, bool with_backward, bool cold) {
  thread_count threads(state);
  const shape4 s = shape_of(state);
  const flowad::tensor x = random_input(s), diff_y = random_input(s, 2);
  flowad::tensor y(s, flowad::layout::nhwc), diff_x(s, flowad::layout::nhwc);
  std::vector<double> logdet(static_cast<std::size_t>(s.n)), diff_logdet(static_cast<std::size_t>(s.n), -1e-3);
  flowad::workspace ws;
  const flowad::pass_mode mode = with_backward ? flowad::pass_mode::training : flowad::pass_mode::inference;
  auto step = [&] {
    layer.forward(x.view(), y.view(), logdet, ws, mode);
    if (with_backward) layer.backward(x.view(), y.view(), diff_y.view(), diff_logdet, diff_x.view(), ws);
  };
  step();  // sizes buffers and creates primitives outside the timing
  const onednn_cache_disabled no_cache(cold);
  for (auto _ : state) {
    if (cold) layer.clear_primitive_cache();
    step();
    benchmark::DoNotOptimize(y.data());
  }
  label(state);
  const double macs = layer.macs_per_sample(s.h, s.w) * static_cast<double>(s.n) * (with_backward ? 3.0 : 1.0);
  report_flops(state, 2.0 * macs);
}

// Registers <prefix>_forward, _forward_cold, _forward_backward and _forward_backward_cold over the
// standard shapes, each timing run_flow_layer on the layer make(shape) builds. Returns 0, so that a
// file can register at static initialisation: `const int registered = register_flow_layer(...);`.
template <class Make>
int register_flow_layer(const std::string& prefix, Make make) {
  for (const bool with_backward : {false, true})
    for (const bool cold : {false, true}) {
      const std::string name = prefix + (with_backward ? "_forward_backward" : "_forward") + (cold ? "_cold" : "");
      benchmark::RegisterBenchmark(name.c_str(), [make, with_backward, cold](benchmark::State& state) {
        auto layer = make(shape_of(state));
        run_flow_layer(state, layer, with_backward, cold);
      })->Apply(standard_args);
    }
  return 0;
}

}  // namespace bench
