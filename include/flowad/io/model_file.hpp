// The model file container: every detector saves and loads through it.
//
// Layout (little-endian):
//   magic "\x89FLOWAD\n" (8 bytes; the high byte and the newline catch 7-bit and text-mode corruption)
//   u32 format version, u64 payload size
//   payload: library version, detector kind, configuration and metadata (each ordered key/value
//            strings), tensors (name, rank, dims, float32 values)
//   u32 CRC-32 of everything before it
// Reading validates every length against the bytes that remain before touching them, so a truncated,
// bit-flipped or foreign file raises flowad::error(errc::bad_file) and never reads out of bounds.
// Writing goes to a temporary file in the same folder, synced to disk, renamed over the target, and the
// folder synced, so that after a crash, a kill or a full disk the target is either the old file or the
// complete new one; a failed write throws errc::io_error and removes its temporary file
// (docs/reliability.md, "Crash-safe saves").
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "flowad/detector_config.hpp"
#include "flowad/tensor.hpp"

namespace flowad {
inline namespace v0 {

inline constexpr std::uint32_t model_file_format_version = 1;

struct stored_tensor {
  std::string name;
  std::vector<index_t> dims;
  std::vector<float> values;
};

struct model_file_contents {
  std::string kind;             // detector kind, e.g. "msflow"
  std::string library_version;  // set by the writer; read back for diagnostics
  detector_config config;       // the detector's settings
  // Annotations: user metadata, and the image pipeline's keys (pipeline.*, threshold.*, heatmap.*)
  // when an inspector saved the file.
  std::vector<std::pair<std::string, std::string>> metadata;
  // The detector's tensors, then the extractor's weights (names "extractor.*") when embedded.
  std::vector<stored_tensor> tensors;

  // The tensor called name: nullptr, or errc::bad_file naming it, when it is missing.
  const stored_tensor* find_tensor(const std::string& name) const noexcept;
  const stored_tensor& tensor_named(const std::string& name) const;
};

void write_model_file(const std::filesystem::path& path, const model_file_contents& contents);
model_file_contents read_model_file(const std::filesystem::path& path);

// Serialises to / parses from memory (what the file functions do around their I/O).
std::vector<std::uint8_t> encode_model(const model_file_contents& contents);
model_file_contents decode_model(const std::uint8_t* data, std::size_t size, const std::string& origin);

}  // namespace v0
}  // namespace flowad
