#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "flowad/io/npy.hpp"
#include "support/handmade_files.hpp"
#include "support/python_reference.hpp"
#include "support/temp_folder.hpp"

using namespace flowad;
using namespace flowad::testing;

namespace {

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

// Knuth's multiplicative hash of i, 24 bits (exact in float32): values that deflate cannot shrink
// much, so that a member spans many of the reader's input chunks.
std::vector<float> hashed_values(std::size_t n) {
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<float>(std::uint64_t{i} * 2654435761u % (1u << 24));
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
  // Bytes that are not a deflate stream where one is declared.
  check_bad(variant("not_deflate.npz", zip_file({{"a.npy", member, deflate_method, false, member}})), "deflate");
  check_bad(variant("bzip2.npz", zip_file({{"a.npy", member, 12, false}})), "compression method 12");
  check_bad(variant("duplicate.npz", zip_file({{"a.npy", member, 0, false}, {"a.npy", member, 0, false}})), "twice");
  const error missing = thrown_by([&] { read_npz((dir / "none.npz").string()); });
  CHECK(missing.code() == errc::io_error);
}

TEST_CASE("npz written by numpy's savez_compressed loads", "[npy][python]") {
  temp_folder dir;
  const std::string path = (dir / "compressed.npz").string();
  const testing::python_run run = testing::run_python(testing::python_require("numpy") + R"(import numpy as np
n = np.arange(50000, dtype=np.uint64)
np.savez_compressed(sys.argv[1],
    weights=np.arange(24, dtype=np.float32).reshape(2, 3, 4) * np.float32(0.25) - np.float32(3),
    doubles=np.linspace(-1.0, 1.0, 5),
    ints=np.arange(-3, 3, dtype=np.int64).reshape(3, 2),
    small=np.arange(4, dtype=np.int32) * 1000,
    flags=np.array([True, False, True]),
    scalar=np.float32(2.5),
    hashed=(n * np.uint64(2654435761) % np.uint64(1 << 24)).astype(np.float32).reshape(500, 100))
)",
                                                      {path});
  FLOWAD_REQUIRE_PYTHON(run);

  // numpy deflated every member (method 8 in the first local header).
  const bytes raw = read_bytes(path);
  REQUIRE(raw.size() > 30);
  CHECK((raw[8] | (raw[9] << 8)) == deflate_method);

  const std::vector<std::string> names = {"weights", "doubles", "ints", "small", "flags", "scalar", "hashed"};
  CHECK(list_npz(path) == names);
  const std::vector<npz_entry> all = read_npz(path);
  REQUIRE(all.size() == names.size());
  for (std::size_t i = 0; i < names.size(); ++i) CHECK(all[i].name == names[i]);

  const std::vector<float> weights = iota_values(24);
  CHECK(all[0].array.dtype == "<f4");
  CHECK(all[0].array.shape == std::vector<index_t>{2, 3, 4});
  CHECK(std::equal(weights.begin(), weights.end(), all[0].array.data.begin(), all[0].array.data.end()));
  CHECK(all[1].array.dtype == "<f8");
  CHECK(all[1].array.shape == std::vector<index_t>{5});
  CHECK(all[1].array.data == aligned_vector<float>{-1.0f, -0.5f, 0.0f, 0.5f, 1.0f});
  CHECK(all[2].array.dtype == "<i8");
  CHECK(all[2].array.shape == std::vector<index_t>{3, 2});
  CHECK(all[2].array.data == aligned_vector<float>{-3.0f, -2.0f, -1.0f, 0.0f, 1.0f, 2.0f});
  CHECK(all[3].array.dtype == "<i4");
  CHECK(all[3].array.data == aligned_vector<float>{0.0f, 1000.0f, 2000.0f, 3000.0f});
  CHECK(all[4].array.dtype == "|b1");
  CHECK(all[4].array.data == aligned_vector<float>{1.0f, 0.0f, 1.0f});
  CHECK(all[5].array.shape.empty());
  CHECK(all[5].array.data == aligned_vector<float>{2.5f});
  const std::vector<float> hashed = hashed_values(50000);
  CHECK(all[6].array.shape == std::vector<index_t>{500, 100});
  CHECK(std::equal(hashed.begin(), hashed.end(), all[6].array.data.begin(), all[6].array.data.end()));

  // One member on its own, by key or file name.
  const npy_array member = read_npz_member(path, "hashed.npy");
  CHECK(std::equal(hashed.begin(), hashed.end(), member.data.begin(), member.data.end()));
  CHECK(read_npz_member(path, "ints").data == all[2].array.data);
}

TEST_CASE("npz members deflated by zlib load, alone and beside stored members", "[npy]") {
  temp_folder dir;
  const std::vector<float> small = iota_values(12), large = hashed_values(40000);
  const bytes npy_small = npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }", float_payload(small));
  const bytes npy_large =
      npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (40000,), }", float_payload(large));
  const bytes npy_empty = npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (0, 3), }", {});
  // The large member spans several of the reader's 64 KiB input chunks.
  REQUIRE(deflated(npy_large).size() > 2 * 65536);

  const std::string only = (dir / "deflated.npz").string();
  write_bytes(only, zip_file({{"large.npy", npy_large, deflate_method}}));
  const npy_array a = read_npz_member(only, "large");
  CHECK(std::equal(large.begin(), large.end(), a.data.begin(), a.data.end()));

  const std::string mixed = (dir / "mixed.npz").string();
  write_bytes(mixed, zip_file({{"small.npy", npy_small, stored},
                               {"large.npy", npy_large, deflate_method},
                               {"empty.npy", npy_empty, deflate_method},
                               {"zip64.npy", npy_small, deflate_method, true},
                               {"last.npy", npy_small, stored}}));
  CHECK(list_npz(mixed) == std::vector<std::string>{"small", "large", "empty", "zip64", "last"});
  const std::vector<npz_entry> all = read_npz(mixed);
  REQUIRE(all.size() == 5);
  for (std::size_t i : {std::size_t{0}, std::size_t{3}, std::size_t{4}}) {
    CHECK(all[i].array.shape == std::vector<index_t>{3, 4});
    CHECK(std::equal(small.begin(), small.end(), all[i].array.data.begin(), all[i].array.data.end()));
  }
  CHECK(std::equal(large.begin(), large.end(), all[1].array.data.begin(), all[1].array.data.end()));
  CHECK(all[2].array.shape == std::vector<index_t>{0, 3});
  CHECK(all[2].array.data.empty());
  CHECK(read_npz_member(mixed, "last").data == all[0].array.data);
}

TEST_CASE("damaged deflated npz members are bad_file naming the archive and the member", "[npy]") {
  temp_folder dir;
  const bytes member =
      npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (2000,), }", float_payload(hashed_values(2000)));
  const bytes compressed = deflated(member);
  const bytes good = zip_file({{"a.npy", member, deflate_method}, {"b.npy", member, stored}});
  // The central directory entry of a.npy (the first): its CRC-32 at +16, uncompressed size at +24.
  const std::size_t eocd = good.size() - 22;
  const std::size_t cd = good[eocd + 16] | (good[eocd + 17] << 8) | (good[eocd + 18] << 16) |
                         (static_cast<std::size_t>(good[eocd + 19]) << 24);
  auto with_size = [&](std::uint32_t size) {
    bytes b = good;
    for (int k = 0; k < 4; ++k) b[cd + 24 + k] = static_cast<unsigned char>(size >> (8 * k));
    return b;
  };
  auto variant = [&](const std::string& name, const bytes& content) {
    const std::string p = (dir / name).string();
    write_bytes(p, content);
    return p;
  };
  auto check_bad = [&](const std::string& path, const std::string& fragment) {
    for (const auto& read :
         std::vector<std::function<void()>>{[&] { read_npz(path); }, [&] { read_npz_member(path, "a"); }}) {
      const error e = thrown_by(read);
      INFO(e.what());
      CHECK(e.code() == errc::bad_file);
      CHECK_THAT(e.what(), Catch::Contains(path) && Catch::Contains("member 'a.npy'") &&
                               Catch::Contains(fragment, Catch::CaseSensitive::No));
    }
  };
  REQUIRE(read_npz(variant("good.npz", good)).size() == 2);
  // The other member stays readable whatever happens to a.npy.
  const auto b_still_reads = [&](const std::string& path) { CHECK(read_npz_member(path, "b").data.size() == 2000); };

  {
    const bytes cut(compressed.begin(), compressed.begin() + static_cast<std::ptrdiff_t>(compressed.size() / 2));
    const std::string p = variant("truncated.npz", zip_file({{"a.npy", member, deflate_method, false, cut}}));
    check_bad(p, "truncated deflate stream");
    const bytes last_byte_cut(compressed.begin(), compressed.end() - 1);
    check_bad(variant("truncated_end.npz", zip_file({{"a.npy", member, deflate_method, false, last_byte_cut}})),
              "truncated deflate stream");
  }
  {
    // A flipped byte either breaks the stream or changes what it inflates to (a size or CRC-32 error).
    for (std::size_t at : {std::size_t{0}, compressed.size() / 3, compressed.size() / 2, compressed.size() - 2}) {
      bytes flipped = compressed;
      flipped[at] ^= 0x5A;
      const std::string p = variant("flipped_" + std::to_string(at) + ".npz",
                                    zip_file({{"a.npy", member, deflate_method, false, flipped}}));
      check_bad(p, "");
      CHECK_THAT(thrown_by([&] { read_npz(p); }).what(), Catch::Contains("deflate") || Catch::Contains("CRC-32"));
    }
  }
  {
    bytes extra = compressed;
    extra.insert(extra.end(), {1, 2, 3});
    check_bad(variant("trailing.npz", zip_file({{"a.npy", member, deflate_method, false, extra}})),
              "3 of the " + std::to_string(extra.size()) + " compressed bytes follow the end");
  }
  {
    const auto size = static_cast<std::uint32_t>(member.size());
    const std::string larger = variant("size_larger.npz", with_size(size + 1));
    check_bad(larger, "ends after " + std::to_string(size) + " bytes but the central directory declares " +
                          std::to_string(size + 1));
    b_still_reads(larger);
    check_bad(variant("size_smaller.npz", with_size(size - 1)),
              "inflates to more than the " + std::to_string(size - 1));
    // So short that the .npy header is cut: the size error, not the parser's, is reported.
    check_bad(variant("size_smaller_header.npz", with_size(10)), "inflates to more than the 10 bytes");
    // Beyond deflate's 1032:1: refused before anything is inflated or allocated.
    check_bad(variant("bomb.npz", with_size(0xFFFFFFF0u)), "more than deflate can produce");
  }
  {
    bytes b = good;
    b[cd + 16] ^= 0x01;
    const std::string p = variant("crc.npz", b);
    check_bad(p, "CRC-32 mismatch");
    b_still_reads(p);
  }
}
