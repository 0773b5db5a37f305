// Whole-flow benchmark: scoring at batch 1 and 16 and a training step (forward, backward, Adam) at
// batch 16, for the MS-Flow paper preset and a FastFlow-like flow, with this machine's FP32 peak
// measured in the same run. benchmarks/peer/compare.sh runs it next to the PyTorch peer.
//
//   bench_flow [--json] [--threads N] [--repeats R] [--configs a,b] [--cases score_b1,score_b16,train_b16]
//
// Cases: score_b<N> and train_b<N> for any batch N; the three above by default.
//
// Configs: msflow_seed and fastflow_256 (the default); only when named, fastflow_256_layers (fastflow_256
// without all_in_one_block's fusion) and compact_128x32 and compact_256x16 (the recommended MS-Flow's flows
// on ResNet18's layer2 and layer3, the fit behind docs/results.md).
#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "flowad/detail/random.hpp"
#include "flowad/flowad.hpp"
#include "flowad/layers/actnorm.hpp"
#include "flowad/scoring/latent.hpp"
#include "flowad/train/nll.hpp"
#include "bench_program.hpp"
#include "machine_peak.hpp"

namespace {

// ---- the flows ---------------------------------------------------------------------------------

struct flow_case {
  std::string name;
  flowad::shape4 sample;  // N = 1
  std::unique_ptr<flowad::sequential_flow> flow;
  bool diagnostic = false;  // run only when named in --configs
};

flow_case msflow_seed() {
  const flowad::msflow_config cfg = flowad::msflow_config::paper();
  flow_case c{"msflow_seed", {1, 304, 24, 24}, flowad::make_msflow_flow(cfg, 0)};
  return c;
}

// FastFlow with FrEIA's AllInOneBlock: coupling (0.1 · subnet, tanh clamp 2, ReLU, hidden = in channels / 2,
// kernels 3 and 1 alternating), global affine (softplus), hard permutation.
flowad::all_in_one_config fastflow_block(flowad::index_t channels, int b) {
  flowad::all_in_one_config block;
  flowad::affine_coupling_config& cc = block.coupling;
  cc.channels = channels;
  cc.groups = 2;
  cc.hidden = channels / 2;
  cc.kernel = b % 2 == 0 ? 3 : 1;
  cc.activation = flowad::subnet_activation::relu;
  cc.clamp = {flowad::clamp_kind::tanh, 2.0f};
  cc.learn_gain = false;
  cc.gain_init = 0.1f;
  cc.seed = static_cast<std::uint64_t>(b);
  block.permutation_seed = static_cast<std::uint64_t>(100 + b);
  return block;
}

flow_case fastflow_256() {
  const flowad::index_t channels = 256;
  flow_case c{"fastflow_256", {1, channels, 64, 64}, std::make_unique<flowad::sequential_flow>(channels)};
  for (int b = 0; b < 8; ++b) c.flow->emplace<flowad::all_in_one_block>(fastflow_block(channels, b));
  return c;
}

// The same flow with each block as its three layers in turn (no fusion): what all_in_one_block saves.
flow_case fastflow_256_layers() {
  const flowad::index_t channels = 256;
  flow_case c{"fastflow_256_layers", {1, channels, 64, 64}, std::make_unique<flowad::sequential_flow>(channels), true};
  for (int b = 0; b < 8; ++b) {
    const flowad::all_in_one_config block = fastflow_block(channels, b);
    c.flow->emplace<flowad::affine_coupling>(block.coupling);
    c.flow->emplace<flowad::global_affine>(channels, block.scale_activation, block.initial_scale);
    c.flow->emplace<flowad::permute>(channels, block.permutation_seed);
  }
  return c;
}

// The recommended MS-Flow's flows at the settings of docs/lab/msflow-bottle.md (ResNet18 layer2 and layer3), one per
// scale: what a step of `flowad eval`'s fit costs. Diagnostic, run only when named in --configs.
flow_case compact_scale(std::size_t scale) {
  const flowad::msflow_config cfg = flowad::msflow_config::recommended({{128, 32, 32}, {256, 16, 16}});
  const flowad::scale_shape& s = cfg.scales[scale];
  return {"compact_" + std::to_string(s.channels) + "x" + std::to_string(s.height), {1, s.channels, s.height, s.width},
          flowad::make_msflow_flow(cfg, scale), true};
}
flow_case compact_128x32() { return compact_scale(0); }
flow_case compact_256x16() { return compact_scale(1); }

flowad::tensor random_batch(flowad::shape4 s, std::uint64_t seed) {
  flowad::tensor t(s, flowad::layout::nhwc);
  flowad::detail::rng r(seed);
  for (flowad::index_t i = 0; i < t.numel(); ++i) t.data()[i] = static_cast<float>(r.normal());
  return t;
}

bool wanted(const std::vector<std::string>& filter, const std::string& name) {
  return filter.empty() || std::find(filter.begin(), filter.end(), name) != filter.end();
}

// A case: score_b<N> (the flow, the map and the image scores of N images) or train_b<N> (a training step
// at batch N).
struct bench_case {
  std::string name;
  flowad::index_t batch = 0;
  bool train = false;
};

bench_case parse_case(const std::string& name) {
  bench_case c{name};
  const std::size_t b = name.find("_b");
  const std::string kind = name.substr(0, b);
  if (b != std::string::npos && (kind == "score" || kind == "train") && b + 2 < name.size() &&
      name.find_first_not_of("0123456789", b + 2) == std::string::npos) {
    c.batch = std::stol(name.substr(b + 2));
    c.train = kind == "train";
  }
  if (c.batch <= 0) {
    std::fprintf(stderr, "bench_flow: unknown case '%s' (score_b<N> or train_b<N>, N > 0)\n", name.c_str());
    std::exit(2);
  }
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  bench::run_options run;
  run.threads = omp_get_max_threads();
  std::vector<std::string> case_names;
  CLI::App app("The benchmark flows against PyTorch and ONNX Runtime (see the head of bench_flow.cpp)", "bench_flow");
  bench::add_run_options(app, run, "msflow_seed, fastflow_256");
  app.add_option("--cases", case_names, "score_b<N>, train_b<N>")->delimiter(',');
  CLI11_PARSE(app, argc, argv);
  const bool json = run.json;
  const int threads = run.threads, repeats = run.repeats;
  const std::vector<std::string>& configs = run.configs;
  std::vector<bench_case> cases;
  for (const std::string& name : case_names) cases.push_back(parse_case(name));
  if (cases.empty())
    for (const char* name : {"score_b1", "score_b16", "train_b16"}) cases.push_back(parse_case(name));
  omp_set_num_threads(threads);

  const double fma = bench::fma_peak(threads), sgemm = bench::sgemm_peak();
  const double peak = std::max(fma, sgemm);
  if (json) {
    std::printf("{\"side\": \"flowad\", \"case\": \"peak\", \"gflops\": %.1f, \"fma_gflops\": %.1f, \"sgemm_gflops\": %.1f, "
                "\"threads\": %d}\n", peak, fma, sgemm, threads);
  } else {
    std::printf("flowad %s, %s\n", flowad::version().string, flowad::detail::backend_description().c_str());
    std::printf("FP32 peak on %d threads: FMA loop %.1f GFLOP/s, dnnl_sgemm 2048^3 %.1f GFLOP/s -> peak %.1f\n\n", threads,
                fma, sgemm, peak);
    std::printf("%-14s %-10s %10s %10s %10s %10s %9s %8s\n", "config", "case", "ms/batch", "min", "max", "images/s",
                "GFLOP/s", "% peak");
  }
  std::fflush(stdout);

  std::vector<flow_case (*)()> makers{msflow_seed, fastflow_256, fastflow_256_layers, compact_128x32, compact_256x16};
  for (auto make : makers) {
    flow_case fc = make();
    if (!wanted(configs, fc.name) || (configs.empty() && fc.diagnostic)) continue;
    flowad::sequential_flow& flow = *fc.flow;
    // Initialise actnorm layers as fit() would, from a batch of the input distribution.
    for (std::size_t i = 0; i < flow.size(); ++i)
      if (auto* norm = dynamic_cast<flowad::actnorm*>(&flow.layer(i))) {
        flowad::shape4 s = fc.sample;
        s.n = 16;
        norm->initialize(random_batch(s, 99).view());
      }
    const double macs = flow.macs_per_sample(fc.sample.h, fc.sample.w);

    for (const bench_case& bc : cases) {
      flowad::shape4 s = fc.sample;
      s.n = bc.batch;
      const flowad::tensor x = random_batch(s, 7);
      flowad::workspace ws;
      std::function<void()> step;
      // Scoring: the flow, the latent map and the top-3% image score.
      flowad::tensor z(s, flowad::layout::nhwc), map({s.n, 1, s.h, s.w});
      std::vector<double> logdet(static_cast<std::size_t>(s.n)), image(static_cast<std::size_t>(s.n));
      std::vector<float> top_k_scratch;
      // Training: forward, loss, backward, gradient clipping, Adam.
      std::unique_ptr<flowad::nll_objective> objective;
      std::unique_ptr<flowad::adam> optimizer;
      std::vector<flowad::parameter*> params = flow.parameters();
      const std::vector<flowad::const_view> batch{x.cview()};
      if (!bc.train) {
        step = [&] {
          std::fill(logdet.begin(), logdet.end(), 0.0);
          flow.forward(x.view(), z.view(), logdet, ws);
          flowad::latent_map(z.view(), map.view());
          flowad::image_scores(map.view(), flowad::score_aggregation::top_k_mean,
                               flowad::span<double>(image.data(), image.size()), 0.03, top_k_scratch);
        };
      } else {
        objective = std::make_unique<flowad::nll_objective>(std::vector<flowad::flow_layer*>{&flow});
        optimizer = std::make_unique<flowad::adam>(params, flowad::adam_options{});
        step = [&] {
          objective->forward_backward(batch, ws);
          flowad::clip_gradient_norm(params, 1.0);
          optimizer->step(2e-4f);
          for (flowad::parameter* p : params) p->zero_grad();
        };
      }
      const bench::timing t = bench::time_it(step, 2, repeats);
      const double flops = 2.0 * macs * static_cast<double>(s.n) * (bc.train ? 3.0 : 1.0);
      const double gflops = flops / (t.median_ms * 1e-3) * 1e-9;
      const double images = static_cast<double>(s.n) / (t.median_ms * 1e-3);
      if (json) {
        std::printf("{\"side\": \"flowad\", \"variant\": \"flowad\", \"config\": \"%s\", \"case\": \"%s\", \"ms_median\": %.3f, "
                    "\"ms_min\": %.3f, \"ms_max\": %.3f, \"images_per_s\": %.2f, \"flops_per_batch\": %.6e, "
                    "\"gflops\": %.1f, \"peak_pct\": %.1f, \"peak_rss_mb\": %.1f, \"threads\": %d, \"repeats\": %d}\n",
                    fc.name.c_str(), bc.name.c_str(), t.median_ms, t.min_ms, t.max_ms, images, flops, gflops,
                    100.0 * gflops / peak, bench::peak_rss_mb(), threads, repeats);
      } else {
        std::printf("%-14s %-10s %10.2f %10.2f %10.2f %10.1f %9.1f %7.1f%%\n", fc.name.c_str(), bc.name.c_str(), t.median_ms,
                    t.min_ms, t.max_ms, images, gflops, 100.0 * gflops / peak);
      }
      std::fflush(stdout);
    }
  }
  if (!json) std::printf("\npeak RSS %.0f MB\n", bench::peak_rss_mb());
  return 0;
}
