// Fuzzes model files of every detector kind: decode_model, then what the file describes, a detector
// (detector_from_model_file) or, when an inspector saved it, the whole image pipeline
// (inspector::load). What loads is scored once: a file that loads but then crashes scoring is a loader
// bug too (a tensor of the wrong size that the configuration trusted).
//
// Every input is resealed first (its payload size and CRC-32 set to match): otherwise almost every
// mutation would stop at the checksum, whose rejection tests/unit/test_model_file.cpp covers.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "flowad/detector.hpp"
#include "flowad/error.hpp"
#include "flowad/io/model_file.hpp"
#include "flowad/pipeline/inspector.hpp"
#include "fuzz_support.hpp"
#include "io/bytes.hpp"

namespace {

using namespace flowad;

constexpr std::size_t header_size = 8 + 4 + 8;  // magic, format version, payload size
constexpr std::size_t checksum_size = 4;
// Inputs larger than this are not scored (each scale of a sample, in values): scoring is then the
// time of the run, not the loader's checks.
constexpr index_t max_scored_values = 1 << 14;
constexpr index_t max_inspected_pixels = 64 * 64;

void reseal(std::vector<std::uint8_t>& bytes) {
  if (bytes.size() < header_size + checksum_size) return;
  const std::uint64_t payload = bytes.size() - header_size - checksum_size;
  std::memcpy(bytes.data() + 12, &payload, sizeof payload);
  const std::uint32_t crc = detail::crc32(bytes.data(), bytes.size() - checksum_size);
  std::memcpy(bytes.data() + bytes.size() - checksum_size, &crc, checksum_size);
}

bool saved_by_an_inspector(const model_file_contents& m) {
  for (const auto& entry : m.metadata)
    if (entry.first == "pipeline.extractor") return true;
  return false;
}

// One sample per scale, smooth values in [-1, 1].
void score_once(const detector& model) {
  std::vector<tensor> features;
  for (const scale_shape& s : model.input_shapes()) {
    if (s.channels <= 0 || s.height <= 0 || s.width <= 0) return;
    if (s.channels > max_scored_values / s.height / s.width) return;
    features.emplace_back(shape4{1, s.channels, s.height, s.width});
    tensor& t = features.back();
    for (index_t i = 0; i < t.numel(); ++i) t.data()[i] = static_cast<float>(std::sin(0.37 * static_cast<double>(i)));
  }
  feature_maps views;
  for (const tensor& t : features) views.push_back(t.cview());
  const scores s = model.score(views);
  (void)s;
}

void inspect_once(const inspector& model) {
  const feature_options& f = model.feature_settings();
  if (f.height <= 0 || f.width <= 0 || f.height > max_inspected_pixels / f.width) return;
  byte_image image(8, 8, 3);
  for (std::size_t i = 0; i < image.size(); ++i) image.data()[i] = static_cast<std::uint8_t>(i * 37);
  const verdict v = model.inspect(image);
  (void)v;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::vector<std::uint8_t> bytes(data, data + size);
  reseal(bytes);
  try {
    const model_file_contents contents = decode_model(bytes.data(), bytes.size(), "fuzzed model file");
    if (saved_by_an_inspector(contents)) {
      const auto path = fuzz::write_scratch_file("model.flowad", bytes.data(), bytes.size());
      inspect_once(inspector::load(path));
    } else {
      score_once(*detector_from_model_file(contents));
    }
  } catch (const error&) {
  }
  return 0;
}
