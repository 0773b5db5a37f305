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

const int registered = bench::register_flow_layer("coupling", make_layer);

}  // namespace

BENCHMARK_MAIN();
