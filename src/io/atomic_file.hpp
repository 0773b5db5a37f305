// Crash-safe replacement of a file: whatever stops a save (an exception, a full disk, SIGKILL, a power
// loss), the file afterwards holds either its previous contents or the complete new ones.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace flowad {
inline namespace v0 {
namespace detail {

// Replaces `path` with `bytes`:
//   1. writes them to a new temporary file beside it, ".NAME.tmp-PID-N" (created exclusively, so it is
//      never a file that another save, or a leftover of a killed one, is using), and fsyncs it;
//   2. renames it over `path` (atomic within a file system);
//   3. fsyncs the folder, so that the rename itself survives a power loss.
// Any failure throws errc::io_error naming `path`, `what` ("model") and the cause, and removes the
// temporary file; `path` is then unchanged (except when only step 3 fails: the message says so). A
// process killed during step 1 or 2 leaves its temporary file behind: hidden, never read, never reused.
void replace_file_atomically(const std::filesystem::path& path, const std::vector<std::uint8_t>& bytes,
                             const char* what);

// The temporary-file prefix of replace_file_atomically for `path` (".NAME.tmp-"): what a leftover starts with.
std::string temporary_file_prefix(const std::filesystem::path& path);

}  // namespace detail
}  // namespace v0
}  // namespace flowad
