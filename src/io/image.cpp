// Reading and writing images: PNG and BMP through stb (its implementation is compiled into Debian's
// libstb, so only the declarations are included here), JPEG through libjpeg-turbo (io/jpeg_decoder.cpp).
#include "flowad/io/image.hpp"

#include <stb/stb_image.h>
#include <stb/stb_image_write.h>
#include <zlib.h>

#include <array>
#include <climits>
#include <cmath>
#include <cstring>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "io/bytes.hpp"
#include "io/file_bytes.hpp"
#include "io/jpeg_decoder.hpp"

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


struct png_header {
  std::uint32_t width = 0, height = 0;
  unsigned bit_depth = 0, colour_type = 0, interlace = 0;
};

// Bytes a PNG's image data inflates to (a filter byte per row of every Adam7 pass), or 0 for a header
// stb will reject anyway (an unknown colour type, bit depth or interlace method).
std::uint64_t png_image_data_size(const png_header& h) {
  unsigned samples = 0;
  bool depth_ok = h.bit_depth == 8 || h.bit_depth == 16;
  switch (h.colour_type) {
    case 0: samples = 1; depth_ok = depth_ok || h.bit_depth == 1 || h.bit_depth == 2 || h.bit_depth == 4; break;
    case 3: samples = 1; depth_ok = h.bit_depth == 1 || h.bit_depth == 2 || h.bit_depth == 4 || h.bit_depth == 8; break;
    case 2: samples = 3; break;
    case 4: samples = 2; break;
    case 6: samples = 4; break;
    default: return 0;
  }
  if (!depth_ok || h.interlace > 1) return 0;
  const std::uint64_t bits = std::uint64_t{samples} * h.bit_depth;
  const auto rows = [&](std::uint64_t w, std::uint64_t ht) -> std::uint64_t {
    return w == 0 || ht == 0 ? 0 : ht * (1 + (w * bits + 7) / 8);
  };
  if (h.interlace == 0) return rows(h.width, h.height);
  struct pass { std::uint32_t x0, y0, dx, dy; };
  constexpr pass adam7[] = {{0, 0, 8, 8}, {4, 0, 8, 8}, {0, 4, 4, 8}, {2, 0, 4, 4}, {0, 2, 2, 4}, {1, 0, 2, 2}, {0, 1, 1, 2}};
  std::uint64_t total = 0;
  for (const pass& p : adam7) {
    const std::uint64_t w = h.width > p.x0 ? (h.width - p.x0 + p.dx - 1) / p.dx : 0;
    const std::uint64_t ht = h.height > p.y0 ? (h.height - p.y0 + p.dy - 1) / p.dy : 0;
    total += rows(w, ht);
  }
  return total;
}

// stb inflates a PNG's image data into a buffer it grows without bound, and keeps "decoding" past the
// end of a truncated stream: a file of a few hundred bytes can make it allocate gigabytes. So the data
// (the IDAT chunks, in order) is inflated here first, into a fixed buffer, and must be one sound zlib
// stream of exactly the size the header implies.
std::optional<std::string> png_data_problem(const std::vector<unsigned char>& bytes,
                                            const std::vector<std::pair<std::size_t, std::size_t>>& idat,
                                            std::uint64_t expected) {
  z_stream z{};
  if (inflateInit(&z) != Z_OK) throw error(errc::backend, "zlib: inflateInit failed");
  std::array<unsigned char, 1 << 16> out;
  std::uint64_t produced = 0;
  int rc = Z_OK;
  std::optional<std::string> problem;
  for (std::size_t i = 0; i < idat.size() && rc == Z_OK && !problem; ++i) {
    z.next_in = const_cast<unsigned char*>(&bytes[idat[i].first]);
    z.avail_in = static_cast<uInt>(idat[i].second);
    bool out_full = false;
    do {
      z.next_out = out.data();
      z.avail_out = static_cast<uInt>(out.size());
      rc = inflate(&z, Z_NO_FLUSH);
      produced += out.size() - z.avail_out;
      out_full = z.avail_out == 0;
      if (rc == Z_NEED_DICT || rc == Z_DATA_ERROR || rc == Z_MEM_ERROR)
        problem = std::string("its image data is no sound zlib stream (zlib: ") + (z.msg ? z.msg : "error") + ")";
      else if (produced > expected)
        problem = "its image data inflates to more than the " + std::to_string(expected) + " bytes its header implies";
    } while (!problem && rc == Z_OK && (z.avail_in > 0 || out_full));
  }
  inflateEnd(&z);
  if (problem) return "corrupt PNG file: " + *problem;
  if (rc != Z_STREAM_END) return std::string("corrupt or truncated PNG file: its image data ends inside its zlib stream");
  if (produced < expected)
    return "corrupt or truncated PNG file: its image data inflates to " + std::to_string(produced) + " bytes, fewer than the " +
           std::to_string(expected) + " its header implies";
  return std::nullopt;
}

// stb decodes PNGs without checking chunk CRCs and accepts a file cut inside its last chunk, so
// the chunk list is walked here: IHDR first, every chunk complete with a matching CRC, up to IEND;
// then the size the header declares and the image data (png_data_problem). Returns the whole reason.
std::optional<std::string> png_structure_problem(const std::vector<unsigned char>& bytes) {
  const auto corrupt = [](const std::string& what) { return "corrupt or truncated PNG file: " + what; };
  std::size_t pos = png_signature.size();
  png_header header;
  std::vector<std::pair<std::size_t, std::size_t>> idat;  // offset, length
  for (;;) {
    if (bytes.size() - pos < 12)
      return corrupt("the file ends at byte " + std::to_string(bytes.size()) + " before its IEND chunk (truncated)");
    const std::uint32_t length = read_be32(&bytes[pos]);
    const std::string type(reinterpret_cast<const char*>(&bytes[pos + 4]), 4);
    if (length > bytes.size() - pos - 12)
      return corrupt("chunk '" + type + "' at byte " + std::to_string(pos) + " needs " + std::to_string(length + 12u) +
                     " bytes but the file has " + std::to_string(bytes.size() - pos) + " left (truncated)");
    const std::uint32_t stored_crc = read_be32(&bytes[pos + 8 + length]);
    if (detail::crc32(&bytes[pos + 4], length + 4u) != stored_crc)
      return corrupt("CRC mismatch in chunk '" + type + "' at byte " + std::to_string(pos) + " (corrupt)");
    const unsigned char* data = &bytes[pos + 8];
    if (pos == png_signature.size()) {
      if (type != "IHDR" || length != 13) return corrupt("the first chunk is '" + type + "', not a 13-byte IHDR");
      header.width = read_be32(data);
      header.height = read_be32(data + 4);
      header.bit_depth = data[8];
      header.colour_type = data[9];
      header.interlace = data[12];
    }
    if (type == "IDAT" && length > 0) idat.emplace_back(pos + 8, length);
    if (type == "IEND") break;
    pos += 12u + length;
  }
  if (std::uint64_t{header.width} * header.height > static_cast<std::uint64_t>(max_image_pixels))
    return "the PNG header declares " + std::to_string(header.width) + "x" + std::to_string(header.height) +
           " pixels, more than the " + std::to_string(max_image_pixels) + " flowad reads";
  const std::uint64_t expected = png_image_data_size(header);
  if (expected == 0) return std::nullopt;  // stb reports a header it does not read
  return png_data_problem(bytes, idat, expected);
}

// stb fills a BMP whose pixel array is cut short with zeros, so uncompressed BMPs are checked to
// hold their whole pixel array. Returns the whole reason.
std::optional<std::string> bmp_structure_problem(const std::vector<unsigned char>& bytes) {
  constexpr std::size_t file_header_size = 14;
  const char* truncated_header = "corrupt or truncated BMP file: the file ends inside the BMP header (truncated)";
  if (bytes.size() < file_header_size + 16) return truncated_header;
  const std::uint32_t pixel_offset = read_le32(&bytes[10]);
  const std::uint32_t info_size = read_le32(&bytes[14]);
  std::int64_t width = 0, height = 0;
  std::uint32_t bits = 0, compression = 0;
  if (info_size == 12) {  // OS/2 BITMAPCOREHEADER: 16-bit dimensions
    width = read_le16(&bytes[18]);
    height = read_le16(&bytes[20]);
    bits = read_le16(&bytes[24]);
  } else {
    if (bytes.size() < file_header_size + 20) return truncated_header;
    width = static_cast<std::int32_t>(read_le32(&bytes[18]));
    height = static_cast<std::int32_t>(read_le32(&bytes[22]));
    bits = read_le16(&bytes[28]);
    compression = read_le32(&bytes[30]);
  }
  // stb rejects RLE (1, 2) but reads any other unknown method as uncompressed pixels, zero-filled past
  // the end of the file: only the methods it implements get through.
  constexpr std::uint32_t bi_rgb = 0, bi_rle8 = 1, bi_rle4 = 2, bi_bitfields = 3, bi_alphabitfields = 6;
  if (compression == bi_rle8 || compression == bi_rle4) return std::nullopt;  // stb says why
  if (compression != bi_rgb && compression != bi_bitfields && compression != bi_alphabitfields)
    return "the BMP header declares compression method " + std::to_string(compression) +
           ", which flowad does not read (it reads uncompressed and bit-field BMPs)";
  // stb reads a width of 0 and walks every declared row anyway (the fifth million-execution image campaign
  // timed out on a 68-byte BMP of 0 x 14 million pixels), and takes a height of 0 for an empty image.
  if (width <= 0 || height == 0)
    return "the BMP header declares " + std::to_string(width) + "x" + std::to_string(std::abs(height)) + " pixels";
  if (bits == 0 || bits > 32) return std::nullopt;  // stb reports malformed headers
  // Before the pixel array's size, which could overflow for dimensions near 2^31.
  if (width * std::abs(height) > max_image_pixels)
    return "the BMP header declares " + std::to_string(width) + "x" + std::to_string(std::abs(height)) +
           " pixels, more than the " + std::to_string(max_image_pixels) + " flowad reads";
  const std::int64_t row_bytes = (width * bits + 31) / 32 * 4;
  // An offset of 0 (unset): stb reads the pixels right after the headers, so they must fit there.
  const std::int64_t pixels_start = pixel_offset != 0 ? std::int64_t{pixel_offset} : std::int64_t{file_header_size} + info_size;
  const std::int64_t needed = pixels_start + row_bytes * std::abs(height);
  if (needed <= static_cast<std::int64_t>(bytes.size())) return std::nullopt;
  return "corrupt or truncated BMP file: the pixel array needs " + std::to_string(needed) + " bytes but the file has " +
         std::to_string(bytes.size()) + " (truncated)";
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

  if (format == image_format::jpeg)
    return detail::decode_jpeg(bytes, channels, std::string("cannot decode ") + what + " " + detail::quoted(path) + ": ");

  // Checked before stb sees the file: what stb would misread, or allocate without bound for.
  if (format == image_format::png)
    if (const auto problem = png_structure_problem(bytes)) throw fail(*problem);
  if (format == image_format::bmp)
    if (const auto problem = bmp_structure_problem(bytes)) throw fail(*problem);
  const int size = static_cast<int>(bytes.size());
  int width = 0, height = 0, file_channels = 0;
  if (stbi_info_from_memory(bytes.data(), size, &width, &height, &file_channels)) {
    const std::int64_t pixels = std::int64_t{width} * height;
    if (pixels > max_image_pixels)
      throw fail(std::string("the ") + format_name(format) + " header declares " + std::to_string(width) + "x" +
                 std::to_string(height) + " pixels, more than the " + std::to_string(max_image_pixels) + " flowad reads");
  }

  const std::unique_ptr<unsigned char, stbi_deleter> pixels(
      stbi_load_from_memory(bytes.data(), size, &width, &height, &file_channels, channels));
  if (!pixels) {
    const char* stb_reason = stbi_failure_reason();
    throw fail(std::string("corrupt or truncated ") + format_name(format) + " file; stb_image: " +
               (stb_reason ? stb_reason : "unknown failure"));
  }
  // stb accepts a BMP that declares no rows (height 0): an image without pixels is no image.
  if (width <= 0 || height <= 0)
    throw fail(std::string("the ") + format_name(format) + " header declares " + std::to_string(width) + "x" +
               std::to_string(height) + " pixels");
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
