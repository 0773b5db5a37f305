// Preparing one MVTec image for an extractor, stage by stage, on one thread: reading and decoding
// the file (PNG: libspng), conversion to floats, and the antialiased bilinear resize to 256 x 256.
// load_image_batch runs these per image, images in parallel. The same image written as a JPEG
// (quality 95, by stb_image_write) is read by flowad (libjpeg-turbo). For comparison, stb_image, which
// decoded both formats before, reads the same files (bm_stb_*: stb's decoder alone, without the checks
// flowad ran before it).
//
// The image is MVTec bottle's train/good/000.png (900 x 900 RGB) below $FLOWAD_SHARED/data (default:
// ../shared beside the source root); the benchmarks report an error when it is missing.
//   build/benchmarks/bench_image_io --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <stb/stb_image.h>
#include <stb/stb_image_write.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "bench_common.hpp"
#include "flowad/io/image.hpp"
#include "flowad/io/image_resize.hpp"

namespace {

constexpr flowad::index_t target_size = 256;

std::filesystem::path bottle_image() {
  return std::filesystem::path(bench::shared_folder()) / "data/mvtec_bottle/train/good/000.png";
}

// Reads the image once outside the timing; false (and the benchmark skipped) when it is missing.
bool load(benchmark::State& state, flowad::byte_image& image) {
  try {
    image = flowad::read_image(bottle_image());
    return true;
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
    return false;
  }
}

void label(benchmark::State& state, const flowad::byte_image& image) {
  state.SetLabel(std::to_string(image.height()) + "x" + std::to_string(image.width()) + "x" +
                 std::to_string(image.channels()));
}

void bm_read_image(benchmark::State& state) {
  flowad::byte_image image;
  if (!load(state, image)) return;
  const std::filesystem::path path = bottle_image();
  for (auto _ : state) benchmark::DoNotOptimize(flowad::read_image(path).data());
  label(state, image);
}

// The bottle image as a JPEG in the temporary folder, written once per process.
std::filesystem::path bottle_jpeg(const flowad::byte_image& image) {
  static const std::filesystem::path path = [&] {
    const auto p = std::filesystem::temp_directory_path() / "flowad_bench_bottle_q95.jpg";
    stbi_write_jpg(p.c_str(), static_cast<int>(image.width()), static_cast<int>(image.height()), 3, image.data(), 95);
    return p;
  }();
  return path;
}

void bm_read_jpeg(benchmark::State& state) {
  flowad::byte_image image;
  if (!load(state, image)) return;
  const std::filesystem::path path = bottle_jpeg(image);
  for (auto _ : state) benchmark::DoNotOptimize(flowad::read_image(path).data());
  label(state, image);
}

// stb_image's decoder on a file, read into memory the same way (the comparison flowad's switches to
// libspng and libjpeg-turbo were measured with).
void stb_read(benchmark::State& state, const std::filesystem::path& path) {
  for (auto _ : state) {
    std::ifstream in(path, std::ios::binary);
    const std::vector<unsigned char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    int w = 0, h = 0, c = 0;
    unsigned char* pixels = stbi_load_from_memory(bytes.data(), static_cast<int>(bytes.size()), &w, &h, &c, 3);
    benchmark::DoNotOptimize(pixels);
    stbi_image_free(pixels);
  }
}

void bm_stb_read_png(benchmark::State& state) {
  flowad::byte_image image;
  if (!load(state, image)) return;
  stb_read(state, bottle_image());
  label(state, image);
}

void bm_stb_read_jpeg(benchmark::State& state) {
  flowad::byte_image image;
  if (!load(state, image)) return;
  stb_read(state, bottle_jpeg(image));
  label(state, image);
}

// The whole preparation of one image for the extractor, as load_image_batch does it per image: read and
// decode, convert to floats, resize to 256 x 256 (what benchmarks/peer/compare.sh compares with PyTorch's).
void prepare(benchmark::State& state, const std::filesystem::path& path) {
  for (auto _ : state)
    benchmark::DoNotOptimize(
        flowad::resize_bilinear(flowad::to_float(flowad::read_image(path)), target_size, target_size, true).data());
}

void bm_prepare_png(benchmark::State& state) {
  flowad::byte_image image;
  if (!load(state, image)) return;
  prepare(state, bottle_image());
  label(state, image);
}

void bm_prepare_jpeg(benchmark::State& state) {
  flowad::byte_image image;
  if (!load(state, image)) return;
  prepare(state, bottle_jpeg(image));
  label(state, image);
}

void bm_to_float(benchmark::State& state) {
  flowad::byte_image image;
  if (!load(state, image)) return;
  for (auto _ : state) benchmark::DoNotOptimize(flowad::to_float(image).data());
  label(state, image);
}

void bm_resize_to_256(benchmark::State& state) {
  flowad::byte_image image;
  if (!load(state, image)) return;
  const flowad::float_image pixels = flowad::to_float(image);
  for (auto _ : state)
    benchmark::DoNotOptimize(flowad::resize_bilinear(pixels, target_size, target_size, true).data());
  label(state, image);
}

BENCHMARK(bm_read_image)->Unit(benchmark::kMillisecond);
BENCHMARK(bm_stb_read_png)->Unit(benchmark::kMillisecond);
BENCHMARK(bm_read_jpeg)->Unit(benchmark::kMillisecond);
BENCHMARK(bm_stb_read_jpeg)->Unit(benchmark::kMillisecond);
BENCHMARK(bm_prepare_png)->Unit(benchmark::kMillisecond);
BENCHMARK(bm_prepare_jpeg)->Unit(benchmark::kMillisecond);
BENCHMARK(bm_to_float)->Unit(benchmark::kMillisecond);
BENCHMARK(bm_resize_to_256)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
