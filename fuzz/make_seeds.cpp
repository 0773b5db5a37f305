// Writes the seed corpus of the fuzz targets with the library itself (and, for what flowad never
// writes, by hand from the formats' specifications): small valid inputs that reach deep into each
// parser, so that fuzzing starts from files that load rather than from noise.
//   flowad_fuzz_seeds fuzz/corpus
// writes corpus/<target>/seed-*; inputs the fuzzer found (crashes fixed since, coverage) are kept
// beside them under other names. Models use each detector's tiniest configuration
// (tests/support/tiny_detectors.hpp): a few kilobytes.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "flowad/data/fabric.hpp"
#include "flowad/detector.hpp"
#include "flowad/io/image.hpp"
#include "flowad/io/model_file.hpp"
#include "flowad/io/npy.hpp"
#include "flowad/pipeline/inspector.hpp"
#include "support/handmade_files.hpp"
#include "support/tiny_detectors.hpp"

#include <stb/stb_image_write.h>

namespace {

using namespace flowad;
using namespace flowad::testing;
namespace fs = std::filesystem;

void write_seed(const fs::path& path, const bytes& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(content.data()), static_cast<std::streamsize>(content.size()));
  if (!out) throw std::runtime_error("cannot write " + path.string());
  std::printf("%8zu bytes  %s\n", content.size(), path.c_str());
}

void model_file_seeds(const fs::path& dir) {
  for (const tiny_detector& d : tiny_detectors())
    write_seed(dir / ("seed-" + d.name), encode_model(fit_tiny_detector(d)->to_model_file()));

  // Inspectors on the filter bank's first level, 16 x 16 images: the image-pipeline record, a
  // threshold, a selection-free detector of each family (a flow, the memory bank, rotated copies).
  synthetic_options o;
  o.height = o.width = 32;
  o.train_count = 4;
  o.test_count = 1;
  const synthetic_dataset images = generate_synthetic_dataset(o);
  const std::map<std::string, detector_config> kinds = {
      {"msflow", {{"groups", "2"}, {"hidden", "4"}, {"blocks", "1"}, {"train.epochs", "1"}}},
      {"patchcore", {{"projection_dimension", "4"}}},
      {"differnet", {{"blocks", "1"}, {"hidden", "4"}, {"hidden_layers", "1"}, {"rotations.train", "1"},
                     {"rotations.test", "2"}, {"train.epochs", "1"}}},
  };
  for (const auto& [kind, settings] : kinds) {
    pipeline_config c = pipeline_config::recommended("filterbank");
    c.height = c.width = 16;
    c.levels = {"level1"};
    c.detector = kind;
    c.settings = settings;
    inspector model(c);
    inspector_fit_options fit;
    fit.calibration = calibration_method::holdout;
    fit.holdout = 0.5;
    model.fit(images.train, fit);
    const fs::path path = dir / ("seed-inspector-" + kind);
    model.save(path);
    std::printf("%8zu bytes  %s\n", static_cast<std::size_t>(fs::file_size(path)), path.c_str());
  }
}

void npy_seeds(const fs::path& dir) {
  const std::string f4 = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
  const bytes six_floats = float_payload({-1.5f, 0.0f, 0.25f, 1.0f, 3.0f, 1e-3f});
  write_seed(dir / "seed-f4", npy_file(f4, six_floats));
  write_seed(dir / "seed-f4-version2", npy_file(f4, six_floats, 2));
  write_seed(dir / "seed-f4-version3", npy_file(f4, six_floats, 3));
  bytes doubles, big_floats, halves, bytes_u1, shorts, big_longs, bools;
  append_values(doubles, std::vector<double>{-2.0, 0.5, 1e10});
  append_values(big_floats, std::vector<float>{1.0f, -2.0f}, true);
  append_values(halves, std::vector<std::uint16_t>{0x3C00, 0xC000, 0x7BFF, 0x0001});
  bytes_u1 = {0, 17, 255, 128};
  append_values(shorts, std::vector<std::int16_t>{-300, 5, 32767});
  append_values(big_longs, std::vector<std::int64_t>{-7, 1ll << 40}, true);
  bools = {1, 0, 1};
  write_seed(dir / "seed-f8", npy_file("{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }", doubles));
  write_seed(dir / "seed-big-endian-f4", npy_file("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", big_floats));
  write_seed(dir / "seed-f2", npy_file("{'descr': '<f2', 'fortran_order': False, 'shape': (2, 2), }", halves));
  write_seed(dir / "seed-u1", npy_file("{'descr': '|u1', 'fortran_order': False, 'shape': (4,), }", bytes_u1));
  write_seed(dir / "seed-i2", npy_file("{'descr': '<i2', 'fortran_order': False, 'shape': (3,), }", shorts));
  write_seed(dir / "seed-big-endian-i8", npy_file("{'descr': '>i8', 'fortran_order': False, 'shape': (2, 1), }", big_longs));
  write_seed(dir / "seed-b1", npy_file("{'shape': (3,), 'fortran_order': False, 'descr': '|b1'}", bools));
  write_seed(dir / "seed-scalar", npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (), }", float_payload({2.5f})));
  write_seed(dir / "seed-empty", npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (0, 3), }", {}));
  std::vector<float> maps(2 * 2 * 3 * 3);
  for (std::size_t i = 0; i < maps.size(); ++i) maps[i] = static_cast<float>(i) * 0.125f;
  write_seed(dir / "seed-feature-maps",
             npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2, 3, 3), }", float_payload(maps)));
}

void npz_seeds(const fs::path& dir) {
  const bytes a = npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
                           float_payload({1.0f, 2.0f, 3.0f, 4.0f, 5.0f, 6.0f}));
  bytes longs;
  append_values(longs, std::vector<std::int64_t>{-3, -2, -1, 0, 1, 2});
  const bytes b = npy_file("{'descr': '<i8', 'fortran_order': False, 'shape': (3, 2), }", longs);
  const bytes scalar = npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (), }", float_payload({0.5f}));
  write_seed(dir / "seed-stored", zip_file({{"a.npy", a}, {"b.npy", b}}));
  write_seed(dir / "seed-compressed", zip_file({{"a.npy", a, deflate_method}, {"b.npy", b, deflate_method}}));
  write_seed(dir / "seed-mixed-zip64",
             zip_file({{"a.npy", a, stored}, {"b.npy", b, deflate_method, true}, {"scalar.npy", scalar, deflate_method}}));
  // flowad's own writer.
  const fs::path written = dir / "seed-written-by-flowad";
  npy_array w;
  w.shape = {1, 2, 2, 2};
  w.data = {0.f, 1.f, 2.f, 3.f, 4.f, 5.f, 6.f, 7.f};
  write_npz(written.string(), {{"features", w}, {"bias", {{2}, {0.5f, -0.5f}}}});
  std::printf("%8zu bytes  %s\n", static_cast<std::size_t>(fs::file_size(written)), written.c_str());
}

void stb_write(void* context, void* data, int size) {
  auto* out = static_cast<bytes*>(context);
  out->insert(out->end(), static_cast<unsigned char*>(data), static_cast<unsigned char*>(data) + size);
}

void image_seeds(const fs::path& dir) {
  byte_image rgb(6, 5, 3);
  for (std::size_t i = 0; i < rgb.size(); ++i) rgb.data()[i] = static_cast<std::uint8_t>(i * 23 % 256);
  byte_image rgba(4, 4, 4), gray(5, 3, 1);
  for (std::size_t i = 0; i < rgba.size(); ++i) rgba.data()[i] = static_cast<std::uint8_t>(i * 41 % 256);
  for (std::size_t i = 0; i < gray.size(); ++i) gray.data()[i] = static_cast<std::uint8_t>(i * 17);
  for (const auto& [name, image] : std::map<std::string, const byte_image*>{{"rgb", &rgb}, {"rgba", &rgba}, {"gray", &gray}}) {
    const fs::path path = dir / ("seed-" + name + ".png");
    write_png(path, *image);
    std::printf("%8zu bytes  %s\n", static_cast<std::size_t>(fs::file_size(path)), path.c_str());
  }
  std::vector<std::uint16_t> samples(3 * 4 * 3);
  for (std::size_t i = 0; i < samples.size(); ++i) samples[i] = static_cast<std::uint16_t>(i * 1999);
  write_seed(dir / "seed-rgb16.png", png_file(3, 4, png_rgb, 16, samples));
  write_seed(dir / "seed-gray-alpha.png", png_file(2, 2, png_gray_alpha, 8, {0, 255, 100, 50, 200, 0, 255, 255}));
  write_seed(dir / "seed-1x1.png", png_file(1, 1, png_gray, 8, {128}));
  bytes jpeg, bmp;
  if (!stbi_write_jpg_to_func(stb_write, &jpeg, 5, 6, 3, rgb.data(), 80) ||
      !stbi_write_bmp_to_func(stb_write, &bmp, 5, 6, 3, rgb.data()))
    throw std::runtime_error("stb_image_write failed");
  write_seed(dir / "seed-rgb.jpg", jpeg);
  write_seed(dir / "seed-rgb.bmp", bmp);
}

void mvtec_layout_seeds(const fs::path& dir) {
  const auto text = [](const std::string& s) { return bytes(s.begin(), s.end()); };
  write_seed(dir / "seed-category", text("train/good/000.png\ntrain/good/001.png\ntest/good/000.png\n"
                                         "test/crack/000.png\ntest/crack/001.jpg\nground_truth/crack/000_mask.png\n"
                                         "ground_truth/crack/001_mask.png\n"));
  write_seed(dir / "seed-mixed-case-and-hidden",
             text("train/good/A.PNG\ntrain/good/b.Jpeg\ntrain/good/.hidden.png\ntrain/good/notes.txt\n"
                  "train/good/sub/\ntest/good/x.bmp\ntest/hole/1.png\nground_truth/hole/1_mask.bmp\n"));
  write_seed(dir / "seed-links", text("train/good/000.png\ntest/good -> ../train/good\ntest/scratch/s.png\n"
                                      "ground_truth/scratch/s_mask.png\ntest/loop -> ../test\n"));
  write_seed(dir / "seed-missing-mask", text("train/good/0.png\ntest/good/0.png\ntest/dent/0.png\nground_truth/dent/\n"));
  // image_folder let a std::filesystem exception out for a link in a loop (found by the bad-input matrix).
  write_seed(dir / "seed-link-loop", text("train/good/0.png\ntrain/good/loop.png -> loop.png\ntest/good/0.png\n"));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_FOLDER (fuzz/corpus)\n", argv[0]);
    return 2;
  }
  const fs::path root = argv[1];
  const std::map<std::string, void (*)(const fs::path&)> targets = {
      {"model_file", model_file_seeds}, {"npy", npy_seeds}, {"npz", npz_seeds},
      {"image", image_seeds},           {"mvtec_layout", mvtec_layout_seeds}};
  try {
    for (const auto& [target, write] : targets) {
      fs::create_directories(root / target);
      write(root / target);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "flowad_fuzz_seeds: %s\n", e.what());
    return 1;
  }
  return 0;
}
