// flowad version. The single source of truth: CMakeLists.txt reads these macros.
#pragma once

#define FLOWAD_VERSION_MAJOR 0
#define FLOWAD_VERSION_MINOR 1
#define FLOWAD_VERSION_PATCH 0

#define FLOWAD_DETAIL_STR2(x) #x
#define FLOWAD_DETAIL_STR(x) FLOWAD_DETAIL_STR2(x)
#define FLOWAD_VERSION_STRING                                                   \
  FLOWAD_DETAIL_STR(FLOWAD_VERSION_MAJOR)                                       \
  "." FLOWAD_DETAIL_STR(FLOWAD_VERSION_MINOR) "." FLOWAD_DETAIL_STR(FLOWAD_VERSION_PATCH)

namespace flowad {
inline namespace v0 {

struct version_info {
  int major;
  int minor;
  int patch;
  const char* string;

  // Compares the numbers only (the strings may live at different addresses).
  friend constexpr bool operator==(const version_info& a, const version_info& b) noexcept {
    return a.major == b.major && a.minor == b.minor && a.patch == b.patch;
  }
  friend constexpr bool operator!=(const version_info& a, const version_info& b) noexcept { return !(a == b); }
};

// The version of the headers the caller was compiled against.
constexpr version_info header_version() noexcept {
  return {FLOWAD_VERSION_MAJOR, FLOWAD_VERSION_MINOR, FLOWAD_VERSION_PATCH, FLOWAD_VERSION_STRING};
}

// The version of the library the program runs with, compiled into it (src/core/version.cpp). It differs
// from header_version() when a program is built against one install and linked or loaded with another.
version_info version() noexcept;

}  // namespace v0
}  // namespace flowad
