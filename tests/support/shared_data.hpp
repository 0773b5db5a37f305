// Where the real data and weights are: $FLOWAD_SHARED when set, otherwise the folder CMake found at
// configure time (FLOWAD_SHARED then, or ../shared beside the source root).
#pragma once

#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>

namespace flowad {
namespace testing {

inline std::filesystem::path shared_folder() {
  if (const char* env = std::getenv("FLOWAD_SHARED"); env && *env) return env;
  return FLOWAD_SHARED_DEFAULT;
}

// A file or folder below the shared folder; the test fails with a clear message when it is missing.
inline std::filesystem::path shared_path(const std::filesystem::path& relative) {
  const std::filesystem::path p = shared_folder() / relative;
  INFO("expected " << p << " (set FLOWAD_SHARED to the folder holding data/ and weights/)");
  REQUIRE(std::filesystem::exists(p));
  return p;
}

}  // namespace testing
}  // namespace flowad
