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
};

// The version of the headers the caller was compiled against.
constexpr version_info version() noexcept {
  return {FLOWAD_VERSION_MAJOR, FLOWAD_VERSION_MINOR, FLOWAD_VERSION_PATCH, FLOWAD_VERSION_STRING};
}

}  // namespace v0
}  // namespace flowad
