// The model-file entries that record how `flowad fit --model auto` chose the detector (the keys are
// new in the metadata; files without them load as before):
//
//   selection.rule, selection.candidates (kinds, comma-separated), selection.chosen,
//   selection.images, selection.held_out_images, selection.holdout, selection.fold,
//   selection.defects_per_image, selection.defect_types, selection.seed       what was compared, and how
//   selection.<kind>.image_auroc, .pixel_auroc, .aupro, .figure (n/a: not applicable),
//   selection.<kind>.fit_seconds, .ms_per_image                                 each candidate's figures
#pragma once

#include <map>
#include <optional>
#include <string>

#include "flowad/detector.hpp"
#include "flowad/pipeline/auto_select.hpp"

namespace flowad {
inline namespace v0 {
namespace detail {

// Writes `selection` into a model's metadata (a copy of detector::metadata() that save() writes to the
// file), replacing any selection.* entries (none: erases them).
void write_selection_record(const std::optional<detector_selection>& selection,
                            std::map<std::string, std::string>& metadata);
// None without selection.* entries. Throws errc::bad_file naming `origin` and the entry for a missing or
// malformed one, and when selection.chosen is not a candidate or not the detector's kind.
std::optional<detector_selection> read_selection_record(const detector& model, const std::string& origin);

}  // namespace detail
}  // namespace v0
}  // namespace flowad
