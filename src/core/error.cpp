#include "flowad/error.hpp"

namespace flowad {
inline namespace v0 {

const char* to_string(errc code) noexcept {
  switch (code) {
    case errc::invalid_argument: return "invalid_argument";
    case errc::shape_mismatch: return "shape_mismatch";
    case errc::empty_input: return "empty_input";
    case errc::non_finite: return "non_finite";
    case errc::not_fitted: return "not_fitted";
    case errc::io_error: return "io_error";
    case errc::bad_file: return "bad_file";
    case errc::backend: return "backend";
    case errc::training_failed: return "training_failed";
  }
  return "unknown";
}

}  // namespace v0
}  // namespace flowad
