#include "flowad/detector.hpp"
#include "flowad/flows/msflow.hpp"
#include "flowad/io/model_file.hpp"

namespace flowad {
inline namespace v0 {

std::unique_ptr<detector> load_detector(const std::filesystem::path& path) {
  const model_file_contents contents = read_model_file(path);
  if (contents.kind == "msflow") return msflow::from_contents(contents);
  throw error(errc::bad_file, path.string() + " holds a '" + contents.kind +
                                  "' detector, which this flowad does not know (it knows: msflow)");
}

}  // namespace v0
}  // namespace flowad
