// Writes the inputs of the command line's bad-input matrix (tests/cli/bad_input_matrix.cmake):
//   flowad_test_write_bad_inputs DIR
// DIR/category            an MVTec-layout folder of 32 x 32 fabric images (4 training, 2 test)
// DIR/no-mask             the same with a defective test image's mask missing
// DIR/empty               an empty folder
// DIR/model.flowad        a tiny inspector (filter bank, 16 x 16, MS-Flow) with a threshold
// DIR/features.flowad     a tiny MS-Flow fitted on feature maps (one scale, 4 x 4 x 4)
// DIR/foreign.flowad, future.flowad, other-kind.flowad, empty.flowad   model files that are not
//                         flowad's, of format version 2, an MS-Flow file saying it is PatchCore, empty
// DIR/gray.png, gray16.png, rgba.png, 1x1.png      odd but valid images
// DIR/truncated.png, text.png, fifo.png, folder.png   images that cannot be read
// DIR/features.npy, nan.npy, huge.npy, wide.npy    feature maps: valid, with NaN, beyond ±1e12, of
//                         8 channels (another extractor's)
#include <sys/stat.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "flowad/data/fabric.hpp"
#include "flowad/data/mvtec_layout.hpp"
#include "flowad/io/image.hpp"
#include "flowad/io/model_file.hpp"
#include "flowad/io/npy.hpp"
#include "flowad/pipeline/feature_model.hpp"
#include "flowad/pipeline/inspector.hpp"
#include "support/handmade_files.hpp"
#include "support/temp_folder.hpp"

using namespace flowad;
using namespace flowad::testing;
namespace fs = std::filesystem;

namespace {

tensor smooth_maps(index_t channels, float magnitude) {
  tensor t({6, channels, 4, 4});
  for (index_t i = 0; i < t.numel(); ++i)
    t.data()[i] = magnitude * static_cast<float>(std::sin(0.37 * static_cast<double>(i)) + 0.1 * static_cast<double>(i % 5));
  return t;
}

void write_category(const fs::path& root, bool with_every_mask) {
  synthetic_options o;
  o.height = o.width = 32;
  o.train_count = 4;
  o.test_count = 2;
  write_mvtec_layout(generate_synthetic_dataset(o), root);
  if (!with_every_mask)
    for (const auto& entry : fs::recursive_directory_iterator(root / "ground_truth"))
      if (entry.is_regular_file()) {
        fs::remove(entry.path());
        break;
      }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  const fs::path dir = argv[1];
  try {
    fs::remove_all(dir);
    fs::create_directories(dir / "empty");
    write_category(dir / "category", true);
    write_category(dir / "no-mask", false);

    pipeline_config c = pipeline_config::recommended("filterbank");
    c.height = c.width = 16;
    c.levels = {"level1"};
    c.settings = {{"groups", "2"}, {"hidden", "4"}, {"blocks", "1"}, {"train.epochs", "1"}};
    inspector model(c);
    inspector_fit_options fit;
    fit.calibration = calibration_method::holdout;
    fit.holdout = 0.5;
    model.fit(image_folder(dir / "category" / "train" / "good"), fit);
    model.save(dir / "model.flowad");

    const tensor features = smooth_maps(4, 1.0f);
    feature_model_options o;
    o.settings = c.settings;
    const auto feature_model = fit_feature_model({features.cview()}, o);
    feature_model->save(dir / "features.flowad");
    write_npy((dir / "features.npy").string(), features.cview());
    tensor nan = features, huge = features;
    nan.data()[17] = std::nanf("");
    huge.data()[17] = 1e30f;
    write_npy((dir / "nan.npy").string(), nan.cview());
    write_npy((dir / "huge.npy").string(), huge.cview());
    write_npy((dir / "wide.npy").string(), smooth_maps(8, 1.0f).cview());

    const bytes png = read_bytes(dir / "category" / "train" / "good" / "000.png");
    write_bytes(dir / "foreign.flowad", png);
    write_bytes(dir / "empty.flowad", {});
    bytes future = read_bytes(dir / "features.flowad");
    future[8] = 2;  // the format version, after the 8-byte magic
    const std::uint32_t crc = crc32_of(future.data(), future.size() - 4);
    std::memcpy(future.data() + future.size() - 4, &crc, 4);
    write_bytes(dir / "future.flowad", future);
    model_file_contents other = read_model_file(dir / "features.flowad");
    other.kind = "patchcore";
    write_model_file(dir / "other-kind.flowad", other);

    byte_image gray(20, 24, 1), rgba(20, 24, 4);
    for (std::size_t i = 0; i < gray.size(); ++i) gray.data()[i] = static_cast<std::uint8_t>(i * 7);
    for (std::size_t i = 0; i < rgba.size(); ++i) rgba.data()[i] = static_cast<std::uint8_t>(i * 13);
    write_png(dir / "gray.png", gray);
    write_png(dir / "rgba.png", rgba);
    std::vector<std::uint16_t> samples(20 * 24 * 3);
    for (std::size_t i = 0; i < samples.size(); ++i) samples[i] = static_cast<std::uint16_t>(i * 977);
    write_bytes(dir / "gray16.png", png_file(20, 24, png_rgb, 16, samples));
    write_bytes(dir / "1x1.png", png_file(1, 1, png_rgb, 8, {200, 30, 90}));
    write_bytes(dir / "truncated.png", bytes(png.begin(), png.begin() + static_cast<std::ptrdiff_t>(png.size() / 2)));
    write_bytes(dir / "text.png", {'h', 'e', 'l', 'l', 'o', '\n'});
    if (::mkfifo((dir / "fifo.png").c_str(), 0600) != 0) throw std::runtime_error("mkfifo failed");
    fs::create_directories(dir / "folder.png");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "flowad_test_write_bad_inputs: %s\n", e.what());
    return 1;
  }
  return 0;
}
