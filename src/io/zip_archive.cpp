// Zip archives as .npz files use them. Reference: PKWARE's APPNOTE.TXT (local headers, central
// directory, zip64 end records and extra fields).
#include "io/zip_archive.hpp"

#include <zlib.h>

#include <algorithm>
#include <limits>
#include <new>
#include <set>

#include "flowad/error.hpp"
#include "io/bytes.hpp"

namespace flowad {
inline namespace v0 {
namespace detail {
namespace {

constexpr std::uint32_t sig_local = 0x04034b50u;
constexpr std::uint32_t sig_central = 0x02014b50u;
constexpr std::uint32_t sig_eocd = 0x06054b50u;
constexpr std::uint32_t sig_zip64_eocd = 0x06064b50u;
constexpr std::uint32_t sig_zip64_locator = 0x07064b50u;
constexpr std::size_t local_header_size = 30;
constexpr std::size_t central_header_size = 46;
constexpr std::size_t eocd_size = 22;
constexpr std::size_t zip64_eocd_size = 56;
constexpr std::size_t zip64_locator_size = 20;
constexpr std::size_t max_zip_comment = 0xFFFF;
constexpr std::uint16_t method_stored = 0;
constexpr std::uint16_t method_deflated = 8;
constexpr std::size_t drain_chunk_bytes = std::size_t{1} << 16;
constexpr std::size_t inflate_input_bytes = std::size_t{1} << 16;
// Deflate expands at most 1032:1 (a 258-byte match costs at least two bits), so a member that declares
// more uncompressed bytes than that lies about its size, or is a decompression bomb. Refusing it
// before reading bounds every allocation the member's content asks for.
constexpr std::uint64_t max_deflate_ratio = 1032;

[[noreturn]] void fail(errc code, const std::string& where, const std::string& what) {
  throw error(code, where + ": " + what);
}

void read_at(std::ifstream& f, const std::string& path, std::uint64_t offset, void* dst, std::size_t n) {
  f.clear();
  f.seekg(static_cast<std::streamoff>(offset));
  f.read(static_cast<char*>(dst), static_cast<std::streamsize>(n));
  if (!f || static_cast<std::size_t>(f.gcount()) != n)
    throw error(errc::io_error,
                path + ": read of " + std::to_string(n) + " bytes at offset " + std::to_string(offset) + " failed");
}

struct zip_directory {
  std::uint64_t cd_offset = 0;
  std::vector<zip_member> members;
};

zip_directory read_directory(std::ifstream& f, const std::string& path, std::uint64_t file_size) {
  auto bad = [&](const std::string& what) -> void {
    fail(errc::bad_file, path, "corrupt .npz (zip) archive: " + what);
  };
  if (file_size < eocd_size)
    fail(errc::bad_file, path, "not an .npz (zip) archive: too short (" + std::to_string(file_size) + " bytes)");

  // The end-of-central-directory record: the last 22 bytes unless the archive has a comment.
  const std::size_t tail_size =
      static_cast<std::size_t>(std::min<std::uint64_t>(file_size, eocd_size + max_zip_comment));
  const std::uint64_t tail_offset = file_size - tail_size;
  std::vector<std::uint8_t> tail(tail_size);
  read_at(f, path, tail_offset, tail.data(), tail_size);
  std::size_t eocd = std::string::npos;
  for (std::size_t i = tail_size - eocd_size + 1; i-- > 0;) {
    if (le32(&tail[i]) == sig_eocd && i + eocd_size + le16(&tail[i + 20]) == tail_size) {
      eocd = i;
      break;
    }
  }
  if (eocd == std::string::npos) {
    std::uint8_t head[4] = {0, 0, 0, 0};
    read_at(f, path, 0, head, 4);
    if (le32(head) != sig_local) fail(errc::bad_file, path, "not an .npz (zip) archive (bad signature)");
    bad("no end-of-central-directory record");
  }
  const std::uint8_t* e = &tail[eocd];
  const std::uint64_t eocd_offset = tail_offset + eocd;
  std::uint64_t disk = le16(e + 4), cd_disk = le16(e + 6), entries_here = le16(e + 8), entries = le16(e + 10);
  std::uint64_t cd_size = le32(e + 12), cd_offset = le32(e + 16);
  std::uint64_t cd_end_limit = eocd_offset;  // the central directory ends before the end records

  if (entries == 0xFFFF || entries_here == 0xFFFF || cd_size == 0xFFFFFFFFu || cd_offset == 0xFFFFFFFFu ||
      disk == 0xFFFF || cd_disk == 0xFFFF) {
    if (eocd_offset < zip64_locator_size) bad("zip64 markers without a zip64 locator");
    std::uint8_t loc[zip64_locator_size];
    read_at(f, path, eocd_offset - zip64_locator_size, loc, zip64_locator_size);
    if (le32(loc) != sig_zip64_locator) bad("zip64 markers without a zip64 locator");
    const std::uint64_t z64_offset = le64(loc + 8);
    if (z64_offset > eocd_offset - zip64_locator_size ||
        eocd_offset - zip64_locator_size - z64_offset < zip64_eocd_size)
      bad("the zip64 end record lies outside the file");
    std::uint8_t z[zip64_eocd_size];
    read_at(f, path, z64_offset, z, zip64_eocd_size);
    if (le32(z) != sig_zip64_eocd) bad("bad zip64 end record signature");
    disk = le32(z + 16);
    cd_disk = le32(z + 20);
    entries_here = le64(z + 24);
    entries = le64(z + 32);
    cd_size = le64(z + 40);
    cd_offset = le64(z + 48);
    cd_end_limit = z64_offset;
  }
  if (disk != 0 || cd_disk != 0 || entries_here != entries) bad("multi-volume archives are not supported");
  if (cd_offset > cd_end_limit || cd_size > cd_end_limit - cd_offset)
    bad("the central directory (offset " + std::to_string(cd_offset) + ", " + std::to_string(cd_size) +
        " bytes) lies outside the file");
  if (entries > cd_size / central_header_size)
    bad(std::to_string(entries) + " entries cannot fit a central directory of " + std::to_string(cd_size) + " bytes");

  std::vector<std::uint8_t> cd(static_cast<std::size_t>(cd_size));
  if (!cd.empty()) read_at(f, path, cd_offset, cd.data(), cd.size());
  zip_directory dir;
  dir.cd_offset = cd_offset;
  std::set<std::string> seen;
  std::size_t pos = 0;
  for (std::uint64_t i = 0; i < entries; ++i) {
    const std::string entry_where = "central directory entry " + std::to_string(i);
    if (cd.size() - pos < central_header_size) bad(entry_where + " is truncated");
    const std::uint8_t* c = &cd[pos];
    if (le32(c) != sig_central) bad(entry_where + " has a bad signature");
    zip_member m;
    m.flags = le16(c + 8);
    m.method = le16(c + 10);
    m.crc = le32(c + 16);
    m.compressed_size = le32(c + 20);
    m.size = le32(c + 24);
    const std::size_t name_len = le16(c + 28), extra_len = le16(c + 30), comment_len = le16(c + 32);
    const std::uint64_t disk_start = le16(c + 34);
    m.local_offset = le32(c + 42);
    if (cd.size() - pos - central_header_size < name_len + extra_len + comment_len) bad(entry_where + " is truncated");
    m.name.assign(reinterpret_cast<const char*>(c + central_header_size), name_len);
    // Zip64 extended information: the 64-bit values of the fields saturated above, in this order.
    const std::uint8_t* x = c + central_header_size + name_len;
    for (std::size_t xp = 0; xp + 4 <= extra_len;) {
      const std::uint16_t id = le16(x + xp), len = le16(x + xp + 2);
      if (xp + 4 + len > extra_len) bad(entry_where + " ('" + m.name + "') has a truncated extra field");
      if (id == 0x0001) {
        const std::uint8_t* v = x + xp + 4;
        std::size_t used = 0;
        auto take = [&](std::uint64_t& field) {
          if (used + 8 > len) bad(entry_where + " ('" + m.name + "') has a short zip64 field");
          field = le64(v + used);
          used += 8;
        };
        if (m.size == 0xFFFFFFFFu) take(m.size);
        if (m.compressed_size == 0xFFFFFFFFu) take(m.compressed_size);
        if (m.local_offset == 0xFFFFFFFFu) take(m.local_offset);
      }
      xp += 4 + len;
    }
    pos += central_header_size + name_len + extra_len + comment_len;
    if (disk_start != 0 && disk_start != 0xFFFF) bad("multi-volume archives are not supported");
    if (m.local_offset > cd_offset || m.compressed_size > cd_offset - m.local_offset)
      bad("member '" + m.name + "' (offset " + std::to_string(m.local_offset) + ", " +
          std::to_string(m.compressed_size) + " bytes) lies outside the archive data");
    if (!seen.insert(m.name).second) bad("member '" + m.name + "' appears twice");
    dir.members.push_back(std::move(m));
  }
  if (pos != cd.size()) bad("the central directory has " + std::to_string(cd.size() - pos) + " unexplained bytes");
  return dir;
}

// A stored member: its bytes as they lie in the file.
class stored_member final : public zip_member_reader {
 public:
  stored_member(std::ifstream& file, const std::string& where, const zip_member& m, std::uint64_t data_offset)
      : zip_member_reader(where), region_(file, where, data_offset, m.size), expected_crc_(m.crc) {}
  std::uint64_t remaining() const noexcept override { return region_.remaining(); }
  void read(void* dst, std::size_t n) override {
    region_.read(dst, n);
    crc_ = crc32(dst, n, crc_);
  }
  void finish() override {
    std::vector<std::uint8_t> rest(static_cast<std::size_t>(std::min<std::uint64_t>(remaining(), drain_chunk_bytes)));
    while (remaining() > 0)
      read(rest.data(), static_cast<std::size_t>(std::min<std::uint64_t>(remaining(), rest.size())));
    if (crc_ != expected_crc_) fail(errc::bad_file, where(), "CRC-32 mismatch (the member is corrupt)");
  }

 private:
  file_region region_;
  std::uint32_t expected_crc_;
  std::uint32_t crc_ = 0;
};

// A deflated member (method 8: raw deflate, no zlib header), inflated as it is read, so memory stays at
// one input chunk however large the member. Checks that the stream is sound, that it inflates to
// exactly the size the central directory declares and ends where the compressed data ends, and the
// CRC-32.
class deflated_member final : public zip_member_reader {
 public:
  deflated_member(std::ifstream& file, const std::string& path, const std::string& where, const zip_member& m,
                  std::uint64_t data_offset)
      : zip_member_reader(where),
        file_(file),
        path_(path),
        member_(m),
        next_offset_(data_offset),
        compressed_left_(m.compressed_size),
        input_(static_cast<std::size_t>(std::min<std::uint64_t>(m.compressed_size, inflate_input_bytes))) {
    const int rc = ::inflateInit2(&stream_, -MAX_WBITS);
    if (rc == Z_MEM_ERROR) throw std::bad_alloc();
    if (rc != Z_OK) fail(errc::io_error, where, "zlib's inflateInit2 failed (" + std::to_string(rc) + ")");
  }
  ~deflated_member() override { ::inflateEnd(&stream_); }
  deflated_member(const deflated_member&) = delete;
  deflated_member& operator=(const deflated_member&) = delete;

  std::uint64_t remaining() const noexcept override { return member_.size - produced_; }

  void read(void* dst, std::size_t n) override {
    const std::size_t got = inflate_into(static_cast<std::uint8_t*>(dst), n);
    crc_ = crc32(dst, got, crc_);
    produced_ += got;
    if (got < n)
      broken("the deflate stream ends after " + std::to_string(produced_) +
             " bytes but the central directory declares " + std::to_string(member_.size) +
             " (a wrong uncompressed size or corrupt data)");
  }

  void finish() override {
    if (failed_) return;  // the error this member threw is on its way
    std::vector<std::uint8_t> rest(static_cast<std::size_t>(std::min<std::uint64_t>(remaining(), drain_chunk_bytes)));
    while (remaining() > 0)
      read(rest.data(), static_cast<std::size_t>(std::min<std::uint64_t>(remaining(), rest.size())));
    std::uint8_t extra = 0;
    if (!ended_ && inflate_into(&extra, 1) > 0)
      broken("the deflate stream inflates to more than the " + std::to_string(member_.size) +
             " bytes the central directory declares (a wrong uncompressed size or corrupt data)");
    const std::uint64_t unused = stream_.avail_in + compressed_left_;
    if (unused > 0)
      broken(std::to_string(unused) + " of the " + std::to_string(member_.compressed_size) +
             " compressed bytes follow the end of the deflate stream (a wrong compressed size or corrupt data)");
    if (crc_ != member_.crc) broken("CRC-32 mismatch (the member is corrupt)");
  }

 private:
  [[noreturn]] void broken(const std::string& what) {
    failed_ = true;
    fail(errc::bad_file, where(), what);
  }

  void refill() {
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(compressed_left_, input_.size()));
    read_at(file_, path_, next_offset_, input_.data(), n);
    next_offset_ += n;
    compressed_left_ -= n;
    stream_.next_in = input_.data();
    stream_.avail_in = static_cast<uInt>(n);
  }

  // Inflates up to n bytes into dst; fewer only when the stream has ended.
  std::size_t inflate_into(std::uint8_t* dst, std::size_t n) {
    std::size_t produced = 0;
    while (produced < n && !ended_) {
      if (stream_.avail_in == 0 && compressed_left_ > 0) refill();
      const std::size_t room = std::min<std::size_t>(n - produced, std::numeric_limits<uInt>::max());
      stream_.next_out = dst + produced;
      stream_.avail_out = static_cast<uInt>(room);
      const int rc = ::inflate(&stream_, Z_NO_FLUSH);
      produced += room - stream_.avail_out;
      if (rc == Z_STREAM_END) {
        ended_ = true;
      } else if (rc == Z_BUF_ERROR) {
        // No progress was possible with room to write: the compressed data is used up mid-stream.
        broken("truncated deflate stream (its " + std::to_string(member_.compressed_size) +
               " compressed bytes end before the stream does, after " + std::to_string(produced_ + produced) +
               " of the " + std::to_string(member_.size) + " bytes declared)");
      } else if (rc == Z_MEM_ERROR) {
        throw std::bad_alloc();
      } else if (rc != Z_OK) {
        broken(std::string("corrupt deflate stream (") +
               (stream_.msg != nullptr ? stream_.msg : "zlib error " + std::to_string(rc)) + ")");
      }
    }
    return produced;
  }

  std::ifstream& file_;
  const std::string& path_;
  zip_member member_;
  std::uint64_t next_offset_;
  std::uint64_t compressed_left_;
  std::vector<std::uint8_t> input_;
  z_stream stream_{};
  std::uint64_t produced_ = 0;
  std::uint32_t crc_ = 0;
  bool ended_ = false;
  bool failed_ = false;
};

}  // namespace

zip_reader::zip_reader(std::string path) : path_(std::move(path)) {
  std::uint64_t size = 0;
  file_ = open_for_reading(path_, size);
  zip_directory dir = read_directory(file_, path_, size);
  cd_offset_ = dir.cd_offset;
  members_ = std::move(dir.members);
}

std::unique_ptr<zip_member_reader> zip_reader::open(const zip_member& m) {
  const std::string where = path_ + " (member '" + m.name + "')";
  if (m.flags & 0x1u) fail(errc::bad_file, where, "encrypted members are not supported");
  if (m.method != method_stored && m.method != method_deflated)
    fail(errc::bad_file, where,
         "unsupported zip compression method " + std::to_string(m.method) + " (only stored and deflated members)");
  if (m.method == method_stored && m.compressed_size != m.size)
    fail(errc::bad_file, where,
         "a stored member whose compressed size (" + std::to_string(m.compressed_size) + ") differs from its size (" +
             std::to_string(m.size) + ")");
  // No overflow: read_directory keeps compressed_size within the file.
  if (m.method == method_deflated && m.size > m.compressed_size * max_deflate_ratio)
    fail(errc::bad_file, where,
         "the central directory declares " + std::to_string(m.size) + " uncompressed bytes for " +
             std::to_string(m.compressed_size) + " compressed bytes, more than deflate can produce (at most " +
             std::to_string(max_deflate_ratio) + ":1): a wrong uncompressed size or a decompression bomb");
  std::uint8_t lh[local_header_size];
  if (cd_offset_ - m.local_offset < local_header_size) fail(errc::bad_file, where, "truncated local header");
  read_at(file_, path_, m.local_offset, lh, local_header_size);
  if (le32(lh) != sig_local) fail(errc::bad_file, where, "bad local header signature");
  const std::uint64_t name_len = le16(lh + 26), extra_len = le16(lh + 28);
  const std::uint64_t data_offset = m.local_offset + local_header_size + name_len + extra_len;
  if (data_offset > cd_offset_ || m.compressed_size > cd_offset_ - data_offset)
    fail(errc::bad_file, where, "the member data lies outside the archive data");
  std::string local_name(static_cast<std::size_t>(name_len), '\0');
  read_at(file_, path_, m.local_offset + local_header_size, local_name.data(), local_name.size());
  if (local_name != m.name)
    fail(errc::bad_file, where, "the local header names '" + local_name + "' (central directory mismatch)");
  if (m.method == method_deflated) return std::make_unique<deflated_member>(file_, path_, where, m, data_offset);
  return std::make_unique<stored_member>(file_, where, m, data_offset);
}

// ------------------------------------------------------------------------------------------------
stored_zip_layout::stored_zip_layout(const std::string& path, std::vector<member> members)
    : members_(std::move(members)) {
  std::uint64_t offset = 0;
  for (const member& m : members_) {
    if (m.name.size() > 0xFFFF) throw error(errc::invalid_argument, path + ": member name too long");
    offsets_.push_back(offset);
    offset += local_header_size + m.name.size() + m.size;
  }
  std::string& central = directory_;
  for (std::size_t i = 0; i < members_.size(); ++i) {
    const member& m = members_[i];
    put32(central, sig_central);
    put16(central, 20);  // made by: version 2.0
    put16(central, 20);  // needed: version 2.0
    put16(central, 0);   // flags
    put16(central, method_stored);
    put16(central, 0);             // time
    put16(central, (1 << 5) | 1);  // date 1980-01-01
    put32(central, m.crc);
    put32(central, static_cast<std::uint32_t>(m.size));
    put32(central, static_cast<std::uint32_t>(m.size));
    put16(central, static_cast<std::uint32_t>(m.name.size()));
    put16(central, 0);  // extra
    put16(central, 0);  // comment
    put16(central, 0);  // disk
    put16(central, 0);  // internal attributes
    put32(central, 0);  // external attributes
    put32(central, static_cast<std::uint32_t>(offsets_[i]));
    central += m.name;
  }
  if (offset + central.size() > 0xFFFFFFFFu || members_.size() > 0xFFFE)
    throw error(errc::invalid_argument,
                path + ": archives of 4 GiB or 65535 members and more need zip64, which the writer does not produce");
  const std::size_t central_size = central.size();
  put32(central, sig_eocd);
  put16(central, 0);
  put16(central, 0);
  put16(central, static_cast<std::uint32_t>(members_.size()));
  put16(central, static_cast<std::uint32_t>(members_.size()));
  put32(central, static_cast<std::uint32_t>(central_size));
  put32(central, static_cast<std::uint32_t>(offset));
  put16(central, 0);
}

std::string stored_zip_layout::local_header(std::size_t i) const {
  const member& m = members_.at(i);
  std::string local;
  put32(local, sig_local);
  put16(local, 20);
  put16(local, 0);
  put16(local, method_stored);
  put16(local, 0);
  put16(local, (1 << 5) | 1);
  put32(local, m.crc);
  put32(local, static_cast<std::uint32_t>(m.size));
  put32(local, static_cast<std::uint32_t>(m.size));
  put16(local, static_cast<std::uint32_t>(m.name.size()));
  put16(local, 0);
  local += m.name;
  return local;
}

}  // namespace detail
}  // namespace v0
}  // namespace flowad
