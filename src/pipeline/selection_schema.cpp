#include "pipeline/selection_schema.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "flowad/detail/config_fields.hpp"

namespace flowad {
inline namespace v0 {
namespace detail {

namespace {

constexpr const char* prefix = "selection.";
constexpr const char* not_applicable = "n/a";

std::string metric(double v) { return std::isfinite(v) ? number_text(v) : not_applicable; }

// Reads selection.* entries, throwing errc::bad_file naming the file and the entry.
class entries {
 public:
  entries(const detector& model, const std::string& origin) : m_(model.metadata()), origin_(origin) {}

  const std::string& text(const std::string& key) const {
    const auto it = m_.find(prefix + key);
    if (it == m_.end()) throw error(errc::bad_file, origin_ + ": the model file lacks the entry '" + prefix + key + "'");
    return it->second;
  }
  [[noreturn]] void fail(const std::string& key, const std::string& what) const {
    throw error(errc::bad_file, origin_ + ": the entry '" + prefix + key + "' = '" + text(key) + "' " + what);
  }
  template <class T>
  T value(const std::string& key) const {
    const std::string& t = text(key);
    T out{};
    try {
      parse_value(errc::bad_file, prefix + key, t, out);
    } catch (const error& e) {
      throw error(errc::bad_file, origin_ + ": " + e.message());
    }
    return out;
  }
  // A finite number in [lo, hi], or NaN for "n/a" when allowed.
  double number(const std::string& key, double lo, double hi, bool may_be_na = false) const {
    if (may_be_na && text(key) == not_applicable) return std::numeric_limits<double>::quiet_NaN();
    const double v = value<double>(key);
    if (v < lo || v > hi) fail(key, "must be in [" + number_text(lo) + ", " + number_text(hi) + "]");
    return v;
  }

 private:
  const std::map<std::string, std::string>& m_;
  const std::string& origin_;
};

}  // namespace

void write_selection_record(const std::optional<detector_selection>& selection,
                            std::map<std::string, std::string>& metadata) {
  for (auto it = metadata.begin(); it != metadata.end();)
    it = it->first.compare(0, std::char_traits<char>::length(prefix), prefix) == 0 ? metadata.erase(it) : std::next(it);
  if (!selection) return;
  const detector_selection& s = *selection;
  const auto set = [&](const std::string& key, const std::string& value) { metadata[prefix + key] = value; };
  std::vector<std::string> kinds;
  for (const candidate_figures& c : s.candidates) kinds.push_back(c.kind);
  set("rule", s.rule);
  set("candidates", join(kinds, ','));
  set("chosen", s.chosen);
  set("images", std::to_string(s.images));
  set("held_out_images", std::to_string(s.held_out_images));
  set("holdout", number_text(s.validation.holdout));
  set("fold", std::to_string(s.validation.fold));
  set("defects_per_image", std::to_string(s.validation.defects_per_image));
  set("defect_types", join(s.validation.defect_types, ','));
  set("seed", std::to_string(s.validation.seed));
  for (const candidate_figures& c : s.candidates) {
    set(c.kind + ".image_auroc", metric(c.image_auroc));
    set(c.kind + ".pixel_auroc", metric(c.pixel_auroc));
    set(c.kind + ".aupro", metric(c.aupro));
    set(c.kind + ".figure", metric(c.figure));
    set(c.kind + ".fit_seconds", number_text(c.fit_seconds));
    set(c.kind + ".ms_per_image", number_text(c.ms_per_image));
  }
}

std::optional<detector_selection> read_selection_record(const detector& model, const std::string& origin) {
  const auto& m = model.metadata();
  const auto first = m.lower_bound(prefix);
  if (first == m.end() || first->first.compare(0, std::char_traits<char>::length(prefix), prefix) != 0) return std::nullopt;
  const entries e(model, origin);
  detector_selection s;
  s.rule = e.text("rule");
  s.chosen = e.text("chosen");
  s.images = e.value<std::size_t>("images");
  s.held_out_images = e.value<std::size_t>("held_out_images");
  s.validation.holdout = e.number("holdout", 0.0, 1.0);
  s.validation.fold = e.value<int>("fold");
  s.validation.defects_per_image = e.value<int>("defects_per_image");
  s.validation.defect_types = split(e.text("defect_types"), ',');
  s.validation.seed = e.value<std::uint64_t>("seed");
  const std::vector<std::string> kinds = split(e.text("candidates"), ',');
  if (kinds.empty()) e.fail("candidates", "names no detector");
  for (const std::string& kind : kinds) {
    if (kind.empty()) e.fail("candidates", "is not a comma-separated list of detector kinds");
    candidate_figures c;
    c.kind = kind;
    c.config.detector.clear();  // not recorded: the detector's own configuration is the chosen one's
    c.image_auroc = e.number(kind + ".image_auroc", 0.0, 1.0, true);
    c.pixel_auroc = e.number(kind + ".pixel_auroc", 0.0, 1.0, true);
    c.aupro = e.number(kind + ".aupro", 0.0, 1.0, true);
    c.figure = e.number(kind + ".figure", 0.0, 1.0, true);
    c.fit_seconds = e.number(kind + ".fit_seconds", 0.0, std::numeric_limits<double>::max());
    c.ms_per_image = e.number(kind + ".ms_per_image", 0.0, std::numeric_limits<double>::max());
    s.candidates.push_back(std::move(c));
  }
  if (std::none_of(kinds.begin(), kinds.end(), [&](const std::string& k) { return k == s.chosen; }))
    e.fail("chosen", "is not among 'selection.candidates' = '" + e.text("candidates") + "'");
  if (s.chosen != model.kind()) e.fail("chosen", std::string("is not the file's detector, '") + model.kind() + "'");
  return s;
}

}  // namespace detail

std::optional<detector_selection> recorded_selection(const detector& model, const std::string& origin) {
  return detail::read_selection_record(model, origin);
}

}  // namespace v0
}  // namespace flowad
