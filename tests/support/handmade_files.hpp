// Files written by hand from their specifications, byte by byte, for tests and fuzz seeds that need
// what flowad's writers never produce: .npy headers of any version and dtype, zip archives with
// deflated or zip64 members (PKWARE's APPNOTE.TXT), PNGs of any bit depth and colour type.
// Independent of the library's own writers, so a shared bug cannot hide itself.
#pragma once

#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace flowad {
namespace testing {

using bytes = std::vector<unsigned char>;

inline void append(bytes& b, const std::string& s) { b.insert(b.end(), s.begin(), s.end()); }
inline void append16(bytes& b, std::uint32_t v) {
  b.push_back(static_cast<unsigned char>(v & 0xFF));
  b.push_back(static_cast<unsigned char>((v >> 8) & 0xFF));
}
inline void append32(bytes& b, std::uint32_t v) {
  append16(b, v & 0xFFFF);
  append16(b, v >> 16);
}
inline void append64(bytes& b, std::uint64_t v) {
  append32(b, static_cast<std::uint32_t>(v));
  append32(b, static_cast<std::uint32_t>(v >> 32));
}
inline void append32_big_endian(bytes& b, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) b.push_back(static_cast<unsigned char>((v >> shift) & 0xFF));
}
template <class T>
void append_values(bytes& b, const std::vector<T>& values, bool big_endian = false) {
  for (const T& v : values) {
    unsigned char raw[sizeof(T)];
    std::memcpy(raw, &v, sizeof(T));
    if (big_endian) std::reverse(raw, raw + sizeof(T));
    b.insert(b.end(), raw, raw + sizeof(T));
  }
}

// An .npy image written by hand: magic, version, header length, the dictionary text padded with
// spaces to a multiple of 64 and '\n', then the payload.
inline bytes npy_file(const std::string& dict, const bytes& payload, int major = 1, bool pad = true) {
  bytes b = {0x93, 'N', 'U', 'M', 'P', 'Y', static_cast<unsigned char>(major), 0};
  const std::size_t prefix = 8 + (major == 1 ? 2 : 4);
  std::string header = dict;
  if (pad) {
    const std::size_t total = (prefix + header.size() + 1 + 63) / 64 * 64;
    header.append(total - prefix - header.size() - 1, ' ');
    header.push_back('\n');
  }
  if (major == 1) {
    append16(b, static_cast<std::uint32_t>(header.size()));
  } else {
    append32(b, static_cast<std::uint32_t>(header.size()));
  }
  append(b, header);
  b.insert(b.end(), payload.begin(), payload.end());
  return b;
}

inline bytes float_payload(const std::vector<float>& v) {
  bytes b;
  append_values(b, v);
  return b;
}

// The CRC-32 of zip and PNG, computed bitwise without a table (not by zlib, which flowad uses).
inline std::uint32_t crc32_of(const unsigned char* data, std::size_t size) {
  std::uint32_t c = 0xFFFFFFFFu;
  for (std::size_t i = 0; i < size; ++i) {
    c ^= data[i];
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
  }
  return ~c;
}
inline std::uint32_t crc32_of(const bytes& data) { return crc32_of(data.data(), data.size()); }

// Deflated by zlib: raw (no zlib header, as zip method 8 and numpy's savez_compressed store members)
// or with the zlib header (PNG's IDAT).
inline bytes deflated(const bytes& data, bool raw = true) {
  z_stream s{};
  if (deflateInit2(&s, Z_BEST_COMPRESSION, Z_DEFLATED, raw ? -MAX_WBITS : MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    throw std::runtime_error("deflateInit2 failed");
  bytes out(deflateBound(&s, static_cast<uLong>(data.size())));
  s.next_in = const_cast<unsigned char*>(data.data());
  s.avail_in = static_cast<uInt>(data.size());
  s.next_out = out.data();
  s.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&s, Z_FINISH);
  deflateEnd(&s);
  if (rc != Z_STREAM_END) throw std::runtime_error("deflate did not finish");
  out.resize(s.total_out);
  return out;
}

constexpr std::uint16_t stored = 0;
constexpr std::uint16_t deflate_method = 8;

struct zip_member_spec {
  zip_member_spec(std::string name_, bytes data_, std::uint16_t method_ = stored, bool zip64_local_ = false,
                  bytes compressed_ = {})
      : name(std::move(name_)),
        data(std::move(data_)),
        method(method_),
        zip64_local(zip64_local_),
        compressed(std::move(compressed_)) {}

  std::string name;
  bytes data;  // the member's (uncompressed) content
  std::uint16_t method;
  bool zip64_local;  // numpy's force_zip64: sizes 0xFFFFFFFF in the local header plus a zip64 extra
  bytes compressed;  // method 8: the bytes in the archive (default: data deflated by zlib)
};

// A zip archive. Sizes and CRC-32 describe `data`; the archive holds `data` itself unless the member
// is deflated.
inline bytes zip_file(const std::vector<zip_member_spec>& members) {
  bytes out, central;
  for (const zip_member_spec& m : members) {
    const std::uint32_t offset = static_cast<std::uint32_t>(out.size());
    const std::uint32_t crc = crc32_of(m.data);
    const bytes body = m.method != deflate_method ? m.data : m.compressed.empty() ? deflated(m.data) : m.compressed;
    const auto size = static_cast<std::uint32_t>(m.data.size());
    const auto compressed_size = static_cast<std::uint32_t>(body.size());
    append32(out, 0x04034b50u);
    append16(out, m.zip64_local ? 45 : 20);
    append16(out, 0);
    append16(out, m.method);
    append16(out, 0);
    append16(out, 0x21);
    append32(out, crc);
    append32(out, m.zip64_local ? 0xFFFFFFFFu : compressed_size);
    append32(out, m.zip64_local ? 0xFFFFFFFFu : size);
    append16(out, static_cast<std::uint32_t>(m.name.size()));
    append16(out, m.zip64_local ? 20 : 0);
    append(out, m.name);
    if (m.zip64_local) {
      append16(out, 0x0001);
      append16(out, 16);
      append64(out, size);
      append64(out, compressed_size);
    }
    out.insert(out.end(), body.begin(), body.end());

    append32(central, 0x02014b50u);
    append16(central, 20);
    append16(central, 20);
    append16(central, 0);
    append16(central, m.method);
    append16(central, 0);
    append16(central, 0x21);
    append32(central, crc);
    append32(central, compressed_size);
    append32(central, size);
    append16(central, static_cast<std::uint32_t>(m.name.size()));
    append16(central, 0);
    append16(central, 0);
    append16(central, 0);
    append16(central, 0);
    append32(central, 0);
    append32(central, offset);
    append(central, m.name);
  }
  const auto cd_offset = static_cast<std::uint32_t>(out.size());
  out.insert(out.end(), central.begin(), central.end());
  append32(out, 0x06054b50u);
  append16(out, 0);
  append16(out, 0);
  append16(out, static_cast<std::uint32_t>(members.size()));
  append16(out, static_cast<std::uint32_t>(members.size()));
  append32(out, static_cast<std::uint32_t>(central.size()));
  append32(out, cd_offset);
  append16(out, 0);
  return out;
}

// PNG colour types.
constexpr unsigned char png_gray = 0, png_rgb = 2, png_gray_alpha = 4, png_rgba = 6;

// A PNG of height x width with `samples` (channels_of(colour_type) per pixel, rows top to bottom) at
// bit_depth 8 or 16 (16-bit samples big-endian, as PNG stores them); no filtering, no interlace.
inline bytes png_file(std::uint32_t height, std::uint32_t width, unsigned char colour_type, unsigned char bit_depth,
                      const std::vector<std::uint16_t>& samples) {
  const std::size_t channels = colour_type == png_gray ? 1 : colour_type == png_rgb ? 3 : colour_type == png_gray_alpha ? 2 : 4;
  if (samples.size() != std::size_t{height} * width * channels) throw std::invalid_argument("png_file: sample count");
  bytes rows;
  for (std::uint32_t y = 0; y < height; ++y) {
    rows.push_back(0);  // filter: none
    for (std::size_t i = 0; i < std::size_t{width} * channels; ++i) {
      const std::uint16_t v = samples[y * width * channels + i];
      if (bit_depth == 16) rows.push_back(static_cast<unsigned char>(v >> 8));
      rows.push_back(static_cast<unsigned char>(v & 0xFF));
    }
  }
  bytes png = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  const auto chunk = [&png](const char* type, const bytes& data) {
    append32_big_endian(png, static_cast<std::uint32_t>(data.size()));
    bytes typed(type, type + 4);
    typed.insert(typed.end(), data.begin(), data.end());
    png.insert(png.end(), typed.begin(), typed.end());
    append32_big_endian(png, crc32_of(typed));
  };
  bytes header;
  append32_big_endian(header, width);
  append32_big_endian(header, height);
  header.insert(header.end(), {bit_depth, colour_type, 0, 0, 0});
  chunk("IHDR", header);
  chunk("IDAT", deflated(rows, false));
  chunk("IEND", {});
  return png;
}

// The PNG `png` with its IHDR saying height x width at bit_depth, its CRC made to match: a header that
// lies about the data that follows.
inline bytes with_png_header(bytes png, std::uint32_t height, std::uint32_t width, unsigned char bit_depth) {
  // IHDR's data starts after the signature (8), the length (4) and the type (4); its CRC follows it.
  constexpr std::size_t data = 16, crc = 29;
  if (png.size() < crc + 4) throw std::invalid_argument("with_png_header: not a PNG");
  const auto put = [&png](std::size_t at, std::uint32_t v) {
    for (std::size_t k = 0; k < 4; ++k) png[at + k] = static_cast<unsigned char>(v >> (24 - 8 * k));
  };
  put(data, width);
  put(data + 4, height);
  png[data + 8] = bit_depth;
  put(crc, crc32_of(png.data() + 12, 17));
  return png;
}

}  // namespace testing
}  // namespace flowad
