// Generated fabric images for pipeline tests: in memory, or written as PNG files.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "flowad/data/fabric.hpp"
#include "flowad/io/image.hpp"
#include "support/temp_folder.hpp"

namespace flowad {
namespace testing {

// Fabric images of height x width: `train` defect-free ones, then `test` test images, half with defects.
inline synthetic_dataset fabric(index_t height, index_t width, index_t train, index_t test, std::uint64_t seed) {
  synthetic_options o;
  o.height = height;
  o.width = width;
  o.train_count = train;
  o.test_count = test;
  o.seed = seed;
  return generate_synthetic_dataset(o);
}

// Ten defect-free 64x64 images written as PNG files in `dir`.
inline std::vector<std::filesystem::path> write_good_images(const temp_folder& dir, std::uint64_t seed) {
  const synthetic_dataset data = fabric(64, 64, 10, 1, seed);
  std::vector<std::filesystem::path> paths;
  for (std::size_t i = 0; i < data.train.size(); ++i) {
    paths.push_back(dir / ("good_" + std::to_string(i) + ".png"));
    write_png(paths.back(), data.train[i]);
  }
  return paths;
}

}  // namespace testing
}  // namespace flowad
