// The one exception type of flowad.
#pragma once

#include <stdexcept>
#include <string>

namespace flowad {
inline namespace v0 {

// What went wrong, stable across versions (values are never reused).
enum class errc {
  invalid_argument = 1,  // a value outside its documented domain
  shape_mismatch = 2,    // tensors whose shapes do not fit together
  empty_input = 3,       // a zero-sized tensor or an empty set
  non_finite = 4,        // NaN or Inf where the computation cannot proceed
  not_fitted = 5,        // a model used before fit() or load()
  io_error = 6,          // a file that cannot be opened, read or written
  bad_file = 7,          // a file that is truncated, corrupt, foreign or of an unsupported version
  backend = 8,           // oneDNN reported a failure
  training_failed = 9,   // optimisation could not make progress
};

// Short, stable name of a code ("shape_mismatch").
const char* to_string(errc code) noexcept;

// Every failure flowad reports is a flowad::error: a code and an owned message.
class error : public std::runtime_error {
 public:
  error(errc code, const std::string& message)
      : std::runtime_error("flowad: " + message), code_(code), message_(message) {}

  errc code() const noexcept { return code_; }
  // The message without what()'s "flowad: " prefix, for wrapping into another error.
  const std::string& message() const noexcept { return message_; }

 private:
  errc code_;
  std::string message_;
};

}  // namespace v0
}  // namespace flowad
