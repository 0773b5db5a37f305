// flowad: fit, score and evaluate anomaly detectors from the command line.
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "cli/commands.hpp"
#include "flowad/error.hpp"

namespace {

struct command {
  const char* name;
  const char* summary;
  int (*run)(int, char**, int);
};

const command commands[] = {
    {"demo", "the whole pipeline on generated data: fit, evaluate, write heatmaps", flowad::cli::run_demo},
    {"fit", "fit a detector on defect-free images or feature maps; save it", flowad::cli::run_fit},
    {"score", "score images with a saved model: scores, verdicts, anomaly maps, heatmaps", flowad::cli::run_score},
    {"eval", "fit on a category (MVTec AD layout) and measure AUROC, pixel AUROC and AUPRO", flowad::cli::run_eval},
    {"validate", "choose settings without defects: held-out good images with synthetic defects", flowad::cli::run_validate},
    {"info", "parameters and compute of a model configuration or a saved model", flowad::cli::run_info},
};

void usage(std::FILE* out) {
  std::fprintf(out, "usage: flowad <command> [options]   (flowad <command> --help for its options)\n\ncommands:\n");
  for (const command& c : commands) std::fprintf(out, "  %-8s %s\n", c.name, c.summary);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "help") == 0) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  for (const command& c : commands) {
    if (std::strcmp(argv[1], c.name) != 0) continue;
    try {
      return c.run(argc, argv, 2);
    } catch (const flowad::error& e) {
      std::fprintf(stderr, "flowad %s: %s\n", c.name, e.what());
      return 1;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "flowad %s: unexpected error: %s\n", c.name, e.what());
      return 1;
    }
  }
  std::fprintf(stderr, "flowad: unknown command '%s'\n\n", argv[1]);
  usage(stderr);
  return 2;
}
