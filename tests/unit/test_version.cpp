#include <catch2/catch.hpp>
#include <string>

#include "flowad/version.hpp"

using namespace flowad;

static_assert(header_version().major == FLOWAD_VERSION_MAJOR && header_version().minor == FLOWAD_VERSION_MINOR &&
              header_version().patch == FLOWAD_VERSION_PATCH);

TEST_CASE("the library reports the version it was built as, and it matches these headers", "[version]") {
  const version_info library = version();
  CHECK(library == header_version());
  CHECK(std::string(library.string) == FLOWAD_VERSION_STRING);
  CHECK(std::string(library.string) ==
        std::to_string(library.major) + "." + std::to_string(library.minor) + "." + std::to_string(library.patch));
  CHECK(version_info{library.major, library.minor + 1, library.patch, library.string} != library);
}
