#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "flowad/io/npy.hpp"
#include "support/temp_folder.hpp"

using namespace flowad;
using flowad::testing::read_bytes;
using flowad::testing::temp_folder;
using flowad::testing::write_bytes;

namespace {

using bytes = std::vector<unsigned char>;

void append(bytes& b, const std::string& s) {
  b.insert(b.end(), s.begin(), s.end());
}
void append16(bytes& b, std::uint32_t v) {
  b.push_back(static_cast<unsigned char>(v & 0xFF));
  b.push_back(static_cast<unsigned char>((v >> 8) & 0xFF));
}
void append32(bytes& b, std::uint32_t v) {
  append16(b, v & 0xFFFF);
  append16(b, v >> 16);
}
void append64(bytes& b, std::uint64_t v) {
  append32(b, static_cast<std::uint32_t>(v));
  append32(b, static_cast<std::uint32_t>(v >> 32));
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
bytes npy_file(const std::string& dict, const bytes& payload, int major = 1, bool pad = true) {
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

bytes float_payload(const std::vector<float>& v) {
  bytes b;
  append_values(b, v);
  return b;
}

// The test's own CRC-32 (bitwise, no table) for the hand-built archives.
std::uint32_t crc32_of(const bytes& data) {
  std::uint32_t c = 0xFFFFFFFFu;
  for (unsigned char byte : data) {
    c ^= byte;
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
  }
  return ~c;
}

struct zip_member_spec {
  std::string name;
  bytes data;
  std::uint16_t method = 0;
  bool zip64_local = false;  // numpy's force_zip64: sizes 0xFFFFFFFF in the local header plus a zip64 extra
};

// A zip archive written by hand from the specification (APPNOTE.TXT), stored members.
bytes zip_file(const std::vector<zip_member_spec>& members) {
  bytes out, central;
  for (const zip_member_spec& m : members) {
    const std::uint32_t offset = static_cast<std::uint32_t>(out.size());
    const std::uint32_t crc = crc32_of(m.data);
    const auto size = static_cast<std::uint32_t>(m.data.size());
    append32(out, 0x04034b50u);
    append16(out, m.zip64_local ? 45 : 20);
    append16(out, 0);
    append16(out, m.method);
    append16(out, 0);
    append16(out, 0x21);
    append32(out, crc);
    append32(out, m.zip64_local ? 0xFFFFFFFFu : size);
    append32(out, m.zip64_local ? 0xFFFFFFFFu : size);
    append16(out, static_cast<std::uint32_t>(m.name.size()));
    append16(out, m.zip64_local ? 20 : 0);
    append(out, m.name);
    if (m.zip64_local) {
      append16(out, 0x0001);
      append16(out, 16);
      append64(out, size);
      append64(out, size);
    }
    out.insert(out.end(), m.data.begin(), m.data.end());

    append32(central, 0x02014b50u);
    append16(central, 20);
    append16(central, 20);
    append16(central, 0);
    append16(central, m.method);
    append16(central, 0);
    append16(central, 0x21);
    append32(central, crc);
    append32(central, size);
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

// The error thrown by f, which must be a flowad::error.
template <class F>
error thrown_by(F&& f) {
  try {
    f();
  } catch (const error& e) {
    return e;
  } catch (const std::exception& e) {
    FAIL("expected flowad::error, got " << e.what());
  }
  FAIL("expected flowad::error, nothing was thrown");
  return error(errc::invalid_argument, "unreachable");
}

void check_rejected(const std::string& path, errc code, const std::string& fragment) {
  const error e = thrown_by([&] { read_npy(path); });
  INFO(e.what());
  CHECK(e.code() == code);
  CHECK_THAT(e.what(), Catch::Contains(path));
  CHECK_THAT(e.what(), Catch::Contains(fragment, Catch::CaseSensitive::No));
}

std::vector<float> iota_values(std::size_t n, float scale = 0.25f) {
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = scale * static_cast<float>(i) - 3.0f;
  return v;
}

}  // namespace

TEST_CASE("npy float32 round trip keeps shape and values", "[npy]") {
  temp_folder dir;
  const std::vector<std::vector<index_t>> shapes = {{}, {7}, {2, 3}, {2, 3, 4, 5}, {0, 3}, {1, 1, 1, 1, 1, 1}};
  for (const auto& shape : shapes) {
    npy_array a;
    a.shape = shape;
    const auto n = static_cast<std::size_t>(a.numel());
    const std::vector<float> v = iota_values(n);
    a.data.assign(v.begin(), v.end());
    if (n > 1) a.data[1] = std::numeric_limits<float>::infinity();
    const std::string path = (dir / ("a" + a.shape_str() + ".npy")).string();
    write_npy(path, a);
    const bytes raw = read_bytes(path);
    REQUIRE(raw.size() >= 64);
    CHECK(std::memcmp(raw.data(), "\x93NUMPY\x01\x00", 8) == 0);
    const std::size_t header_end = 10 + (raw[8] | (raw[9] << 8));
    CHECK(header_end % 64 == 0);
    CHECK(raw[header_end - 1] == '\n');
    CHECK(raw.size() == header_end + 4 * n);
    const npy_array b = read_npy(path);
    CHECK(b.shape == shape);
    CHECK(b.dtype == "<f4");
    REQUIRE(b.data.size() == n);
    for (std::size_t i = 0; i < n; ++i) CHECK(b.data[i] == a.data[i]);
  }
  // Only the target remains: the temporary file was renamed.
  std::size_t files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
    CHECK(entry.path().extension() == ".npy");
    ++files;
  }
  CHECK(files == shapes.size());
}

TEST_CASE("npy feature maps round trip in either layout", "[npy]") {
  temp_folder dir;
  const shape4 s{2, 5, 3, 4};
  tensor nhwc(s, layout::nhwc);
  for (index_t i = 0; i < nhwc.numel(); ++i) nhwc.data()[i] = static_cast<float>(i) * 0.5f - 7.0f;
  const std::string path = (dir / "maps.npy").string();
  write_npy(path, nhwc.view());
  const npy_array raw = read_npy(path);
  CHECK(raw.shape == std::vector<index_t>{2, 5, 3, 4});
  // C order of N x C x H x W, whatever the tensor's layout.
  CHECK(raw.data[static_cast<std::size_t>(((1 * 5 + 2) * 3 + 1) * 4 + 3)] == nhwc(1, 2, 1, 3));
  for (layout l : {layout::nchw, layout::nhwc}) {
    const tensor t = read_npy_tensor(path, l);
    CHECK(t.shape() == s);
    CHECK(t.layout() == l);
    for (index_t n = 0; n < s.n; ++n)
      for (index_t c = 0; c < s.c; ++c)
        for (index_t h = 0; h < s.h; ++h)
          for (index_t w = 0; w < s.w; ++w) CHECK(t(n, c, h, w) == nhwc(n, c, h, w));
  }
  // A channel slice (strided view) is written densely.
  write_npy(path, nhwc.view().channels(1, 2));
  const tensor slice = read_npy_tensor(path);
  CHECK(slice.shape() == shape4{2, 2, 3, 4});
  CHECK(slice(1, 1, 2, 3) == nhwc(1, 2, 2, 3));

  npy_array not4d;
  not4d.shape = {3, 4};
  not4d.data.assign(12, 1.0f);
  const std::string p2 = (dir / "flat.npy").string();
  write_npy(p2, not4d);
  const error e = thrown_by([&] { read_npy_tensor(p2); });
  CHECK(e.code() == errc::bad_file);
  CHECK_THAT(e.what(), Catch::Contains(p2) && Catch::Contains("3x4"));
}

TEST_CASE("npy converts other dtypes and byte orders to float32", "[npy]") {
  temp_folder dir;
  auto write = [&](const std::string& name, const std::string& dict, const bytes& payload, int major = 1) {
    const std::string p = (dir / name).string();
    write_bytes(p, npy_file(dict, payload, major));
    return p;
  };
  {
    bytes p;
    append_values(p, std::vector<double>{1.5, -2.25, 1e-3});
    const npy_array a = read_npy(write("f8.npy", "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }", p));
    CHECK(a.dtype == "<f8");
    CHECK(a.data[0] == 1.5f);
    CHECK(a.data[1] == -2.25f);
    CHECK(a.data[2] == static_cast<float>(1e-3));
  }
  {
    bytes p;
    append_values(p, std::vector<float>{3.5f, -1.0f}, true);
    const npy_array a = read_npy(write("bef4.npy", "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", p));
    CHECK(a.dtype == ">f4");
    CHECK(a.data[0] == 3.5f);
    CHECK(a.data[1] == -1.0f);
  }
  {
    bytes p;
    append_values(p, std::vector<std::int64_t>{-5, 1 << 20});
    const npy_array a = read_npy(write("i8.npy", "{'descr': '<i8', 'fortran_order': False, 'shape': (2, 1), }", p));
    CHECK(a.shape == std::vector<index_t>{2, 1});
    CHECK(a.data[0] == -5.0f);
    CHECK(a.data[1] == 1048576.0f);
  }
  {
    bytes p;
    append_values(p, std::vector<std::int16_t>{-300, 7}, true);
    const npy_array a =
        read_npy(write("bei2.npy", "{\"descr\": \">i2\", \"fortran_order\": False, \"shape\": (2,)}", p));
    CHECK(a.data[0] == -300.0f);
    CHECK(a.data[1] == 7.0f);
  }
  {
    const npy_array a =
        read_npy(write("u1.npy", "{'descr': '|u1', 'fortran_order': False, 'shape': (3,), }", {0, 128, 255}));
    CHECK(a.data == aligned_vector<float>{0.0f, 128.0f, 255.0f});
    const npy_array b = read_npy(write("b1.npy", "{'descr': '|b1', 'fortran_order': False, 'shape': (2,), }", {1, 0}));
    CHECK(b.data == aligned_vector<float>{1.0f, 0.0f});
  }
  {
    bytes p;
    append_values(p, std::vector<std::uint16_t>{0x3C00, 0xC000, 0x0001, 0x7C00});  // 1, -2, 2^-24, inf
    const npy_array a = read_npy(write("f2.npy", "{'descr': '<f2', 'fortran_order': False, 'shape': (4,), }", p));
    CHECK(a.data[0] == 1.0f);
    CHECK(a.data[1] == -2.0f);
    CHECK(a.data[2] == std::ldexp(1.0f, -24));
    CHECK(std::isinf(a.data[3]));
  }
  {
    // Versions 2.0 and 3.0 have a 4-byte header length.
    for (int major : {2, 3}) {
      const npy_array a = read_npy(write("v" + std::to_string(major) + ".npy",
                                         "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }",
                                         float_payload({1.0f, 2.0f}), major));
      CHECK(a.data == aligned_vector<float>{1.0f, 2.0f});
    }
  }
  {
    bytes p;
    append_values(p, std::vector<double>{1e300});
    const std::string path = write("huge.npy", "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }", p);
    check_rejected(path, errc::bad_file, "float32 range");
  }
}

TEST_CASE("npy rejects malformed files and names them", "[npy]") {
  temp_folder dir;
  const bytes two_floats = float_payload({1.0f, 2.0f});
  auto file = [&](const std::string& name, const bytes& content) {
    const std::string p = (dir / name).string();
    write_bytes(p, content);
    return p;
  };
  auto dict_file = [&](const std::string& name, const std::string& dict, const bytes& payload = {}) {
    return file(name, npy_file(dict, payload.empty() ? float_payload({1.0f, 2.0f}) : payload));
  };

  check_rejected((dir / "missing.npy").string(), errc::io_error, "no such file");
  check_rejected(dir.path().string(), errc::io_error, "directory");
  check_rejected(file("empty.npy", {}), errc::bad_file, "too short");
  check_rejected(file("magic.npy", {'P', 'K', 3, 4, 0, 0, 0, 0, 0, 0, 0, 0}), errc::bad_file, "magic");
  {
    bytes b = npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", two_floats);
    b[6] = 4;
    check_rejected(file("version.npy", b), errc::bad_file, "version 4.0");
    b[6] = 1;
    b[7] = 1;
    check_rejected(file("minor.npy", b), errc::bad_file, "version 1.1");
  }
  {
    bytes b = npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", two_floats);
    b.resize(40);  // cut inside the header
    check_rejected(file("truncated_header.npy", b), errc::bad_file, "truncated");
    check_rejected(file("no_length.npy", bytes(b.begin(), b.begin() + 9)), errc::bad_file, "truncated");
  }
  check_rejected(dict_file("no_descr.npy", "{'fortran_order': False, 'shape': (2,), }"), errc::bad_file, "'descr'");
  check_rejected(dict_file("no_fortran.npy", "{'descr': '<f4', 'shape': (2,), }"), errc::bad_file, "'fortran_order'");
  check_rejected(dict_file("no_shape.npy", "{'descr': '<f4', 'fortran_order': False, }"), errc::bad_file, "'shape'");
  check_rejected(dict_file("extra_key.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}"),
                 errc::bad_file, "unexpected key");
  check_rejected(dict_file("duplicate.npy", "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,)}"),
                 errc::bad_file, "duplicate");
  check_rejected(dict_file("unclosed.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), "), errc::bad_file,
                 "not closed");
  check_rejected(dict_file("not_dict.npy", "[1, 2]"), errc::bad_file, "malformed");
  check_rejected(dict_file("trailing_text.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (2,)} x"),
                 errc::bad_file, "after the dictionary");
  check_rejected(dict_file("bool.npy", "{'descr': '<f4', 'fortran_order': 0, 'shape': (2,)}"), errc::bad_file,
                 "True or False");
  check_rejected(dict_file("not_tuple.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (2)}"), errc::bad_file,
                 "not a tuple");
  check_rejected(dict_file("negative.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (-2,)}"), errc::bad_file,
                 "non-negative");
  check_rejected(dict_file("fortran.npy", "{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }"), errc::bad_file,
                 "fortran");
  for (const char* descr : {"<c8", "|O", "<U4", "|V8", "<M8", "<f16", "=f4", "f4", "<q"}) {
    const std::string name = std::string("dtype_") + std::to_string(std::hash<std::string>()(descr)) + ".npy";
    check_rejected(dict_file(name, std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': (2,), }"),
                   errc::bad_file, "dtype");
  }
  check_rejected(dict_file("structured.npy", "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }"),
                 errc::bad_file, "structured");
  check_rejected(
      file("short_payload.npy", npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", two_floats)),
      errc::bad_file, "truncated");
  check_rejected(
      file("long_payload.npy", npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", two_floats)),
      errc::bad_file, "trailing");
  check_rejected(dict_file("overflow.npy",
                           "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4294967296), }"),
                 errc::bad_file, "overflow");
  check_rejected(
      dict_file("digits.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }"),
      errc::bad_file, "overflow");
  // Huge but representable: rejected by the size check before anything is allocated.
  check_rejected(dict_file("absurd.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776, 1024), }"),
                 errc::bad_file, "needs");
  {
    std::string dims = "(";
    for (int i = 0; i < 65; ++i) dims += "1, ";
    check_rejected(dict_file("many_dims.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': " + dims + "), }"),
                   errc::bad_file, "dimensions");
  }
  {
    // A header length beyond the file.
    bytes b = {0x93, 'N', 'U', 'M', 'P', 'Y', 2, 0, 0xFF, 0xFF, 0x0F, 0x00};
    append(b, "{'descr'");
    check_rejected(file("long_header.npy", b), errc::bad_file, "truncated");
  }
}

TEST_CASE("npz written by hand is read member by member", "[npy]") {
  temp_folder dir;
  const std::vector<float> a = iota_values(24), b = {42.0f};
  const bytes npy_a = npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, 4), }", float_payload(a));
  const bytes npy_b = npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (), }", float_payload(b));
  const std::string path = (dir / "hand.npz").string();
  write_bytes(path, zip_file({{"layer.weight.npy", npy_a, 0, false},
                              {"readme.txt", {'h', 'i'}, 0, false},
                              {"scalar.npy", npy_b, 0, true}}));

  CHECK(list_npz(path) == std::vector<std::string>{"layer.weight", "scalar"});
  const std::vector<npz_entry> all = read_npz(path);
  REQUIRE(all.size() == 2);
  CHECK(all[0].name == "layer.weight");
  CHECK(all[0].array.shape == std::vector<index_t>{2, 3, 4});
  CHECK(std::equal(a.begin(), a.end(), all[0].array.data.begin()));
  CHECK(all[1].name == "scalar");
  CHECK(all[1].array.shape.empty());
  CHECK(all[1].array.data[0] == 42.0f);

  CHECK(read_npz_member(path, "scalar").data[0] == 42.0f);
  CHECK(read_npz_member(path, "layer.weight.npy").shape == std::vector<index_t>{2, 3, 4});
  const error e = thrown_by([&] { read_npz_member(path, "bias"); });
  CHECK(e.code() == errc::bad_file);
  CHECK_THAT(e.what(), Catch::Contains(path) && Catch::Contains("bias.npy"));

  // A malformed .npy inside a valid archive names the archive and the member.
  const std::string bad_member = (dir / "bad_member.npz").string();
  write_bytes(
      bad_member,
      zip_file({{"x.npy", npy_file("{'descr': '<f4', 'fortran_order': True, 'shape': (1,)}", float_payload({1.0f})), 0,
                 false}}));
  const error f = thrown_by([&] { read_npz(bad_member); });
  CHECK_THAT(f.what(), Catch::Contains(bad_member) && Catch::Contains("x.npy") && Catch::Contains("Fortran"));
}

TEST_CASE("npz writer output reads back", "[npy]") {
  temp_folder dir;
  std::vector<npz_entry> entries(2);
  entries[0].name = "level1";
  entries[0].array.shape = {1, 2, 3, 3};
  const std::vector<float> v = iota_values(18);
  entries[0].array.data.assign(v.begin(), v.end());
  entries[1].name = "level2";
  entries[1].array.shape = {1, 4, 1, 1};
  entries[1].array.data = {1.0f, 2.0f, 3.0f, 4.0f};
  const std::string path = (dir / "maps.npz").string();
  write_npz(path, entries);
  const std::vector<npz_entry> back = read_npz(path);
  REQUIRE(back.size() == 2);
  for (std::size_t i = 0; i < 2; ++i) {
    CHECK(back[i].name == entries[i].name);
    CHECK(back[i].array.shape == entries[i].array.shape);
    CHECK(back[i].array.data == entries[i].array.data);
  }
  // The writer's bytes agree with the specification: the central directory CRC matches our own CRC.
  const bytes raw = read_bytes(path);
  REQUIRE(raw.size() > 30);
  CHECK((raw[0] == 'P' && raw[1] == 'K' && raw[2] == 3 && raw[3] == 4));
  const std::size_t name_len = raw[26] | (raw[27] << 8);
  const std::size_t size = raw[22] | (raw[23] << 8) | (raw[24] << 16) | (static_cast<std::size_t>(raw[25]) << 24);
  const bytes member(raw.begin() + 30 + static_cast<std::ptrdiff_t>(name_len),
                     raw.begin() + 30 + static_cast<std::ptrdiff_t>(name_len + size));
  const std::uint32_t stored_crc =
      raw[14] | (raw[15] << 8) | (raw[16] << 16) | (static_cast<std::uint32_t>(raw[17]) << 24);
  CHECK(stored_crc == crc32_of(member));

  entries[1].name = "level1";
  CHECK_THROWS_AS(write_npz(path, entries), error);
  entries[1].name = "a/b";
  CHECK_THROWS_AS(write_npz(path, entries), error);
  const error e = thrown_by([&] { write_npz((dir / "no_such_dir" / "x.npz").string(), {}); });
  CHECK(e.code() == errc::io_error);
  CHECK_THAT(e.what(), Catch::Contains("no_such_dir"));
}

TEST_CASE("npz rejects corrupt and unsupported archives", "[npy]") {
  temp_folder dir;
  const bytes member =
      npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", float_payload({1.0f, 2.0f}));
  const bytes good = zip_file({{"a.npy", member, 0, false}});
  // Offsets within `good`: local header 30 + 5 name bytes + member; then the central directory.
  const std::size_t cd_offset = 30 + 5 + member.size();
  const std::size_t eocd_offset = good.size() - 22;
  auto variant = [&](const std::string& name, const bytes& content) {
    const std::string p = (dir / name).string();
    write_bytes(p, content);
    return p;
  };
  auto check_bad = [&](const std::string& path, const std::string& fragment) {
    const error e = thrown_by([&] { read_npz(path); });
    INFO(e.what());
    CHECK(e.code() == errc::bad_file);
    CHECK_THAT(e.what(), Catch::Contains(path) && Catch::Contains(fragment, Catch::CaseSensitive::No));
  };
  REQUIRE(read_npz(variant("good.npz", good)).size() == 1);

  {
    bytes b = good;
    b[eocd_offset + 19] = 0x10;  // central directory offset far beyond the file
    check_bad(variant("cd_offset.npz", b), "outside the file");
  }
  {
    bytes b = good;
    b[eocd_offset + 10] = 200;  // 200 entries in a 51-byte directory
    b[eocd_offset + 8] = 200;
    check_bad(variant("entries.npz", b), "cannot fit");
  }
  {
    bytes b = good;
    b[cd_offset] = 'X';  // central directory signature
    check_bad(variant("cd_signature.npz", b), "bad signature");
  }
  {
    bytes b = good;
    b[cd_offset + 42] = 0x40;  // local header offset inside the central directory
    check_bad(variant("local_offset.npz", b), "outside the archive data");
  }
  {
    bytes b = good;
    b[cd_offset + 20] = 0xFF;  // compressed size
    b[cd_offset + 24] = 0xFF;  // size
    check_bad(variant("member_size.npz", b), "outside the archive data");
  }
  {
    bytes b = good;
    b[30 + 5 + member.size() - 1] ^= 0x01;  // flip a payload bit
    check_bad(variant("crc.npz", b), "CRC-32");
  }
  {
    bytes b = good;
    b[30] = 'b';  // local header name differs from the central directory's
    check_bad(variant("local_name.npz", b), "mismatch");
  }
  {
    bytes b = good;
    b.resize(b.size() - 5);  // end record cut
    check_bad(variant("truncated.npz", b), "end-of-central-directory");
  }
  check_bad(variant("not_zip.npz", member), "not an .npz");
  check_bad(variant("tiny.npz", {'P', 'K'}), "too short");
  check_bad(variant("deflated.npz", zip_file({{"a.npy", member, 8, false}})), "compressed .npz");
  check_bad(variant("bzip2.npz", zip_file({{"a.npy", member, 12, false}})), "compression method 12");
  check_bad(variant("duplicate.npz", zip_file({{"a.npy", member, 0, false}, {"a.npy", member, 0, false}})), "twice");
  const error missing = thrown_by([&] { read_npz((dir / "none.npz").string()); });
  CHECK(missing.code() == errc::io_error);
}
