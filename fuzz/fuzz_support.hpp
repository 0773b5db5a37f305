// What the fuzz targets share. Every target defines LLVMFuzzerTestOneInput and lets only
// flowad::error out of the library: any other exception escapes the target, which libFuzzer reports as
// a crash and the replay driver (replay_main.cpp) as a failure, since the library promises to report
// every failure as a flowad::error.
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>

namespace flowad {
namespace fuzz {

// A folder of this process for inputs the library reads from files (images, .npz archives, folder
// trees), removed at exit. scripts/fuzz.sh points TMPDIR at /dev/shm: file round trips then cost
// microseconds.
inline const std::filesystem::path& scratch_folder() {
  static const std::filesystem::path folder = [] {
    const std::filesystem::path f =
        std::filesystem::temp_directory_path() / ("flowad_fuzz_" + std::to_string(::getpid()));
    std::filesystem::create_directories(f);
    std::atexit([] {
      std::error_code ignored;
      std::filesystem::remove_all(scratch_folder(), ignored);
    });
    return f;
  }();
  return folder;
}

// Writes the input to scratch_folder() / name, replacing what the previous input left there.
inline std::filesystem::path write_scratch_file(const std::string& name, const std::uint8_t* data, std::size_t size) {
  const std::filesystem::path path = scratch_folder() / name;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  out.close();
  if (!out) std::abort();  // the harness, not the library, failed: stop rather than fuzz nothing
  return path;
}

}  // namespace fuzz
}  // namespace flowad
