// Compiled into the library so that version() reports the library, whatever headers the caller used.
#include "flowad/version.hpp"

namespace flowad {
inline namespace v0 {

version_info version() noexcept {
  return header_version();
}

}  // namespace v0
}  // namespace flowad
