// Channel split / merge: pure data movement, reported in GB/s (bytes read + written). Splitting into views
// costs nothing; these time the copying forms.
#include <array>
#include <vector>

#include "bench_common.hpp"
#include "flowad/layers/split_merge.hpp"

namespace {

using flowad::index_t;
using flowad::layout;

// Split into 4 groups (MS-Flow's parallel coupling groups) and, with backward, merge the gradients back.
template <bool with_backward>
void split_groups(benchmark::State& state) {
  bench::thread_count threads(state);
  const flowad::shape4 s = bench::shape_of(state);
  const flowad::channel_split split(s.c, 4);
  const flowad::tensor x = bench::random_input(s);
  std::array<flowad::tensor, 4> parts;
  std::array<flowad::view, 4> part_views;
  std::array<flowad::const_view, 4> part_grads;
  for (index_t g = 0; g < 4; ++g) {
    auto& t = parts[static_cast<std::size_t>(g)];
    t.resize(split.group_shape(s, g), layout::nhwc);
    t.fill(0.5f);
    part_views[static_cast<std::size_t>(g)] = t.view();
    part_grads[static_cast<std::size_t>(g)] = t.cview();
  }
  flowad::tensor diff_x(s, layout::nhwc);
  std::vector<double> logdet(static_cast<std::size_t>(s.n));
  split.forward(x.view(), part_views, logdet);
  if (with_backward) split.backward(part_grads, diff_x.view());
  for (auto _ : state) {
    split.forward(x.view(), part_views, logdet);
    if (with_backward) split.backward(part_grads, diff_x.view());
    benchmark::DoNotOptimize(parts[0].data());
  }
  bench::label(state);
  bench::report_bytes(state, (with_backward ? 4.0 : 2.0) * static_cast<double>(x.bytes()));
}

}  // namespace

// No primitives to create, so cold and cached coincide; only cached is reported.
BENCHMARK_TEMPLATE(split_groups, false)->Name("split_forward")->Apply(bench::standard_args);
BENCHMARK_TEMPLATE(split_groups, true)->Name("split_forward_backward")->Apply(bench::standard_args);
BENCHMARK_MAIN();
