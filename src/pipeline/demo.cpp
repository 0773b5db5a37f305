#include "flowad/pipeline/demo.hpp"

namespace flowad {
inline namespace v0 {

pipeline_config demo_pipeline_config() {
  pipeline_config c = pipeline_config::recommended("filterbank");
  c.levels = {"level2", "level3"};
  c.settings = {{"hidden", "128"}, {"blocks", "4"}, {"train.epochs", "20"}};
  return c;
}

}  // namespace v0
}  // namespace flowad
