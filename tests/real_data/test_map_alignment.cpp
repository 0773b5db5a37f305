// The ImageNet backbones' maps sit on the image on PyTorch's grid (feature_level::center_offset 0):
// a small spot's response, upsampled with align_corners=False, is centred within 3.5 px (under a
// quarter of a stride-16 cell) of the spot. Measured on bottle's first training image: at most
// (2.2, 1.5) px for ResNet18 and (2.9, 2.1) px for MobileNetV2, down and right, at their stride-16
// levels. So their trained filters centre cell m roughly (stride - 1)/2 - 2 px above and left of the
// receptive field's geometric centre (pixel stride·m), where the filter bank's symmetric filters put it
// exactly; the filter bank's offset -(stride - 1)/2 would put these maps 5 px or more off.
#include <catch2/catch.hpp>

#include <cmath>
#include <memory>
#include <string>

#include "flowad/io/dataset.hpp"
#include "flowad/io/image_resize.hpp"
#include "flowad/pipeline/features.hpp"
#include "support/shared_data.hpp"
#include "support/spot_response.hpp"

using namespace flowad;

TEST_CASE("resnet18 and mobilenet_v2 responses land on the spot on PyTorch's grid", "[real-data]") {
  const mvtec_category bottle = read_mvtec_category(testing::shared_path("data/mvtec_bottle"));
  REQUIRE(!bottle.train.empty());
  const float_image background = resize_bilinear(to_float(read_image(bottle.train.front())), 256, 256);
  const std::pair<std::string, std::string> backbones[] = {
      {"resnet18", testing::shared_path("weights/resnet18").string()},
      {"mobilenet_v2", testing::shared_path("weights/mobilenet_v2/mobilenet_v2_dequant_bnfolded.npz").string()}};
  for (const auto& [name, weights] : backbones) {
    const std::unique_ptr<extractor> ex = make_extractor(name, weights);
    feature_options options;
    options.levels = ex->level_names();  // every level, finest first
    const std::vector<double> offsets = map_cell_offsets(*ex, options);
    const auto displaced = testing::spot_response_displacements(*ex, background, offsets);
    for (std::size_t l = 0; l < displaced.size(); ++l) {
      INFO(name << " " << ex->levels()[l].name << ": displacement (" << displaced[l].y << ", " << displaced[l].x << ") px");
      CHECK(offsets[l] == 0.0);
      CHECK(std::abs(displaced[l].y) < 3.5);
      CHECK(std::abs(displaced[l].x) < 3.5);
    }
  }
}
