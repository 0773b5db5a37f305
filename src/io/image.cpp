// Reading and writing images: PNG through libspng (io/png_decoder.cpp), JPEG through libjpeg-turbo
// (io/jpeg_decoder.cpp), BMP through stb, and writing PNG through stb_image_write (stb's implementation
// is compiled into Debian's libstb, so only the declarations are included here).
#include "flowad/io/image.hpp"

#include <stb/stb_image.h>
#include <stb/stb_image_write.h>

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
#include "io/png_decoder.hpp"

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

// stb fills a BMP whose pixel array is cut short with zeros, so uncompressed BMPs are checked to
// hold their whole pixel array. Returns the whole reason.
std::optional<std::string> bmp_structure_problem(const std::vector<unsigned char>& bytes) {
  constexpr std::size_t file_header_size = 14;
  const char* truncated_header = "corrupt or truncated BMP file: the file ends inside the BMP header (truncated)";
  if (bytes.size() < file_header_size + 16) return truncated_header;
  const std::uint32_t pixel_offset = detail::le32(&bytes[10]);
  const std::uint32_t info_size = detail::le32(&bytes[14]);
  std::int64_t width = 0, height = 0;
  std::uint32_t bits = 0, compression = 0;
  if (info_size == 12) {  // OS/2 BITMAPCOREHEADER: 16-bit dimensions
    width = detail::le16(&bytes[18]);
    height = detail::le16(&bytes[20]);
    bits = detail::le16(&bytes[24]);
  } else {
    if (bytes.size() < file_header_size + 20) return truncated_header;
    width = static_cast<std::int32_t>(detail::le32(&bytes[18]));
    height = static_cast<std::int32_t>(detail::le32(&bytes[22]));
    bits = detail::le16(&bytes[28]);
    compression = detail::le32(&bytes[30]);
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
  const std::string context = std::string("cannot decode ") + what + " " + detail::quoted(path) + ": ";
  const auto fail = [&](const std::string& reason) { return error(errc::bad_file, context + reason); };
  if (bytes.empty()) throw fail("the file is empty");
  // stb takes an int size; the same bound holds for every format, so that none is refused for size alone.
  if (bytes.size() > static_cast<std::size_t>(INT_MAX))
    throw fail("the file is larger than the 2 GiB flowad decodes (" + std::to_string(bytes.size()) + " bytes)");
  const image_format format = detect_format(bytes);
  if (format == image_format::unknown) throw fail("not a PNG, JPEG or BMP file (unrecognised signature)");
  if (format == image_format::jpeg) return detail::decode_jpeg(bytes, channels, context);
  if (format == image_format::png) return detail::decode_png(bytes, channels, context);

  // BMP: checked before stb sees the file, for what stb would misread or allocate without bound for.
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
