// all_in_one_block: FastFlow's step (coupling with hidden C/2 and a 3x3 subnet, tanh clamp 2, gain 0.1;
// global affine; permutation), whose forward and backward each make one pass over the block's output.
#include "bench_common.hpp"
#include "flowad/layers/all_in_one_block.hpp"

namespace {

flowad::all_in_one_block make_block(const flowad::shape4& s) {
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
  return flowad::all_in_one_block(cfg);
}

const int registered = bench::register_flow_layer("all_in_one", make_block);

}  // namespace

BENCHMARK_MAIN();
