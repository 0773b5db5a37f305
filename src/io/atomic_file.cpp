#include "io/atomic_file.hpp"

#include <atomic>
#include <cerrno>
#include <system_error>

#include <fcntl.h>
#include <unistd.h>

#include "flowad/error.hpp"

namespace flowad {
inline namespace v0 {
namespace detail {

namespace fs = std::filesystem;

namespace {

std::string reason(int code) { return std::generic_category().message(code); }

// Closes a descriptor on every path out.
class file_descriptor {
 public:
  explicit file_descriptor(int fd) noexcept : fd_(fd) {}
  ~file_descriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  file_descriptor(const file_descriptor&) = delete;
  file_descriptor& operator=(const file_descriptor&) = delete;
  int get() const noexcept { return fd_; }
  // close() reports delayed write errors (NFS), so the writer checks it; the descriptor is gone either way.
  int close() noexcept {
    const int status = ::close(fd_);
    fd_ = -1;
    return status;
  }

 private:
  int fd_;
};

// Writes everything, resuming after interrupted and partial writes; errno on failure, else 0.
int write_all(int fd, const std::uint8_t* data, std::size_t size) {
  while (size > 0) {
    const ssize_t written = ::write(fd, data, size);
    if (written < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    data += written;
    size -= static_cast<std::size_t>(written);
  }
  return 0;
}

int fsync_retrying(int fd) {
  while (::fsync(fd) != 0)
    if (errno != EINTR) return errno;
  return 0;
}

// Creates the temporary file exclusively: a name in use (a concurrent save, a leftover of a killed
// process whose PID came back) is skipped, never truncated.
std::pair<fs::path, int> create_temporary(const fs::path& folder, const std::string& prefix) {
  static std::atomic<std::uint64_t> counter{0};
  for (int attempt = 0;; ++attempt) {
    const fs::path temp = folder / (prefix + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd >= 0) return {temp, fd};
    if (errno != EEXIST || attempt == 1000) return {temp, -errno};
  }
}

}  // namespace

std::string temporary_file_prefix(const fs::path& path) { return "." + path.filename().string() + ".tmp-"; }

void replace_file_atomically(const fs::path& path, const std::vector<std::uint8_t>& bytes, const char* what) {
  const std::string failed = std::string("cannot save the ") + what + " to " + path.string() + ": ";
  const fs::path folder = path.has_parent_path() ? path.parent_path() : fs::path(".");
  std::error_code ec;
  if (!fs::is_directory(folder, ec)) throw error(errc::io_error, failed + "folder " + folder.string() + " does not exist");

  const auto [temp, fd_or_error] = create_temporary(folder, temporary_file_prefix(path));
  if (fd_or_error < 0)
    throw error(errc::io_error, failed + "cannot create the temporary file " + temp.string() + ": " + reason(-fd_or_error));
  file_descriptor file(fd_or_error);
  int status = write_all(file.get(), bytes.data(), bytes.size());
  if (status == 0) status = fsync_retrying(file.get());
  if (const int closed = file.close(); status == 0 && closed != 0) status = errno;
  if (status == 0 && ::rename(temp.c_str(), path.c_str()) != 0) status = errno;
  if (status != 0) {
    std::error_code ignored;
    fs::remove(temp, ignored);
    throw error(errc::io_error, failed + reason(status) + " (the previous file, if any, is unchanged)");
  }

  // The rename is in the folder's metadata: without this a power loss can bring back the old file (or,
  // for a new file, none). File systems that cannot sync a folder say EINVAL; they have nothing to flush.
  file_descriptor dir(::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir.get() < 0) return;  // a folder we may write but not read: the rename stands, unsynced
  status = fsync_retrying(dir.get());
  if (status != 0 && status != EINVAL)
    throw error(errc::io_error, std::string("the ") + what + " is saved at " + path.string() +
                                    ", but syncing its folder failed (" + reason(status) +
                                    "): it may not survive a power loss");
}

}  // namespace detail
}  // namespace v0
}  // namespace flowad
