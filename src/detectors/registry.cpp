// The registry: every kind through the list in detectors/registered.inc.
#include <algorithm>

#include "detectors/common.hpp"
#include "detectors/registration.hpp"

namespace flowad {
inline namespace v0 {

namespace {

const std::vector<detail::detector_registration>& registrations() {
  static const std::vector<detail::detector_registration> all{
#define FLOWAD_DETECTOR(kind) detail::kind##_registration(),
#include "detectors/registered.inc"
#undef FLOWAD_DETECTOR
  };
  return all;
}

std::string known_kinds() {
  std::string known;
  for (const auto& r : registrations()) known += (known.empty() ? "" : ", ") + r.info.kind;
  return known;
}

const detail::detector_registration* find(const std::string& kind) {
  for (const auto& r : registrations())
    if (r.info.kind == kind) return &r;
  return nullptr;
}

const detail::detector_registration& registration(const std::string& kind) {
  if (const auto* r = find(kind)) return *r;
  throw error(errc::invalid_argument, "unknown detector '" + kind + "' (known: " + known_kinds() + ")");
}

}  // namespace

const std::vector<detector_info>& detector_kinds() {
  static const std::vector<detector_info> infos = [] {
    std::vector<detector_info> out;
    for (const auto& r : registrations()) out.push_back(r.info);
    return out;
  }();
  return infos;
}

const detector_info& detector_kind(const std::string& kind) { return registration(kind).info; }

bool reads_image(const detector_info& kind, const detector_config& settings) {
  if (kind.reads_image) return true;
  const std::size_t eq = kind.reads_image_when.find('=');
  if (eq == std::string::npos) return false;
  const std::string* value = settings.find(kind.reads_image_when.substr(0, eq));
  return value && *value == kind.reads_image_when.substr(eq + 1);
}

detector_config recommended_config(const std::string& kind, const feature_geometry& geometry) {
  if (!geometry.strides.empty() && geometry.strides.size() != geometry.shapes.size())
    throw error(errc::invalid_argument, "feature_geometry has " + std::to_string(geometry.strides.size()) + " strides for " +
                                            std::to_string(geometry.shapes.size()) + " scales");
  return registration(kind).recommended(geometry);
}

detector_config recommended_config(const std::string& kind, const std::vector<scale_shape>& shapes) {
  feature_geometry geometry;
  geometry.shapes = shapes;
  return recommended_config(kind, geometry);
}

detector_config paper_config(const std::string& kind) {
  const detail::detector_registration& r = registration(kind);
  if (!r.paper) throw error(errc::invalid_argument, "detector '" + kind + "' has no paper configuration");
  return r.paper();
}

std::unique_ptr<detector> make_detector(const std::string& kind, const detector_config& config) {
  return registration(kind).make(config);
}

std::unique_ptr<detector> detector_from_model_file(const model_file_contents& contents) {
  const detail::detector_registration* r = find(contents.kind);
  if (!r)
    throw error(errc::bad_file, "the model file holds a '" + contents.kind +
                                    "' detector, which this flowad does not know (it knows: " + known_kinds() + ")");
  // The kind is the file's word: when the rest does not fit it (a damaged file, or another kind's
  // contents under this name), the message says which kind it was read as.
  try {
    if (std::none_of(contents.tensors.begin(), contents.tensors.end(), detail::is_extractor_tensor)) return r->load(contents);
    model_file_contents own = contents;
    own.tensors.erase(std::remove_if(own.tensors.begin(), own.tensors.end(), detail::is_extractor_tensor), own.tensors.end());
    return r->load(own);
  } catch (const error& e) {
    if (e.code() != errc::bad_file) throw;
    throw error(errc::bad_file, "the model file holds a '" + contents.kind + "' detector that cannot be rebuilt: " + e.message());
  }
}

std::unique_ptr<detector> load_detector(const std::filesystem::path& path) {
  const model_file_contents contents = read_model_file(path);
  try {
    return detector_from_model_file(contents);
  } catch (const error& e) {
    if (e.code() == errc::bad_file) throw error(errc::bad_file, path.string() + ": " + e.message());
    throw;
  }
}

}  // namespace v0
}  // namespace flowad
