// Writes two scales of random feature maps as .npy files, for the CLI's --features tests:
//   flowad_test_write_features DIR COUNT SEED  ->  DIR/scale0.npy (COUNT x 8 x 8 x 8), DIR/scale1.npy (COUNT x 16 x 4 x 4)
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "flowad/detail/random.hpp"
#include "flowad/io/npy.hpp"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s DIR COUNT SEED\n", argv[0]);
    return 2;
  }
  const std::filesystem::path dir = argv[1];
  const flowad::index_t count = std::atol(argv[2]);
  flowad::detail::rng r(std::strtoull(argv[3], nullptr, 10));
  std::filesystem::create_directories(dir);
  const flowad::shape4 shapes[] = {{count, 8, 8, 8}, {count, 16, 4, 4}};
  for (int s = 0; s < 2; ++s) {
    flowad::tensor t(shapes[s]);
    for (flowad::index_t i = 0; i < t.numel(); ++i) t.data()[i] = static_cast<float>(r.normal());
    flowad::write_npy((dir / ("scale" + std::to_string(s) + ".npy")).string(), t.view());
  }
  return 0;
}
