#include "flowad/pipeline/feature_model.hpp"

#include "flowad/detail/config_fields.hpp"

namespace flowad {
inline namespace v0 {

namespace {
// The model-file metadata key that carries the cells' grid of a feature-map model.
constexpr const char* cell_offsets_key = "features.cell_offsets";
}  // namespace

std::unique_ptr<detector> fit_feature_model(const feature_maps& train, const feature_model_options& options,
                                            const fit_options& fit, fit_report* report) {
  if (train.empty()) throw error(errc::empty_input, "fit_feature_model: no feature maps");
  std::vector<scale_shape> shapes;
  for (const const_view& v : train) shapes.push_back({v.c(), v.h(), v.w()});
  detector_config config = recommended_config(options.detector, shapes);
  config.update(options.settings);
  std::unique_ptr<detector> model = make_detector(options.detector, config);
  score_options so;
  so.cell_offsets = options.cell_offsets;
  model->check_score_options(so);  // before fitting, not after
  const fit_report r = model->fit(train, fit);
  if (report) *report = r;
  std::string offsets;
  for (double v : options.cell_offsets) offsets += (offsets.empty() ? "" : ",") + detail::number_text(v);
  model->set_metadata(cell_offsets_key, offsets);
  return model;
}

scores score_feature_model(const detector& model, const feature_maps& features) {
  score_options so;
  const auto it = model.metadata().find(cell_offsets_key);
  if (it != model.metadata().end())
    for (const std::string& item : detail::split(it->second, ',')) {
      double v = 0.0;
      if (!detail::parse_real(item, v)) throw error(errc::bad_file, std::string("the model's ") + cell_offsets_key + " is not a list of numbers");
      so.cell_offsets.push_back(v);
    }
  return model.score(features, so);
}

}  // namespace v0
}  // namespace flowad
