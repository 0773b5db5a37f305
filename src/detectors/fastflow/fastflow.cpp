// FastFlow: configuration, the flows, training (through the shared trainer), scoring, model files and
// registration.
#include "flowad/detectors/fastflow.hpp"

#include <algorithm>
#include <cmath>

#include "detectors/common.hpp"
#include "detectors/registration.hpp"
#include "flowad/detail/config_fields.hpp"
#include "flowad/detail/random.hpp"
#include "flowad/detail/workspace_pool.hpp"
#include "flowad/io/model_file.hpp"
#include "flowad/layers/all_in_one_block.hpp"
#include "flowad/layers/sequential_flow.hpp"
#include "flowad/nn/layer_norm.hpp"
#include "flowad/scoring/anomaly_map.hpp"
#include "flowad/scoring/latent.hpp"
#include "flowad/train/nll.hpp"
#include "flowad/train/trainer.hpp"

namespace flowad {
inline namespace v0 {

// ------------------------------------------------------------------------------------------------
// Configuration

training_options fastflow_config::default_training() {
  // gathierry/FastFlow: Adam(lr 1e-3, weight decay 1e-5) with PyTorch's other defaults, batch 32, no
  // schedule, no clipping (anomalib: gradient_clip_val 0).
  training_options t;
  t.epochs = default_epochs;
  t.batch_size = 32;
  t.optimizer.learning_rate = 1e-3f;
  t.optimizer.eps = 1e-8f;
  t.optimizer.weight_decay = 1e-5f;
  t.max_grad_norm = 0.0;
  t.schedule.kind = lr_schedule::constant;
  return t;
}

fastflow_config fastflow_config::recommended(std::vector<scale_shape> scales) {
  fastflow_config cfg;
  cfg.scales = std::move(scales);
  return cfg;
}

void fastflow_config::validate() const {
  const auto fail = [](const std::string& what) { throw error(errc::invalid_argument, "fastflow_config: " + what); };
  if (scales.empty() || scales.size() > 16) fail("needs 1 to 16 scales, got " + std::to_string(scales.size()));
  for (const scale_shape& s : scales)
    if (s.channels < 2 || s.height <= 0 || s.width <= 0 || s.channels > (1 << 16) || s.height > (1 << 14) || s.width > (1 << 14))
      fail("scale shapes must have at least 2 channels and plausible sizes, got " + to_config_text(scales));
  if (blocks <= 0 || blocks > 4096) fail("blocks must be in [1, 4096], got " + std::to_string(blocks));
  if (!(hidden_ratio > 0.0 && hidden_ratio <= 64.0)) fail("hidden_ratio must be in (0, 64]");
  for (const scale_shape& s : scales)
    if (static_cast<index_t>(hidden_ratio * static_cast<double>(s.channels - s.channels / 2)) < 1)
      fail("hidden_ratio gives a subnet of no channels for " + std::to_string(s.channels) + " channels");
  if (clamp.kind != clamp_kind::none && !(clamp.alpha > 0.0f && std::isfinite(clamp.alpha)))
    fail("clamp_alpha must be positive and finite");
  if (!(top_k_fraction > 0.0 && top_k_fraction <= 1.0)) fail("score.top_k_fraction must be in (0, 1]");
  training.validate();
}

// ------------------------------------------------------------------------------------------------
// The model

namespace {

// Subnet widths: FrEIA's AllInOneBlock conditions the second half on the first, C − C/2 channels.
index_t hidden_of(const fastflow_config& cfg, const scale_shape& s) {
  return static_cast<index_t>(cfg.hidden_ratio * static_cast<double>(s.channels - s.channels / 2));
}

index_t kernel_of(const fastflow_config& cfg, index_t block) { return cfg.conv3x3_only || block % 2 == 0 ? 3 : 1; }

std::unique_ptr<sequential_flow> build_flow(const fastflow_config& cfg, std::size_t s) {
  const scale_shape& shape = cfg.scales[s];
  auto flow = std::make_unique<sequential_flow>(shape.channels);
  for (index_t b = 0; b < cfg.blocks; ++b) {
    const std::uint64_t seed = detail::scale_block_seed(cfg.seed, s, b);
    all_in_one_config block;
    block.coupling.channels = shape.channels;
    block.coupling.groups = 2;
    block.coupling.hidden = hidden_of(cfg, shape);
    block.coupling.kernel = kernel_of(cfg, b);
    block.coupling.activation = subnet_activation::relu;
    block.coupling.clamp = cfg.clamp;
    block.coupling.learn_gain = false;  // FrEIA's fixed a = 0.1·subnet(x)
    block.coupling.gain_init = 0.1f;
    block.coupling.seed = seed;
    block.scale_activation = global_scale_activation::softplus;
    block.initial_scale = 1.0;
    block.permutation_seed = seed + 1;
    flow->emplace<all_in_one_block>(block);
  }
  return flow;
}


}  // namespace

struct fastflow::impl {
  std::vector<std::unique_ptr<layer_norm>> norms;  // one per scale, when configured
  std::vector<std::unique_ptr<sequential_flow>> flows;
  mutable detail::workspace_pool pool;

  struct score_state : layer_state {
    std::vector<tensor> normalised, z, scale_maps;
    std::vector<const_view> map_views;
    std::vector<double> logdet;
    std::vector<float> top_k_scratch;
    map_buffers maps;
  };
  std::uint64_t score_state_id = detail::next_layer_id();

  // Each scale's LayerNorm weight and bias, then its flow's parameters.
  std::vector<parameter*> parameters() {
    std::vector<parameter*> all;
    for (std::size_t s = 0; s < flows.size(); ++s) {
      if (!norms.empty())
        for (parameter* p : norms[s]->parameters()) all.push_back(p);
      for (parameter* p : flows[s]->parameters()) all.push_back(p);
    }
    return all;
  }
};

fastflow::fastflow(const fastflow_config& cfg) : cfg_(cfg), impl_(std::make_unique<impl>()) {
  cfg_.validate();
  for (std::size_t s = 0; s < cfg_.scales.size(); ++s) {
    const scale_shape& shape = cfg_.scales[s];
    if (cfg_.layer_norm) impl_->norms.push_back(std::make_unique<layer_norm>(shape.channels, shape.height, shape.width));
    impl_->flows.push_back(build_flow(cfg_, s));
  }
}

fastflow::~fastflow() = default;

std::vector<const parameter*> fastflow::parameters() const {
  const std::vector<parameter*> ps = impl_->parameters();
  return {ps.begin(), ps.end()};
}

model_stats fastflow::stats() const {
  model_stats s;
  for (const parameter* p : parameters()) s.parameters += static_cast<double>(p->size());
  for (std::size_t k = 0; k < cfg_.scales.size(); ++k)
    s.macs_per_image += impl_->flows[k]->macs_per_sample(cfg_.scales[k].height, cfg_.scales[k].width);
  return s;
}

fit_report fastflow::fit(const feature_maps& train, const fit_options& options) {
  const index_t n = detail::check_features(train, cfg_.scales, "training features");
  const std::size_t scales = cfg_.scales.size();
  std::vector<flow_layer*> flows;
  for (auto& f : impl_->flows) flows.push_back(f.get());
  nll_objective objective(flows, nll_normalization::per_sample);
  std::vector<tensor> batch, normalised(scales);
  std::vector<const_view> flow_inputs(scales);

  training_problem problem;
  problem.name = "fastflow::fit";
  problem.samples = n;
  problem.trained = impl_->parameters();
  problem.with_gradients = problem.trained;
  problem.step = [&](span<const index_t> samples, workspace& ws) {
    gather_samples(train, samples, batch);
    for (std::size_t s = 0; s < scales; ++s) {
      if (cfg_.layer_norm) {
        normalised[s].resize(batch[s].shape(), layout::nhwc);
        impl_->norms[s]->forward(batch[s].cview(), normalised[s].view(), ws, pass_mode::training);
        flow_inputs[s] = normalised[s].cview();
      } else {
        flow_inputs[s] = batch[s].cview();
      }
    }
    const double loss = objective.forward_backward(flow_inputs, ws);
    if (cfg_.layer_norm && std::isfinite(loss))
      for (std::size_t s = 0; s < scales; ++s)
        impl_->norms[s]->backward(batch[s].cview(), objective.input_gradients()[s].cview(), view(), ws);
    return loss;
  };
  fit_report report = flowad::train(problem, cfg_.training, options);
  fitted_ = true;
  return report;
}

void fastflow::score(const feature_maps& features, const score_options& options, scores& out) const {
  if (!fitted_) throw error(errc::not_fitted, "fastflow::score called before fit() or load()");
  const index_t n = detail::check_features(features, cfg_.scales, "features");
  const std::size_t scales = cfg_.scales.size();
  detail::check_score_options(options, scales);
  const index_t map_h = detail::map_height(options, cfg_.scales), map_w = detail::map_width(options, cfg_.scales);
  out.image.resize(static_cast<std::size_t>(n));
  out.maps.resize({n, 1, map_h, map_w}, layout::nchw);

  auto ws = impl_->pool.acquire();
  auto& st = ws->state<impl::score_state>(impl_->score_state_id);
  st.normalised.resize(scales);
  st.z.resize(scales);
  st.scale_maps.resize(scales);
  st.map_views.resize(scales);
  for (index_t start = 0; start < n; start += options.batch_size) {
    const index_t count = std::min(options.batch_size, n - start);
    st.logdet.assign(static_cast<std::size_t>(count), 0.0);
    for (std::size_t s = 0; s < scales; ++s) {
      const_view in = features[s].batch(start, count);
      if (cfg_.layer_norm) {
        st.normalised[s].resize(in.shape(), layout::nhwc);
        impl_->norms[s]->forward(in, st.normalised[s].view(), *ws);
        in = st.normalised[s].cview();
      }
      st.z[s].resize(in.shape(), layout::nhwc);
      impl_->flows[s]->forward(in, st.z[s].view(), st.logdet, *ws);
      st.scale_maps[s].resize({count, 1, in.h(), in.w()}, layout::nchw);
      latent_map(st.z[s].view(), st.scale_maps[s].view(), latent_statistic::negative_likelihood);
      st.map_views[s] = st.scale_maps[s].cview();
    }
    const view maps = out.maps.view().batch(start, count);
    combine_maps(span<const const_view>(st.map_views.data(), st.map_views.size()), maps, map_combination::mean, st.maps,
                 span<const double>(options.cell_offsets.data(), options.cell_offsets.size()));
    image_scores(maps, cfg_.image_score, span<double>(out.image.data() + start, static_cast<std::size_t>(count)),
                 cfg_.top_k_fraction, st.top_k_scratch);
  }
}

// ------------------------------------------------------------------------------------------------
// Model files

model_file_contents fastflow::to_model_file() const {
  model_file_contents m = detail::model_file_header(*this);
  for (std::size_t s = 0; s < cfg_.scales.size(); ++s) {
    if (cfg_.layer_norm) detail::store_parameters(m, detail::scale_prefix(s) + "layer_norm.", impl_->norms[s]->parameters());
    sequential_flow& flow = *impl_->flows[s];
    for (std::size_t b = 0; b < flow.size(); ++b) {
      auto& block = dynamic_cast<all_in_one_block&>(flow.layer(b));
      const std::string prefix = detail::scale_prefix(s) + detail::block_prefix(b);
      const std::vector<index_t>& perm = block.permutation().permutation();
      m.tensors.push_back({prefix + "permutation", {static_cast<index_t>(perm.size())}, std::vector<float>(perm.begin(), perm.end())});
      detail::store_parameters(m, prefix, block.parameters());
    }
  }
  return m;
}

std::unique_ptr<fastflow> fastflow::from_model_file(const model_file_contents& m) {
  if (m.kind != "fastflow") throw error(errc::bad_file, "model file holds a '" + m.kind + "' detector, not fastflow");
  const fastflow_config cfg = from_detector_config<fastflow_config>(m.config, errc::bad_file);
  // Checked before the model is allocated: each block stores its permutation and parameters, each
  // scale its LayerNorm; a file can only ask for as much as it holds.
  double expected = 0.0;
  for (const scale_shape& s : cfg.scales) {
    const double c = static_cast<double>(s.channels), h = static_cast<double>(hidden_of(cfg, s));
    const double passive = static_cast<double>(s.channels - s.channels / 2), active = 2.0 * static_cast<double>(s.channels / 2);
    if (cfg.layer_norm) expected += 2.0 * c * static_cast<double>(s.height * s.width);
    for (index_t b = 0; b < cfg.blocks; ++b) {
      const double k2 = static_cast<double>(kernel_of(cfg, b) * kernel_of(cfg, b));
      expected += c + passive * h * k2 + h + h * active * k2 + active + 2.0 * c;
    }
  }
  if (detail::stored_values(m) != expected)
    throw error(errc::bad_file, "model file holds " + detail::number_text(detail::stored_values(m)) +
                                    " values but its configuration needs " + detail::number_text(expected));
  auto model = std::make_unique<fastflow>(cfg);
  std::size_t read = 0;
  for (std::size_t s = 0; s < cfg.scales.size(); ++s) {
    if (cfg.layer_norm) read += detail::restore_parameters(m, detail::scale_prefix(s) + "layer_norm.", model->impl_->norms[s]->parameters());
    sequential_flow& flow = *model->impl_->flows[s];
    for (std::size_t b = 0; b < flow.size(); ++b) {
      auto& block = dynamic_cast<all_in_one_block&>(flow.layer(b));
      const std::string prefix = detail::scale_prefix(s) + detail::block_prefix(b);
      // The permutations are drawn from the configuration's seed; a file that disagrees is not ours.
      const stored_tensor& perm = m.tensor_named(prefix + "permutation");
      const std::vector<index_t>& expected_perm = block.permutation().permutation();
      if (perm.values.size() != expected_perm.size() ||
          !std::equal(expected_perm.begin(), expected_perm.end(), perm.values.begin(),
                      [](index_t a, float b) { return static_cast<float>(a) == b; }))
        throw error(errc::bad_file, "model file tensor '" + perm.name + "' is not the permutation its seed draws");
      read += 1 + detail::restore_parameters(m, prefix, block.parameters());
    }
  }
  detail::require_tensor_count(m, read);
  detail::restore_metadata(*model, m);
  model->fitted_ = true;
  return model;
}

namespace detail {

detector_registration fastflow_registration() {
  detector_registration r;
  r.info = {"fastflow", "FastFlow: per-scale LayerNorm and AllInOne coupling flows (Yu et al. 2021)", 3};
  r.recommended = [](const feature_geometry& g) { return to_detector_config(fastflow_config::recommended(g.shapes)); };
  r.make = [](const detector_config& config) -> std::unique_ptr<detector> {
    return std::make_unique<fastflow>(from_detector_config<fastflow_config>(config));
  };
  r.load = [](const model_file_contents& contents) -> std::unique_ptr<detector> { return fastflow::from_model_file(contents); };
  return r;
}

}  // namespace detail
}  // namespace v0
}  // namespace flowad
