// The tiniest configuration of every detector kind that still fits, on feature maps of 1-8 channels:
// model files of a few kilobytes and fits of a fraction of a second, for tests and fuzz seeds that
// need one model of each kind.
#pragma once

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "flowad/detector.hpp"
#include "flowad/pipeline/feature_model.hpp"
#include "flowad/pipeline/features.hpp"

namespace flowad {
namespace testing {

struct tiny_detector {
  std::string name;  // the kind, with what sets it apart when a kind appears twice
  std::string kind;
  std::vector<scale_shape> scales;
  detector_config settings;  // changes to recommended_config(kind, scales)
};

inline std::vector<tiny_detector> tiny_detectors() {
  const std::vector<scale_shape> pyramid = {{4, 8, 8}, {4, 4, 4}, {4, 2, 2}};
  const std::vector<scale_shape> teacher = {{1, 4, 4}, {2, 2, 2}, {4, 1, 1}};
  std::vector<scale_shape> image_and_teacher = {{3, 16, 16}};
  image_and_teacher.insert(image_and_teacher.end(), teacher.begin(), teacher.end());
  const auto one_epoch = [](detector_config c) {
    c.set("train.epochs", "1");
    c.set("train.batch_size", "4");
    return c;
  };
  return {
      {"msflow", "msflow", {{4, 4, 4}, {4, 2, 2}}, one_epoch({{"groups", "2"}, {"hidden", "4"}, {"blocks", "1"}})},
      {"msflow-1x1", "msflow", {{4, 4, 4}},
       one_epoch({{"groups", "2"}, {"hidden", "4"}, {"blocks", "2"}, {"mixing", "invertible_1x1"}})},
      {"fastflow", "fastflow", {{4, 4, 4}}, one_epoch({{"blocks", "1"}})},
      {"csflow", "csflow", pyramid, one_epoch({{"blocks", "1"}, {"hidden", "4"}, {"kernels", "3"}})},
      {"cflow", "cflow", {{4, 4, 4}}, one_epoch({{"blocks", "1"}, {"condition_channels", "4"}})},
      {"differnet", "differnet", {{4, 4, 4}},
       one_epoch({{"blocks", "1"}, {"hidden", "4"}, {"hidden_layers", "1"}, {"rotations.train", "1"}, {"rotations.test", "2"}})},
      {"patchcore", "patchcore", {{4, 4, 4}}, {{"projection_dimension", "4"}, {"coreset_fraction", "0.25"}}},
      {"stfpm", "stfpm", image_and_teacher, one_epoch({})},
      {"rd", "rd", teacher, one_epoch({})},
      {"fcl", "fcl", teacher, one_epoch({})},
      {"fcl-stfpm", "fcl", image_and_teacher, one_epoch({{"host", "stfpm"}})},
  };
}

// n samples of the detector's scales: smooth fields times `magnitude`, each sample a little different.
inline std::vector<tensor> tiny_features(const tiny_detector& d, index_t n, double magnitude = 1.0) {
  std::vector<tensor> scales;
  for (std::size_t s = 0; s < d.scales.size(); ++s) {
    const scale_shape& shape = d.scales[s];
    tensor t({n, shape.channels, shape.height, shape.width});
    for (index_t i = 0; i < n; ++i)
      for (index_t c = 0; c < shape.channels; ++c)
        for (index_t y = 0; y < shape.height; ++y)
          for (index_t x = 0; x < shape.width; ++x)
            t(i, c, y, x) = static_cast<float>(magnitude * 0.5 *
                                               (std::sin(0.3 * static_cast<double>(s) + 0.7 * c + 0.5 * y - 0.3 * x + 0.9 * i) +
                                                0.1 * static_cast<double>(i % 5)));
    scales.push_back(std::move(t));
  }
  return scales;
}

inline std::unique_ptr<detector> fit_tiny_detector(const tiny_detector& d) {
  feature_model_options options;
  options.detector = d.kind;
  options.settings = d.settings;
  return fit_feature_model(views_of(tiny_features(d, 4)), options);
}

}  // namespace testing
}  // namespace flowad
