#include "flowad/data/synthetic_defects.hpp"

#include <algorithm>
#include <utility>

#include "data/defect_drawing.hpp"

namespace flowad {
inline namespace v0 {

defect_sample add_synthetic_defect(const byte_image& image, std::uint64_t seed, const std::string& type) {
  return type.empty() ? add_synthetic_defect(image, seed,
                                             std::vector<std::string>(default_validation_defect_types.begin(),
                                                                      default_validation_defect_types.end()))
                      : add_synthetic_defect(image, seed, std::vector<std::string>{type});
}

defect_sample add_synthetic_defect(const byte_image& image, std::uint64_t seed,
                                   const std::vector<std::string>& choose_from) {
  constexpr index_t min_side = detail::min_defect_image_side;
  if (image.channels() != 3 || image.height() < min_side || image.width() < min_side)
    throw error(errc::invalid_argument, "add_synthetic_defect needs an RGB image of at least " +
                                            std::to_string(min_side) + "x" + std::to_string(min_side) + ", got " +
                                            std::to_string(image.height()) + "x" + std::to_string(image.width()) + "x" +
                                            std::to_string(image.channels()));
  if (choose_from.empty()) throw error(errc::invalid_argument, "add_synthetic_defect: no defect type to choose from");
  for (const std::string& kind : choose_from)
    if (std::find(validation_defect_types.begin(), validation_defect_types.end(), kind) ==
        validation_defect_types.end())
      throw error(errc::invalid_argument,
                  "unknown synthetic defect type '" + kind + "' (crack, displaced, patch, scratch or spot)");
  detail::rng r(detail::mix(seed ^ 0xD1B54A32D192ED03ull));
  // A single type is not drawn: it gets the same defect as when asked for by name.
  const std::string& kind = choose_from.size() == 1
                                ? choose_from.front()
                                : choose_from[static_cast<std::size_t>(r.below(choose_from.size()))];
  const double scale = static_cast<double>(std::min(image.height(), image.width())) / detail::reference_side;
  float_image drawn = to_float(image);
  byte_image mask = detail::draw_visible_defect(drawn, kind, r, scale);
  return {to_bytes(drawn), std::move(mask), kind};
}

}  // namespace v0
}  // namespace flowad
