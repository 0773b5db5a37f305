// The stb translation unit: decoding and encoding images. stb's implementation is compiled into
// libstb (Debian), so only the declarations are included here.
#include "flowad/io/image.hpp"

#include <stb/stb_image.h>
#include <stb/stb_image_write.h>

#include <array>
#include <climits>
#include <cmath>
#include <cstring>
#include <memory>
#include <optional>

#include "io/bytes.hpp"
#include "io/file_bytes.hpp"

namespace flowad {
inline namespace v0 {
namespace {

enum class image_format { png, jpeg, bmp, unknown };

const char* format_name(image_format f) noexcept {
  switch (f) {
    case image_format::png:
      return "PNG";
    case image_format::jpeg:
      return "JPEG";
    case image_format::bmp:
      return "BMP";
    case image_format::unknown:
      break;
  }
  return "unknown";
}

constexpr std::array<unsigned char, 8> png_signature{0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};

image_format detect_format(const std::vector<unsigned char>& bytes) noexcept {
  if (bytes.size() >= png_signature.size() &&
      std::memcmp(bytes.data(), png_signature.data(), png_signature.size()) == 0)
    return image_format::png;
  if (bytes.size() >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF) return image_format::jpeg;
  if (bytes.size() >= 2 && bytes[0] == 'B' && bytes[1] == 'M') return image_format::bmp;
  return image_format::unknown;
}

std::uint32_t read_be32(const unsigned char* p) noexcept {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | p[3];
}
std::uint32_t read_le32(const unsigned char* p) noexcept {
  return (std::uint32_t{p[3]} << 24) | (std::uint32_t{p[2]} << 16) | (std::uint32_t{p[1]} << 8) | p[0];
}
std::uint16_t read_le16(const unsigned char* p) noexcept {
  return static_cast<std::uint16_t>(p[0] | (p[1] << 8));
}


// stb decodes PNGs without checking chunk CRCs and accepts a file cut inside its last chunk, so
// the chunk list is walked here: every chunk must be complete with a matching CRC, up to IEND.
std::optional<std::string> png_structure_problem(const std::vector<unsigned char>& bytes) {
  std::size_t pos = png_signature.size();
  for (;;) {
    if (bytes.size() - pos < 12)
      return "the file ends at byte " + std::to_string(bytes.size()) + " before its IEND chunk (truncated)";
    const std::uint32_t length = read_be32(&bytes[pos]);
    const std::string type(reinterpret_cast<const char*>(&bytes[pos + 4]), 4);
    if (length > bytes.size() - pos - 12)
      return "chunk '" + type + "' at byte " + std::to_string(pos) + " needs " + std::to_string(length + 12u) +
             " bytes but the file has " + std::to_string(bytes.size() - pos) + " left (truncated)";
    const std::uint32_t stored_crc = read_be32(&bytes[pos + 8 + length]);
    if (detail::crc32(&bytes[pos + 4], length + 4u) != stored_crc)
      return "CRC mismatch in chunk '" + type + "' at byte " + std::to_string(pos) + " (corrupt)";
    if (type == "IEND") return std::nullopt;
    pos += 12u + length;
  }
}

// stb fills a BMP whose pixel array is cut short with zeros, so uncompressed BMPs are checked to
// hold their whole pixel array.
std::optional<std::string> bmp_structure_problem(const std::vector<unsigned char>& bytes) {
  constexpr std::size_t file_header_size = 14;
  if (bytes.size() < file_header_size + 16) return "the file ends inside the BMP header (truncated)";
  const std::uint32_t pixel_offset = read_le32(&bytes[10]);
  const std::uint32_t info_size = read_le32(&bytes[14]);
  std::int64_t width = 0, height = 0;
  std::uint32_t bits = 0, compression = 0;
  if (info_size == 12) {  // OS/2 BITMAPCOREHEADER: 16-bit dimensions
    width = read_le16(&bytes[18]);
    height = read_le16(&bytes[20]);
    bits = read_le16(&bytes[24]);
  } else {
    if (bytes.size() < file_header_size + 20) return "the file ends inside the BMP header (truncated)";
    width = static_cast<std::int32_t>(read_le32(&bytes[18]));
    height = static_cast<std::int32_t>(read_le32(&bytes[22]));
    bits = read_le16(&bytes[28]);
    compression = read_le32(&bytes[30]);
  }
  constexpr std::uint32_t bi_rgb = 0, bi_bitfields = 3, bi_alphabitfields = 6;
  if (compression != bi_rgb && compression != bi_bitfields && compression != bi_alphabitfields)
    return std::nullopt;                                          // compressed BMPs: stb decides (it rejects RLE)
  if (width <= 0 || bits == 0 || bits > 32) return std::nullopt;  // stb reports malformed headers
  const std::int64_t row_bytes = (width * bits + 31) / 32 * 4;
  const std::int64_t needed = std::int64_t{pixel_offset} + row_bytes * std::abs(height);
  if (pixel_offset == 0 || needed <= static_cast<std::int64_t>(bytes.size())) return std::nullopt;
  return "the pixel array needs " + std::to_string(needed) + " bytes but the file has " + std::to_string(bytes.size()) +
         " (truncated)";
}

struct stbi_deleter {
  void operator()(unsigned char* p) const noexcept { stbi_image_free(p); }
};

// Decodes to `channels` channels (stb converts: gray -> RGB replicates, RGB -> gray is luminance,
// alpha is dropped).
byte_image decode(const std::filesystem::path& path, const char* what, int channels) {
  const std::vector<unsigned char> bytes = detail::read_file_bytes(path, what);
  const auto fail = [&](const std::string& reason) -> error {
    return error(errc::bad_file, std::string("cannot decode ") + what + " " + detail::quoted(path) + ": " + reason);
  };
  if (bytes.empty()) throw fail("the file is empty");
  if (bytes.size() > static_cast<std::size_t>(INT_MAX))
    throw fail("the file is larger than stb can decode (" + std::to_string(bytes.size()) + " bytes)");
  const image_format format = detect_format(bytes);
  if (format == image_format::unknown) throw fail("not a PNG, JPEG or BMP file (unrecognised signature)");

  std::optional<std::string> structure_problem;
  if (format == image_format::png) structure_problem = png_structure_problem(bytes);
  if (format == image_format::bmp) structure_problem = bmp_structure_problem(bytes);

  int width = 0, height = 0, file_channels = 0;
  const std::unique_ptr<unsigned char, stbi_deleter> pixels(
      stbi_load_from_memory(bytes.data(), static_cast<int>(bytes.size()), &width, &height, &file_channels, channels));
  if (!pixels || structure_problem) {
    std::string reason = std::string("corrupt or truncated ") + format_name(format) + " file";
    if (structure_problem) reason += ": " + *structure_problem;
    if (!pixels) {
      const char* stb_reason = stbi_failure_reason();
      reason += std::string("; stb_image: ") + (stb_reason ? stb_reason : "unknown failure");
    }
    throw fail(reason);
  }
  byte_image result(height, width, channels);
  std::memcpy(result.data(), pixels.get(), result.size());
  return result;
}

void append_bytes(void* context, void* data, int size) {
  auto* out = static_cast<std::vector<unsigned char>*>(context);
  const auto* p = static_cast<const unsigned char*>(data);
  out->insert(out->end(), p, p + size);
}

}  // namespace

byte_image read_image(const std::filesystem::path& path) {
  return decode(path, "image", 3);
}

byte_image read_mask(const std::filesystem::path& path) {
  byte_image mask = decode(path, "mask", 1);
  constexpr std::uint8_t anomalous_from = 128;
  for (std::size_t i = 0; i < mask.size(); ++i) mask.data()[i] = mask.data()[i] >= anomalous_from ? 1 : 0;
  return mask;
}

void write_png(const std::filesystem::path& path, const byte_image& image) {
  if (image.empty())
    throw error(errc::invalid_argument,
                "cannot write an empty image (" + image.shape_str() + ") to " + detail::quoted(path));
  if (image.channels() < 1 || image.channels() > 4)
    throw error(errc::invalid_argument, "cannot write a " + std::to_string(image.channels()) + "-channel image to " +
                                            detail::quoted(path) + ": PNG takes 1 to 4 channels");
  if (image.height() > INT_MAX || image.width() * image.channels() > INT_MAX)
    throw error(errc::invalid_argument, "image " + image.shape_str() + " is too large for PNG");
  std::vector<unsigned char> encoded;
  const int w = static_cast<int>(image.width()), h = static_cast<int>(image.height());
  const int c = static_cast<int>(image.channels());
  if (stbi_write_png_to_func(append_bytes, &encoded, w, h, c, image.data(), w * c) == 0 || encoded.empty())
    throw error(errc::io_error, "stb_image_write could not encode PNG " + detail::quoted(path));
  detail::write_file_bytes(path, encoded, "PNG");
}

void write_mask_png(const std::filesystem::path& path, const byte_image& mask) {
  if (mask.channels() != 1)
    throw error(errc::invalid_argument,
                "a mask has 1 channel but the image written to " + detail::quoted(path) + " is " + mask.shape_str());
  byte_image gray(mask.height(), mask.width(), 1);
  for (std::size_t i = 0; i < mask.size(); ++i) gray.data()[i] = mask.data()[i] ? 255 : 0;
  write_png(path, gray);
}

float_image to_float(const byte_image& image) {
  float_image result(image.height(), image.width(), image.channels());
  constexpr float inv_255 = 1.0f / 255.0f;
  for (std::size_t i = 0; i < image.size(); ++i) result.data()[i] = static_cast<float>(image.data()[i]) * inv_255;
  return result;
}

byte_image to_bytes(const float_image& image) {
  byte_image result(image.height(), image.width(), image.channels());
  for (std::size_t i = 0; i < image.size(); ++i) {
    const float v = image.data()[i];
    if (std::isnan(v))
      throw error(errc::non_finite, "NaN at element " + std::to_string(i) + " of a " + image.shape_str() + " image");
    const float clamped = v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v);
    result.data()[i] = static_cast<std::uint8_t>(std::lround(clamped * 255.0f));
  }
  return result;
}

}  // namespace v0
}  // namespace flowad
