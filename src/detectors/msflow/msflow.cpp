// msflow: fitting (data-dependent input normalisation, then the shared trainer) and scoring.
#include "flowad/detectors/msflow.hpp"

#include <algorithm>

#include "detectors/common.hpp"
#include "detectors/msflow/model.hpp"
#include "flowad/scoring/latent.hpp"
#include "flowad/train/nll.hpp"
#include "flowad/train/trainer.hpp"

namespace flowad {
inline namespace v0 {

void msflow::impl::build(const msflow_config& cfg, const model_file_contents* stored) {
  streams = msflow_streams(cfg);
  for (std::size_t k = 0; k < streams.size(); ++k) {
    flows.push_back(msflow_detail::build_flow(cfg, k, stored));
    sequential_flow& flow = *flows.back();
    const std::size_t first = streams[k].position_relative ? 1 : 0;
    position_norms.push_back(first ? &dynamic_cast<position_norm&>(flow.layer(0)) : nullptr);
    norms.push_back(cfg.input_normalization ? &dynamic_cast<actnorm&>(flow.layer(first)) : nullptr);
  }
}

std::vector<parameter*> msflow::impl::parameters() {
  std::vector<parameter*> all;
  for (auto& f : flows) {
    const auto ps = f->parameters();
    all.insert(all.end(), ps.begin(), ps.end());
  }
  return all;
}

std::vector<parameter*> msflow::impl::trained_parameters() {
  std::vector<parameter*> trained;
  for (parameter* p : parameters()) {
    const bool normalisation = std::any_of(norms.begin(), norms.end(), [p](actnorm* a) {
      return a && (p == &a->bias() || p == &a->log_scale());
    }) || std::any_of(position_norms.begin(), position_norms.end(), [p](position_norm* a) {
      return a && (p == &a->mean() || p == &a->scale());
    });
    if (!normalisation) trained.push_back(p);
  }
  return trained;
}

msflow::msflow(const msflow_config& cfg) : msflow(cfg, nullptr) {}

msflow::msflow(const msflow_config& cfg, const model_file_contents* stored) : cfg_(cfg), impl_(std::make_unique<impl>()) {
  cfg_.validate();
  impl_->build(cfg_, stored);
}

msflow::~msflow() = default;

std::vector<const parameter*> msflow::parameters() const {
  const std::vector<parameter*> ps = impl_->parameters();
  return {ps.begin(), ps.end()};
}

void msflow::transform(const feature_maps& features, std::vector<tensor>& z, std::vector<double>& logdet) const {
  if (!fitted_) throw error(errc::not_fitted, "msflow::transform called before fit() or load()");
  const index_t n = detail::check_features(features, cfg_.scales, "features");
  auto ws = impl_->pool.acquire();
  z.resize(impl_->flows.size());
  logdet.assign(static_cast<std::size_t>(n), 0.0);
  for (std::size_t k = 0; k < impl_->flows.size(); ++k) {
    const const_view& in = features[impl_->streams[k].scale];
    z[k].resize(in.shape(), layout::nhwc);
    impl_->flows[k]->forward(in, z[k].view(), logdet, *ws);
  }
}

void msflow::score(const feature_maps& features, const score_options& options, scores& out) const {
  if (!fitted_) throw error(errc::not_fitted, "msflow::score called before fit() or load()");
  const index_t n = detail::check_features(features, cfg_.scales, "features");
  detail::check_score_options(options, cfg_.scales.size());
  const index_t map_h = detail::map_height(options, cfg_.scales), map_w = detail::map_width(options, cfg_.scales);
  double dims = 0.0;
  for (const msflow_stream& stream : impl_->streams) {
    const scale_shape& s = cfg_.scales[stream.scale];
    dims += static_cast<double>(s.channels * s.height * s.width);
  }

  out.image.resize(static_cast<std::size_t>(n));
  out.maps.resize({n, 1, map_h, map_w}, layout::nchw);

  auto ws = impl_->pool.acquire();
  auto& st = ws->state<impl::score_state>(impl_->score_state_id);
  const std::size_t scales = cfg_.scales.size(), flows = impl_->flows.size();
  st.z.resize(flows);
  st.scale_maps.resize(flows);
  st.map_views.resize(scales);

  for (index_t start = 0; start < n; start += options.batch_size) {
    const index_t count = std::min(options.batch_size, n - start);
    st.logdet.assign(static_cast<std::size_t>(count), 0.0);
    st.squares.assign(static_cast<std::size_t>(count), 0.0);
    for (std::size_t s = 0; s < flows; ++s) {  // s: the flow; its map is the scale's until paired below
      const const_view in = features[impl_->streams[s].scale].batch(start, count);
      st.z[s].resize(in.shape(), layout::nhwc);
      st.scale_maps[s].resize({count, 1, in.h(), in.w()}, layout::nchw);
      impl_->flows[s]->forward(in, st.z[s].view(), st.logdet, *ws);
      latent_map(st.z[s].view(), st.scale_maps[s].view());
      if (cfg_.image_score == score_aggregation::mean) add_squared_norms(st.z[s].view(), st.squares);
    }
    for (std::size_t k = scales; k < flows; ++k) {  // a paired scale's map: the mean of its two flows' maps
      float* first = st.scale_maps[impl_->streams[k].scale].data();
      const float* second = st.scale_maps[k].data();
      for (index_t i = 0, e = st.scale_maps[k].numel(); i < e; ++i) first[i] = 0.5f * (first[i] + second[i]);
    }
    for (std::size_t s = 0; s < scales; ++s) st.map_views[s] = st.scale_maps[s].cview();
    const view maps = out.maps.view().batch(start, count);
    combine_maps(span<const const_view>(st.map_views.data(), st.map_views.size()), maps, map_combination::mean, st.maps,
                 span<const double>(options.cell_offsets.data(), options.cell_offsets.size()));
    span<double> image(out.image.data() + start, static_cast<std::size_t>(count));
    if (cfg_.image_score == score_aggregation::mean) {
      // CS-Flow's image score: mean z²/2 over every dimension of every flow.
      for (index_t i = 0; i < count; ++i) image[static_cast<std::size_t>(i)] = 0.5 * st.squares[static_cast<std::size_t>(i)] / dims;
    } else {
      image_scores(maps, cfg_.image_score, image, cfg_.top_k_fraction, st.top_k_scratch);
    }
  }
}

fit_report msflow::fit(const feature_maps& train, const fit_options& options) {
  const index_t n = detail::check_features(train, cfg_.scales, "training features");
  cfg_.training.validate();

  // Data-dependent input normalisation over the whole training set: position_norm from the features,
  // then the actnorm behind it from what the position_norm makes of them.
  const std::size_t flow_count = impl_->flows.size();
  {
    workspace init_ws;
    tensor standardised;
    std::vector<double> unused(static_cast<std::size_t>(n));
    for (std::size_t k = 0; k < flow_count; ++k) {
      const const_view& features = train[impl_->streams[k].scale];
      const_view normalised_input = features;
      if (position_norm* p = impl_->position_norms[k]) {
        p->initialize(features);
        standardised.resize(features.shape(), layout::nhwc);
        p->forward(features, standardised.view(), unused, init_ws);
        normalised_input = standardised.cview();
      }
      if (impl_->norms[k]) impl_->norms[k]->initialize(normalised_input);
    }
  }

  std::vector<flow_layer*> flows;
  for (auto& f : impl_->flows) flows.push_back(f.get());
  nll_objective objective(flows);
  std::vector<tensor> batch;
  std::vector<const_view> flow_inputs(flow_count);

  training_problem problem;
  problem.name = "msflow::fit";
  problem.samples = n;
  problem.trained = impl_->trained_parameters();
  problem.with_gradients = impl_->parameters();
  problem.step = [&](span<const index_t> samples, workspace& ws) {
    gather_samples(train, samples, batch);
    for (std::size_t k = 0; k < flow_count; ++k) flow_inputs[k] = batch[impl_->streams[k].scale].cview();
    return objective.forward_backward(flow_inputs, ws);
  };
  fit_report report = flowad::train(problem, cfg_.training, options);
  fitted_ = true;
  return report;
}

}  // namespace v0
}  // namespace flowad
