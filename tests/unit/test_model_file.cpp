// Model files: round trip, and every way a file can be damaged. The damage tests also run under
// AddressSanitizer in CI (scripts/run-tests.sh), so an out-of-bounds read fails loudly.
#include <catch2/catch.hpp>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "flowad/detail/random.hpp"
#include "flowad/detectors/msflow.hpp"
#include "flowad/io/model_file.hpp"
#include "io/bytes.hpp"
#include "flowad/version.hpp"
#include "support/feature_data.hpp"
#include "support/temp_folder.hpp"

using namespace flowad;
using namespace flowad::testing;
namespace fs = std::filesystem;

namespace {

// One folder per process (ctest runs test cases of this file in parallel processes), removed at exit.
const fs::path& temp_dir() {
  static const temp_folder folder;
  return folder.path();
}

// A small fitted model's file.
std::vector<std::uint8_t> small_model_bytes(block_mixing mixing) {
  msflow_config cfg;
  cfg.scales = {{6, 4, 4}, {4, 2, 2}};
  cfg.groups = 2;
  cfg.hidden = 4;
  cfg.blocks = 2;
  cfg.mixing = mixing;
  cfg.training.epochs = 1;
  cfg.training.batch_size = 8;
  msflow model(cfg);
  const feature_dataset a = make_feature_dataset(6, 4, 8, 1, 1, 1);
  const feature_dataset b = make_feature_dataset(4, 2, 8, 1, 1, 2);
  model.fit({a.train, b.train});
  const fs::path path = temp_dir() / "small.flowad";
  model.save(path);
  return read_bytes(path);
}

// Decodes and builds the detector; returns true if that succeeded. Anything but flowad::error escapes.
bool loads(const std::vector<std::uint8_t>& bytes) {
  try {
    const model_file_contents m = decode_model(bytes.data(), bytes.size(), "fuzzed");
    detector_from_model_file(m);
    return true;
  } catch (const error& e) {
    CHECK(e.code() == errc::bad_file);
    return false;
  }
}

void reseal(std::vector<std::uint8_t>& bytes) {
  const std::uint32_t crc = detail::crc32(bytes.data(), bytes.size() - 4);
  std::memcpy(bytes.data() + bytes.size() - 4, &crc, 4);
}

}  // namespace

TEST_CASE("crc32 matches the standard check value", "[model_file]") {
  const char* text = "123456789";
  CHECK(detail::crc32(reinterpret_cast<const std::uint8_t*>(text), 9) == 0xCBF43926u);
  // Chained over pieces, an empty (even null) piece included.
  const std::uint32_t head = detail::crc32(text, 4);
  CHECK(detail::crc32(text + 4, 5, detail::crc32(nullptr, 0, head)) == 0xCBF43926u);
}

TEST_CASE("model file round trip keeps every field", "[model_file]") {
  model_file_contents m;
  m.kind = "test";
  m.config = {{"a", "1"}, {"b", "two words"}};
  m.metadata = {{"pipeline.x", "y"}, {"a", "the same key as in the configuration"}};
  m.tensors = {{"x", {2, 3}, {1, 2, 3, 4, 5, 6}}, {"empty", {0}, {}}, {"scalar", {}, {7.5f}}};
  const fs::path path = temp_dir() / "roundtrip.flowad";
  write_model_file(path, m);
  const model_file_contents r = read_model_file(path);
  CHECK(r.kind == "test");
  CHECK(r.library_version == FLOWAD_VERSION_STRING);
  CHECK(r.config == m.config);
  CHECK(r.metadata == m.metadata);
  REQUIRE(r.tensors.size() == 3);
  CHECK(r.tensors[0].dims == std::vector<index_t>{2, 3});
  CHECK(r.tensors[0].values == m.tensors[0].values);
  CHECK(r.tensors[2].values == std::vector<float>{7.5f});
  CHECK(r.config.at("b") == "two words");
  CHECK(r.find_tensor("missing") == nullptr);
  CHECK_THROWS_AS(r.tensor_named("missing"), error);
}

TEST_CASE("truncated model files are rejected at every offset", "[model_file]") {
  for (const block_mixing mixing : {block_mixing::permute, block_mixing::invertible_1x1}) {
    const std::vector<std::uint8_t> bytes = small_model_bytes(mixing);
    REQUIRE(loads(bytes));
    // Every offset in the header and configuration, then a stride through the tensors.
    for (std::size_t cut = 0; cut < bytes.size(); cut += (cut < 1024 ? 1 : 97)) {
      const std::vector<std::uint8_t> head(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(cut));
      INFO("truncated to " << cut << " of " << bytes.size() << " bytes");
      CHECK_FALSE(loads(head));
    }
  }
}

TEST_CASE("bit-flipped model files are rejected, and parsing survives resealed damage", "[model_file]") {
  const std::vector<std::uint8_t> bytes = small_model_bytes(block_mixing::invertible_1x1);
  detail::rng r(99);
  for (int trial = 0; trial < 3000; ++trial) {
    std::vector<std::uint8_t> damaged = bytes;
    const std::size_t at = static_cast<std::size_t>(r.below(damaged.size()));
    damaged[at] ^= static_cast<std::uint8_t>(1u << r.below(8));
    INFO("flipped a bit of byte " << at);
    CHECK_FALSE(loads(damaged));  // the checksum catches every single-bit flip
    // A damaged file with a valid checksum (a foreign writer, a deliberate edit) must still be parsed
    // safely: it loads (a flipped float) or fails with flowad::error, never crashes.
    reseal(damaged);
    loads(damaged);
  }
  // Bursts of random bytes in the structured part, resealed.
  for (int trial = 0; trial < 2000; ++trial) {
    std::vector<std::uint8_t> damaged = bytes;
    const std::size_t at = static_cast<std::size_t>(r.below(std::min<std::size_t>(damaged.size() - 8, 900)));
    for (std::size_t k = 0; k < 4; ++k) damaged[at + k] = static_cast<std::uint8_t>(r.next());
    reseal(damaged);
    loads(damaged);
  }
}

TEST_CASE("foreign and empty files are rejected with a clear message", "[model_file]") {
  const fs::path dir = temp_dir();
  const std::vector<std::vector<std::uint8_t>> foreign = {
      {},
      {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n', 0, 0, 0, 13},
      {'h', 'e', 'l', 'l', 'o', '\n'},
      std::vector<std::uint8_t>(4096, 0xFF),
  };
  for (const auto& bytes : foreign) {
    const fs::path path = dir / "foreign.bin";
    write_bytes(path, bytes);
    try {
      load_detector(path);
      FAIL("a foreign file loaded");
    } catch (const error& e) {
      CHECK(e.code() == errc::bad_file);
      CHECK_THAT(e.what(), Catch::Contains("foreign.bin"));
    }
  }
  // A future format version.
  std::vector<std::uint8_t> future = small_model_bytes(block_mixing::permute);
  future[8] = 2;
  reseal(future);
  write_bytes(dir / "future.flowad", future);
  try {
    load_detector(dir / "future.flowad");
    FAIL("a future version loaded");
  } catch (const error& e) {
    CHECK_THAT(e.what(), Catch::Contains("version 2"));
  }
  // Another detector kind.
  model_file_contents other;
  other.kind = "not_a_detector";
  write_model_file(dir / "other.flowad", other);
  CHECK_THROWS_WITH(load_detector(dir / "other.flowad"), Catch::Contains("not_a_detector"));
  CHECK_THROWS_AS(load_detector(dir), error);  // a folder
}

TEST_CASE("saving replaces the file atomically and never leaves debris", "[model_file]") {
  const fs::path dir = temp_dir() / "atomic";
  fs::remove_all(dir);
  fs::create_directories(dir);
  model_file_contents first, second;
  first.kind = "first";
  second.kind = "second";
  write_model_file(dir / "m.flowad", first);
  write_model_file(dir / "m.flowad", second);
  CHECK(read_model_file(dir / "m.flowad").kind == "second");
  // Only the model itself is in the folder: no temporary files left behind.
  CHECK(std::distance(fs::directory_iterator(dir), fs::directory_iterator()) == 1);
  // A destination that cannot be written: the error names it and nothing is created.
  CHECK_THROWS_AS(write_model_file(dir / "missing_folder" / "m.flowad", first), error);
  fs::create_directories(dir / "a_folder");
  CHECK_THROWS_AS(write_model_file(dir / "a_folder", first), error);
  CHECK(fs::is_directory(dir / "a_folder"));
  CHECK(std::distance(fs::directory_iterator(dir), fs::directory_iterator()) == 2);
}
