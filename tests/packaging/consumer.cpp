// A program that uses flowad the way an application does: the umbrella header and flowad::flowad.
#include <cstdio>

#include <flowad/flowad.hpp>

int main() {
  const flowad::model_stats s = flowad::count(flowad::msflow_config::paper());
  flowad::msflow_config cfg;
  cfg.scales = {{8, 4, 4}};
  cfg.groups = 2;
  cfg.hidden = 8;
  cfg.blocks = 2;
  cfg.training.epochs = 1;
  flowad::msflow model(cfg);
  flowad::tensor train({16, 8, 4, 4});
  for (flowad::index_t i = 0; i < train.numel(); ++i) train.data()[i] = static_cast<float>(i % 7) * 0.1f;
  model.fit({train});
  const flowad::scores scores = model.score({train});
  // The library and the headers must come from the same install.
  const flowad::version_info library = flowad::version();
  constexpr flowad::version_info headers = flowad::header_version();
  std::printf("flowad %s (headers %s): paper preset %.2f M parameters; scored %zu samples\n", library.string,
              headers.string, s.parameters * 1e-6, scores.image.size());
  if (library != headers) {
    std::printf("library version %s differs from the headers' %s\n", library.string, headers.string);
    return 1;
  }
  return scores.image.size() == 16 ? 0 : 1;
}
