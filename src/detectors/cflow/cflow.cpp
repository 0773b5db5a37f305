// CFlow-AD: configuration, the positional encoding, the conditional fibre flows, training (one run of
// the shared trainer per level, samples = fibres), scoring, model files and registration.
#include "flowad/detectors/cflow.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "detectors/common.hpp"
#include "detectors/registration.hpp"
#include "flowad/detail/config_fields.hpp"
#include "flowad/detail/random.hpp"
#include "flowad/detail/workspace_pool.hpp"
#include "flowad/io/model_file.hpp"
#include "flowad/layers/all_in_one_block.hpp"
#include "flowad/scoring/anomaly_map.hpp"
#include "flowad/train/trainer.hpp"

namespace flowad {
inline namespace v0 {

// ------------------------------------------------------------------------------------------------
// Configuration

training_options cflow_config::default_training() {
  // gudovskiy/cflow-ad: Adam(lr 2e-4) with PyTorch's other defaults, fibre batch N = 256, no clipping,
  // warm-up over 2 of 25 meta-epochs from lr/10, then cosine down to lr·0.1³ (lr_cosine).
  training_options t;
  t.epochs = default_epochs;
  t.batch_size = 256;
  t.optimizer.learning_rate = 2e-4f;
  t.optimizer.eps = 1e-8f;
  t.optimizer.weight_decay = 0.0f;
  t.max_grad_norm = 0.0;
  t.schedule.kind = lr_schedule::cosine;
  t.schedule.warmup_fraction = 2.0 / 25.0;
  t.schedule.warmup_start_factor = 0.1;
  t.schedule.final_factor = 1e-3;
  return t;
}

cflow_config cflow_config::recommended(std::vector<scale_shape> scales) {
  cflow_config cfg;
  cfg.scales = std::move(scales);
  return cfg;
}

cflow_config cflow_config::paper() {
  cflow_config cfg;
  cfg.scales = {{512, 32, 32}, {1024, 16, 16}, {2048, 8, 8}};
  return cfg;
}

void cflow_config::validate() const {
  const auto fail = [](const std::string& what) { throw error(errc::invalid_argument, "cflow_config: " + what); };
  if (scales.empty() || scales.size() > 16) fail("needs 1 to 16 scales, got " + std::to_string(scales.size()));
  for (const scale_shape& s : scales)
    if (s.channels < 2 || s.height <= 0 || s.width <= 0 || s.channels > (1 << 16) || s.height > (1 << 14) || s.width > (1 << 14))
      fail("scale shapes must have at least 2 channels and plausible sizes, got " + to_config_text(scales));
  if (blocks <= 0 || blocks > 4096) fail("blocks must be in [1, 4096], got " + std::to_string(blocks));
  if (condition_channels <= 0 || condition_channels % 4 != 0 || condition_channels > 4096)
    fail("condition_channels must be a positive multiple of 4 up to 4096, got " + std::to_string(condition_channels));
  if (!(hidden_ratio > 0.0 && hidden_ratio <= 64.0)) fail("hidden_ratio must be in (0, 64]");
  for (const scale_shape& s : scales)
    if (static_cast<index_t>(hidden_ratio * static_cast<double>(s.channels - s.channels / 2 + condition_channels)) < 1)
      fail("hidden_ratio gives a subnet of no channels for " + std::to_string(s.channels) + " channels");
  if (clamp.kind != clamp_kind::none && !(clamp.alpha > 0.0f && std::isfinite(clamp.alpha)))
    fail("clamp_alpha must be positive and finite");
  if (!(top_k_fraction > 0.0 && top_k_fraction <= 1.0)) fail("score.top_k_fraction must be in (0, 1]");
  training.validate();
}

void positional_encoding_2d(view dst) {
  const index_t P = dst.c(), H = dst.h(), W = dst.w();
  if (dst.n() != 1 || P <= 0 || P % 4 != 0)
    throw error(errc::invalid_argument, "positional_encoding_2d needs 1 x P x H x W with P a positive multiple of 4, got " +
                                            dst.shape().str());
  const index_t D = P / 2;
  for (index_t k = 0; 2 * k < D; ++k) {
    // In float, as torch computes div_term and the products.
    const float div = std::exp(static_cast<float>(2 * k) * -(std::log(10000.0f) / static_cast<float>(D)));
    for (index_t y = 0; y < H; ++y)
      for (index_t x = 0; x < W; ++x) {
        const float px = static_cast<float>(x) * div, py = static_cast<float>(y) * div;
        dst(0, 2 * k, y, x) = std::sin(px);
        dst(0, 2 * k + 1, y, x) = std::cos(px);
        dst(0, D + 2 * k, y, x) = std::sin(py);
        dst(0, D + 2 * k + 1, y, x) = std::cos(py);
      }
  }
}

// ------------------------------------------------------------------------------------------------
// The model

namespace {

constexpr double log_sqrt_2pi = 0.91894;  // the official code's _GCONST_, −log √(2π) rounded
constexpr double max_exponent = 50.0;      // caps exp(log_prob − r): no overflow to Inf

index_t hidden_of(const cflow_config& cfg, const scale_shape& s) {
  return static_cast<index_t>(cfg.hidden_ratio * static_cast<double>(s.channels - s.channels / 2 + cfg.condition_channels));
}

all_in_one_config block_config(const cflow_config& cfg, std::size_t s, index_t b) {
  const scale_shape& shape = cfg.scales[s];
  const std::uint64_t seed = detail::scale_block_seed(cfg.seed, s, b);
  all_in_one_config block;
  block.coupling.channels = shape.channels;
  block.coupling.groups = 2;
  block.coupling.hidden = hidden_of(cfg, shape);
  block.coupling.kernel = 1;  // Linear on fibres
  block.coupling.activation = subnet_activation::relu;
  block.coupling.clamp = cfg.clamp;
  block.coupling.learn_gain = false;  // FrEIA's fixed a = 0.1·subnet(x)
  block.coupling.gain_init = 0.1f;
  block.coupling.seed = seed;
  block.coupling.condition_channels = cfg.condition_channels;
  block.scale_activation = global_scale_activation::softplus;
  block.initial_scale = 1.0;
  block.permutation_seed = seed + 1;
  return block;
}


// log_prob per fibre of z (M x C x 1 x 1, dense) given its log-determinants.
double log_prob_of(const float* z, index_t channels, double logdet) {
  double squares = 0.0;
  for (index_t c = 0; c < channels; ++c) squares += static_cast<double>(z[c]) * z[c];
  const double C = static_cast<double>(channels);
  return (C * -log_sqrt_2pi - 0.5 * squares + logdet) / C;
}

}  // namespace

struct cflow::impl {
  // One conditional flow per level, and its positional encoding (1 x P x H x W, NHWC: fibre order).
  std::vector<std::vector<std::unique_ptr<all_in_one_block>>> flows;
  std::vector<tensor> encodings;
  mutable detail::workspace_pool pool;

  // The fibres of a level through its flow: dense inputs, their conditions, and every block's output
  // (training keeps them all for backward; inference reuses two).
  struct pass {
    tensor x, condition;
    std::vector<tensor> activations, gradients;
    std::vector<double> logdet, diff_logdet;
    std::vector<double> log_prob;
  };
  struct score_state : layer_state {
    pass fibres;
    std::vector<tensor> level_maps;
    std::vector<const_view> map_views;
    std::vector<float> top_k_scratch;
    map_buffers maps;
  };
  std::uint64_t score_state_id = detail::next_layer_id();

  std::vector<parameter*> parameters(std::size_t s) {
    std::vector<parameter*> all;
    for (auto& b : flows[s])
      for (parameter* p : b->parameters()) all.push_back(p);
    return all;
  }
  std::vector<parameter*> parameters() {
    std::vector<parameter*> all;
    for (std::size_t s = 0; s < flows.size(); ++s)
      for (parameter* p : parameters(s)) all.push_back(p);
    return all;
  }

  // z = flow(p.x | p.condition) for M = p.x.n() fibres; p.log_prob[m] gets each fibre's log_prob.
  // Training keeps every block's output in p.activations.
  void forward(std::size_t s, pass& p, workspace& ws, pass_mode mode) const {
    const auto& blocks = flows[s];
    const shape4 shape = p.x.shape();
    const auto M = static_cast<std::size_t>(shape.n);
    p.logdet.assign(M, 0.0);
    const bool training = mode == pass_mode::training;
    p.activations.resize(training ? blocks.size() : 2);
    const_view in = p.x.cview();
    for (std::size_t b = 0; b < blocks.size(); ++b) {
      tensor& out = p.activations[training ? b : b % 2];
      out.resize(shape, layout::nhwc);
      blocks[b]->forward(in, p.condition.cview(), out.view(), p.logdet, ws, mode);
      in = out.cview();
    }
    p.log_prob.resize(M);
    const index_t C = shape.c;
    for (std::size_t m = 0; m < M; ++m)
      p.log_prob[m] = log_prob_of(in.data() + static_cast<index_t>(m) * C, C, p.logdet[m]);
  }

  const tensor& output(std::size_t s, const pass& p, pass_mode mode) const {
    const std::size_t blocks = flows[s].size();
    return mode == pass_mode::training ? p.activations[blocks - 1] : p.activations[(blocks - 1) % 2];
  }

  // After a training forward(): loss = mean_m −logsigmoid(log_prob_m), and its gradients.
  double backward(std::size_t s, pass& p, workspace& ws) {
    const auto& blocks = flows[s];
    const shape4 shape = p.x.shape();
    const index_t M = shape.n, C = shape.c;
    const double inv = 1.0 / (static_cast<double>(M) * static_cast<double>(C));
    p.gradients.resize(2);
    tensor& diff_z = p.gradients[0];
    diff_z.resize(shape, layout::nhwc);
    p.diff_logdet.resize(static_cast<std::size_t>(M));
    const float* z = output(s, p, pass_mode::training).data();
    double loss = 0.0;
    for (index_t m = 0; m < M; ++m) {
      const double lp = p.log_prob[static_cast<std::size_t>(m)];
      // −logsigmoid(lp) = softplus(−lp); d/dlp = −σ(−lp).
      loss += lp > 0 ? std::log1p(std::exp(-lp)) : -lp + std::log1p(std::exp(lp));
      const double weight = 1.0 / (1.0 + std::exp(lp));  // σ(−lp)
      // dL/dz = σ(−lp)·z/(C·M), dL/dlogdet = −σ(−lp)/(C·M)
      for (index_t c = 0; c < C; ++c) diff_z.data()[m * C + c] = static_cast<float>(weight * inv * z[m * C + c]);
      p.diff_logdet[static_cast<std::size_t>(m)] = -weight * inv;
    }
    loss /= static_cast<double>(M);
    if (!std::isfinite(loss)) return loss;
    p.gradients[1].resize(shape, layout::nhwc);
    for (std::size_t b = blocks.size(); b-- > 0;) {
      const_view in = b == 0 ? p.x.cview() : p.activations[b - 1].cview();
      tensor& diff_out = p.gradients[(blocks.size() - 1 - b) % 2];
      tensor& diff_in = p.gradients[(blocks.size() - b) % 2];
      blocks[b]->backward(in, p.activations[b].cview(), diff_out.cview(), p.diff_logdet, diff_in.view(), ws);
    }
    return loss;
  }

  // The fibres of images [start, start + count) of `features` (level s) and their conditions into p.
  void load_images(std::size_t s, const_view features, pass& p) const {
    const shape4 f = features.shape();
    const index_t P = encodings[s].c(), positions = f.h * f.w;
    p.x.resize({f.n * positions, f.c, 1, 1}, layout::nhwc);
    copy(features, view(p.x.data(), f, layout::nhwc));
    p.condition.resize({f.n * positions, P, 1, 1}, layout::nhwc);
    for (index_t i = 0; i < f.n; ++i)
      std::memcpy(p.condition.data() + i * positions * P, encodings[s].data(),
                  static_cast<std::size_t>(positions * P) * sizeof(float));
  }
};

cflow::cflow(const cflow_config& cfg) : cfg_(cfg), impl_(std::make_unique<impl>()) {
  cfg_.validate();
  for (std::size_t s = 0; s < cfg_.scales.size(); ++s) {
    const scale_shape& shape = cfg_.scales[s];
    std::vector<std::unique_ptr<all_in_one_block>> blocks;
    for (index_t b = 0; b < cfg_.blocks; ++b) blocks.push_back(std::make_unique<all_in_one_block>(block_config(cfg_, s, b)));
    impl_->flows.push_back(std::move(blocks));
    tensor encoding({1, cfg_.condition_channels, shape.height, shape.width}, layout::nhwc);
    positional_encoding_2d(encoding.view());
    impl_->encodings.push_back(std::move(encoding));
  }
}

cflow::~cflow() = default;

std::vector<const parameter*> cflow::parameters() const {
  const std::vector<parameter*> ps = impl_->parameters();
  return {ps.begin(), ps.end()};
}

model_stats cflow::stats() const {
  model_stats s;
  for (const parameter* p : parameters()) s.parameters += static_cast<double>(p->size());
  s.parameters += static_cast<double>(cfg_.scales.size());  // the references
  for (std::size_t k = 0; k < cfg_.scales.size(); ++k) {
    const double positions = static_cast<double>(cfg_.scales[k].height * cfg_.scales[k].width);
    for (const auto& b : impl_->flows[k]) s.macs_per_image += positions * b->macs_per_sample(1, 1);
  }
  return s;
}

fit_report cflow::fit(const feature_maps& train, const fit_options& options) {
  const index_t n = detail::check_features(train, cfg_.scales, "training features");
  const std::size_t levels = cfg_.scales.size();
  long all_steps = 0;
  for (const scale_shape& s : cfg_.scales)
    all_steps += cfg_.training.epochs * static_cast<long>((n * s.height * s.width + cfg_.training.batch_size - 1) /
                                                          cfg_.training.batch_size);
  fit_report total;
  total.epoch_losses.assign(static_cast<std::size_t>(cfg_.training.epochs), 0.0);
  total.final_lr_scale = 1.0;
  long steps_before = 0;
  double fibres_seen = 0.0;
  impl::pass p;
  for (std::size_t s = 0; s < levels; ++s) {
    const scale_shape& shape = cfg_.scales[s];
    const index_t positions = shape.height * shape.width, C = shape.channels, P = cfg_.condition_channels;
    const const_view features = train[s];
    const tensor& encoding = impl_->encodings[s];
    training_problem problem;
    problem.name = "cflow::fit (level " + std::to_string(s) + ")";
    problem.samples = n * positions;  // sample f is fibre (image f / positions, position f % positions)
    problem.trained = impl_->parameters(s);
    problem.with_gradients = problem.trained;
    problem.step = [&](span<const index_t> fibres, workspace& ws) {
      const auto M = static_cast<index_t>(fibres.size());
      p.x.resize({M, C, 1, 1}, layout::nhwc);
      p.condition.resize({M, P, 1, 1}, layout::nhwc);
      for (index_t m = 0; m < M; ++m) {
        const index_t f = fibres[static_cast<std::size_t>(m)], image = f / positions, at = f % positions;
        const index_t y = at / shape.width, x = at % shape.width;
        float* dst = p.x.data() + m * C;
        for (index_t c = 0; c < C; ++c) dst[c] = features(image, c, y, x);
        std::memcpy(p.condition.data() + m * P, encoding.data() + at * P, static_cast<std::size_t>(P) * sizeof(float));
      }
      impl_->forward(s, p, ws, pass_mode::training);
      return impl_->backward(s, p, ws);
    };
    fit_options level_options = options;
    if (options.on_progress)
      level_options.on_progress = [&, steps_before](const fit_progress& progress) {
        fit_progress q = progress;
        q.step += steps_before;
        q.steps = all_steps;
        options.on_progress(q);
      };
    const fit_report report = flowad::train(problem, cfg_.training, level_options);
    for (std::size_t e = 0; e < report.epoch_losses.size() && e < total.epoch_losses.size(); ++e)
      total.epoch_losses[e] += report.epoch_losses[e];
    total.final_loss += report.final_loss;
    total.steps += report.steps;
    total.discarded_steps += report.discarded_steps;
    total.rollbacks += report.rollbacks;
    total.final_lr_scale = std::min(total.final_lr_scale, report.final_lr_scale);
    total.seconds += report.seconds;
    fibres_seen += report.samples_per_second * report.seconds;
    for (const std::string& e : report.events) total.events.push_back("level " + std::to_string(s) + ": " + e);
    steps_before += cfg_.training.epochs * static_cast<long>((problem.samples + cfg_.training.batch_size - 1) /
                                                             cfg_.training.batch_size);
  }
  total.samples_per_second = total.seconds > 0.0 ? fibres_seen / total.seconds : 0.0;

  // The references r_l: each level's largest log_prob over the training fibres.
  references_.assign(levels, 0.0f);
  workspace ws;
  const index_t batch = 16;
  for (std::size_t s = 0; s < levels; ++s) {
    double best = -std::numeric_limits<double>::infinity();
    for (index_t start = 0; start < n; start += batch) {
      impl_->load_images(s, train[s].batch(start, std::min(batch, n - start)), p);
      impl_->forward(s, p, ws, pass_mode::inference);
      for (const double lp : p.log_prob)
        if (std::isfinite(lp)) best = std::max(best, lp);
    }
    if (!std::isfinite(best))
      throw error(errc::training_failed, "cflow::fit: level " + std::to_string(s) + " gives no finite log-likelihood");
    references_[s] = static_cast<float>(best);
  }
  fitted_ = true;
  return total;
}

void cflow::score(const feature_maps& features, const score_options& options, scores& out) const {
  if (!fitted_) throw error(errc::not_fitted, "cflow::score called before fit() or load()");
  const index_t n = detail::check_features(features, cfg_.scales, "features");
  const std::size_t levels = cfg_.scales.size();
  detail::check_score_options(options, levels);
  const index_t map_h = detail::map_height(options, cfg_.scales), map_w = detail::map_width(options, cfg_.scales);
  out.image.resize(static_cast<std::size_t>(n));
  out.maps.resize({n, 1, map_h, map_w}, layout::nchw);

  auto ws = impl_->pool.acquire();
  auto& st = ws->state<impl::score_state>(impl_->score_state_id);
  st.level_maps.resize(levels);
  st.map_views.resize(levels);
  for (index_t start = 0; start < n; start += options.batch_size) {
    const index_t count = std::min(options.batch_size, n - start);
    for (std::size_t s = 0; s < levels; ++s) {
      const scale_shape& shape = cfg_.scales[s];
      impl_->load_images(s, features[s].batch(start, count), st.fibres);
      impl_->forward(s, st.fibres, *ws, pass_mode::inference);
      // Fibres are in (image, row, column) order: the N x 1 x H x W map's NCHW order.
      st.level_maps[s].resize({count, 1, shape.height, shape.width}, layout::nchw);
      float* map = st.level_maps[s].data();
      const double reference = references_[s];
      for (std::size_t m = 0; m < st.fibres.log_prob.size(); ++m)
        map[m] = static_cast<float>(std::exp(std::min(st.fibres.log_prob[m] - reference, max_exponent)));
      st.map_views[s] = st.level_maps[s].cview();
    }
    const view maps = out.maps.view().batch(start, count);
    combine_maps(span<const const_view>(st.map_views.data(), st.map_views.size()), maps, map_combination::sum, st.maps,
                 span<const double>(options.cell_offsets.data(), options.cell_offsets.size()));
    const auto L = static_cast<float>(levels);
    float* m = maps.data();  // out.maps is dense NCHW
    for (index_t i = 0; i < maps.numel(); ++i) m[i] = L - m[i];
    image_scores(maps, cfg_.image_score, span<double>(out.image.data() + start, static_cast<std::size_t>(count)),
                 cfg_.top_k_fraction, st.top_k_scratch);
  }
}

// ------------------------------------------------------------------------------------------------
// Model files

model_file_contents cflow::to_model_file() const {
  model_file_contents m = detail::model_file_header(*this);
  for (std::size_t s = 0; s < cfg_.scales.size(); ++s)
    for (std::size_t b = 0; b < impl_->flows[s].size(); ++b) {
      all_in_one_block& block = *impl_->flows[s][b];
      const std::string prefix = detail::scale_prefix(s) + detail::block_prefix(b);
      const std::vector<index_t>& perm = block.permutation().permutation();
      m.tensors.push_back({prefix + "permutation", {static_cast<index_t>(perm.size())}, std::vector<float>(perm.begin(), perm.end())});
      detail::store_parameters(m, prefix, block.parameters());
    }
  m.tensors.push_back({"references", {static_cast<index_t>(references_.size())}, references_});
  return m;
}

std::unique_ptr<cflow> cflow::from_model_file(const model_file_contents& m) {
  if (m.kind != "cflow") throw error(errc::bad_file, "model file holds a '" + m.kind + "' detector, not cflow");
  const cflow_config cfg = from_detector_config<cflow_config>(m.config, errc::bad_file);
  // Checked before the model is allocated: per block its permutation, subnet and global affine; one
  // reference per level.
  double expected = static_cast<double>(cfg.scales.size());
  for (const scale_shape& s : cfg.scales) {
    const double c = static_cast<double>(s.channels), h = static_cast<double>(hidden_of(cfg, s));
    const double in = static_cast<double>(s.channels - s.channels / 2 + cfg.condition_channels);
    const double active = 2.0 * static_cast<double>(s.channels / 2);
    expected += static_cast<double>(cfg.blocks) * (c + in * h + h + h * active + active + 2.0 * c);
  }
  if (detail::stored_values(m) != expected)
    throw error(errc::bad_file, "model file holds " + detail::number_text(detail::stored_values(m)) +
                                    " values but its configuration needs " + detail::number_text(expected));
  auto model = std::make_unique<cflow>(cfg);
  std::size_t read = 0;
  for (std::size_t s = 0; s < cfg.scales.size(); ++s)
    for (std::size_t b = 0; b < model->impl_->flows[s].size(); ++b) {
      all_in_one_block& block = *model->impl_->flows[s][b];
      const std::string prefix = detail::scale_prefix(s) + detail::block_prefix(b);
      // The permutations are drawn from the configuration's seed; a file that disagrees is not ours.
      const stored_tensor& perm = m.tensor_named(prefix + "permutation");
      const std::vector<index_t>& expected_perm = block.permutation().permutation();
      if (perm.values.size() != expected_perm.size() ||
          !std::equal(expected_perm.begin(), expected_perm.end(), perm.values.begin(),
                      [](index_t a, float v) { return static_cast<float>(a) == v; }))
        throw error(errc::bad_file, "model file tensor '" + perm.name + "' is not the permutation its seed draws");
      read += 1 + detail::restore_parameters(m, prefix, block.parameters());
    }
  const stored_tensor& refs = m.tensor_named("references");
  if (refs.values.size() != cfg.scales.size() ||
      !std::all_of(refs.values.begin(), refs.values.end(), [](float v) { return std::isfinite(v); }))
    throw error(errc::bad_file, "model file tensor 'references' needs one finite value per level");
  model->references_ = refs.values;
  read += 1;
  detail::require_tensor_count(m, read);
  detail::restore_metadata(*model, m);
  model->fitted_ = true;
  return model;
}

namespace detail {

detector_registration cflow_registration() {
  detector_registration r;
  r.info = {"cflow", "CFlow-AD: conditional AllInOne flows on feature fibres with positional encodings (Gudovskiy et al. 2022)", 3};
  r.recommended = [](const feature_geometry& g) { return to_detector_config(cflow_config::recommended(g.shapes)); };
  r.make = [](const detector_config& config) -> std::unique_ptr<detector> {
    return std::make_unique<cflow>(from_detector_config<cflow_config>(config));
  };
  r.load = [](const model_file_contents& contents) -> std::unique_ptr<detector> { return cflow::from_model_file(contents); };
  r.paper = [] { return to_detector_config(cflow_config::paper()); };
  return r;
}

}  // namespace detail
}  // namespace v0
}  // namespace flowad
