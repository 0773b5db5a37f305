// flowad info: what a model configuration or a saved model costs, and what it runs on.
#include <cstdio>

#include "cli/commands.hpp"
#include "cli/model_options.hpp"
#include "flowad/detail/backend.hpp"
#include "flowad/io/model_file.hpp"
#include "flowad/version.hpp"

namespace flowad {
namespace cli {

namespace {
void print_config(const msflow_config& cfg, const std::string& origin) {
  const model_stats s = count(cfg);
  std::printf("model       msflow (%s)\n", origin.c_str());
  std::printf("scales      %s\n", codec::encode(cfg.scales).c_str());
  std::printf("flow        %lld blocks, %lld groups, kernels %s, hidden %lld, clamp %s alpha %g, mixing %s\n",
              static_cast<long long>(cfg.blocks), static_cast<long long>(cfg.groups), codec::encode(cfg.kernels).c_str(),
              static_cast<long long>(cfg.hidden), to_string(cfg.clamp.kind), static_cast<double>(cfg.clamp.alpha),
              cfg.mixing == block_mixing::permute ? "permute" : "invertible_1x1");
  std::printf("positions   %s\n", cfg.positions.empty() ? "free" : to_string(cfg.positions).c_str());
  std::printf("parameters  %.2f M (%.0f)\n", s.parameters * 1e-6, s.parameters);
  std::printf("compute     %.2f GMAC per image (forward pass of the flow)\n", s.macs_per_image * 1e-9);
}
}  // namespace

int run_info(int argc, char** argv, int first) {
  const args a(argc, argv, first, {"help", "fixed-gain"});
  if (a.flag("help")) {
    std::printf("usage: flowad info [--model FILE | model options]\n\n"
                "Prints the parameters and multiply-accumulates of a configuration or a saved model.\n\n%s",
                model_options_help());
    return 0;
  }
  std::printf("flowad      %s (%s)\n", version().string, detail::backend_description().c_str());
  if (a.has("model")) {
    const std::string path = a.get("model");
    a.reject_unknown();
    const auto model = msflow::load(path);
    const model_file_contents contents = read_model_file(path);
    print_config(model->config(), path + ", written by flowad " + contents.library_version);
    return 0;
  }
  const msflow_config cfg = config_from(a, "seed");
  a.reject_unknown();
  print_config(cfg, a.has("preset") || a.has("scales") || a.has("groups") || a.has("hidden") || a.has("blocks") ||
                            a.has("kernels")
                        ? "custom"
                        : "preset seed");
  return 0;
}

}  // namespace cli
}  // namespace flowad
