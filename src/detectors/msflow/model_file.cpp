// msflow's model files and its registration.
#include "detectors/common.hpp"
#include "detectors/msflow/model.hpp"
#include "detectors/registration.hpp"
#include "flowad/layers/invertible_1x1.hpp"
#include "flowad/layers/permute.hpp"

namespace flowad {
inline namespace v0 {

namespace {
std::vector<float> as_floats(const std::vector<index_t>& v) { return {v.begin(), v.end()}; }
}  // namespace

model_file_contents msflow::to_model_file() const {
  model_file_contents m = detail::model_file_header(*this);
  for (std::size_t s = 0; s < impl_->flows.size(); ++s) {
    sequential_flow& flow = *impl_->flows[s];
    for (std::size_t i = 0; i < flow.size(); ++i) {
      flow_layer& layer = flow.layer(i);
      const std::string prefix = msflow_detail::layer_prefix(cfg_, s, i);
      if (auto* p = dynamic_cast<permute*>(&layer)) m.tensors.push_back({prefix + "permutation", {p->channels()}, as_floats(p->permutation())});
      if (auto* inv = dynamic_cast<invertible_1x1*>(&layer)) {
        m.tensors.push_back({prefix + "permutation", {inv->channels()}, as_floats(inv->permutation())});
        m.tensors.push_back({prefix + "signs", {inv->channels()}, inv->signs()});
      }
      detail::store_parameters(m, prefix, layer.parameters());
    }
  }
  return m;
}

std::unique_ptr<msflow> msflow::from_model_file(const model_file_contents& m) {
  if (m.kind != "msflow") throw error(errc::bad_file, "model file holds a '" + m.kind + "' detector, not msflow");
  const msflow_config cfg = from_detector_config<msflow_config>(m.config, errc::bad_file);
  // Checked before anything is allocated for the configuration: a file can only ask for what it holds.
  const double values = detail::stored_values(m), expected = msflow_detail::size_of(cfg).stored;
  if (values != expected)
    throw error(errc::bad_file, "model file holds " + detail::number_text(values) + " values but its configuration needs " +
                                    detail::number_text(expected));
  // Built with the stored fixed permutations; every parameter is then overwritten. Anything the layers
  // reject (a permutation that is not one, a sign that is not ±1) is a damaged file.
  std::unique_ptr<msflow> model;
  try {
    model.reset(new msflow(cfg, &m));
  } catch (const error& e) {
    if (e.code() == errc::bad_file) throw;
    throw error(errc::bad_file, "model file does not describe a valid msflow: " + e.message());
  }
  std::size_t read = 0;
  for (std::size_t s = 0; s < model->impl_->flows.size(); ++s) {
    sequential_flow& flow = *model->impl_->flows[s];
    for (std::size_t i = 0; i < flow.size(); ++i) {
      flow_layer& layer = flow.layer(i);
      if (dynamic_cast<permute*>(&layer)) ++read;
      if (dynamic_cast<invertible_1x1*>(&layer)) read += 2;
      read += detail::restore_parameters(m, msflow_detail::layer_prefix(cfg, s, i), layer.parameters());
    }
  }
  detail::require_tensor_count(m, read);
  for (actnorm* norm : model->impl_->norms)
    if (norm) norm->mark_initialized();
  for (position_norm* norm : model->impl_->position_norms)
    if (norm) norm->mark_initialized();
  detail::restore_metadata(*model, m);
  model->fitted_ = true;
  return model;
}

namespace detail {

detector_registration msflow_registration() {
  detector_registration r;
  r.info = {"msflow", "MS-Flow: per-scale flows with hierarchical coupling over channel groups (the seed paper)", 0};
  r.recommended = [](const feature_geometry& g) { return to_detector_config(msflow_config::recommended(g)); };
  r.make = [](const detector_config& config) -> std::unique_ptr<detector> {
    return std::make_unique<msflow>(from_detector_config<msflow_config>(config));
  };
  r.load = [](const model_file_contents& contents) -> std::unique_ptr<detector> { return msflow::from_model_file(contents); };
  r.paper = [] { return to_detector_config(msflow_config::paper()); };
  return r;
}

}  // namespace detail
}  // namespace v0
}  // namespace flowad
