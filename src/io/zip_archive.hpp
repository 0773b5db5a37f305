// The zip container of .npz files, as numpy writes it (PKWARE's APPNOTE.TXT): reading the central
// directory (zip64 included) and the members' bytes, stored or deflated (inflated with zlib), with
// bounds, size and CRC-32 checks; and laying out stored (uncompressed) archives for writing. What a
// member holds is the caller's business.
#pragma once

#include <cstddef>
#include <cstdint>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "io/byte_source.hpp"

namespace flowad {
inline namespace v0 {
namespace detail {

// One central-directory entry, zip64 values resolved.
struct zip_member {
  std::string name;  // as stored ("weight.npy")
  std::uint16_t method = 0;
  std::uint16_t flags = 0;
  std::uint32_t crc = 0;
  std::uint64_t compressed_size = 0;
  std::uint64_t size = 0;
  std::uint64_t local_offset = 0;
};

// The uncompressed bytes of one member; remaining() counts down from the size the central directory
// declares. Read them, then call finish(), which reads what is left and throws errc::bad_file unless
// the member is intact: its CRC-32 matches and, when deflated, the stream is sound, inflates to exactly
// the declared size and ends with the compressed data. After a parse error, finish() tells whether a
// damaged member is the cause (it throws) or the content is (it returns).
class zip_member_reader : public byte_source {
 public:
  virtual void finish() = 0;

 protected:
  using byte_source::byte_source;
};

// An archive open for reading. Every failure is a flowad::error naming the archive (and the member):
// errc::io_error when the file cannot be read, errc::bad_file when it is not a sound zip archive.
class zip_reader {
 public:
  // Opens the archive and reads its central directory.
  explicit zip_reader(std::string path);

  const std::string& path() const noexcept { return path_; }
  // In archive order.
  const std::vector<zip_member>& members() const noexcept { return members_; }
  // A reader of one of members(), valid while this object lives. One reader at a time: they share the
  // file. A deflated member that declares more than deflate can produce from its compressed size is
  // refused here, before anything is read or allocated.
  std::unique_ptr<zip_member_reader> open(const zip_member& member);

 private:
  std::string path_;
  std::ifstream file_;
  std::uint64_t cd_offset_ = 0;  // members' data lies before the central directory
  std::vector<zip_member> members_;
};

// A stored (uncompressed) archive laid out before anything is written: the sizes and CRC-32s of its
// members are known up front, so a writer streams local header, member bytes, ..., directory() and
// never seeks back. No zip64: archives of 4 GiB or 65535 members and more, and member names longer
// than 65535 bytes, are errc::invalid_argument naming `path`.
class stored_zip_layout {
 public:
  struct member {
    std::string name;
    std::uint64_t size = 0;
    std::uint32_t crc = 0;
  };
  stored_zip_layout(const std::string& path, std::vector<member> members);

  // The local header that precedes member i's bytes.
  std::string local_header(std::size_t i) const;
  // What follows the last member: the central directory and the end record.
  const std::string& directory() const noexcept { return directory_; }

 private:
  std::vector<member> members_;
  std::vector<std::uint64_t> offsets_;
  std::string directory_;
};

}  // namespace detail
}  // namespace v0
}  // namespace flowad
