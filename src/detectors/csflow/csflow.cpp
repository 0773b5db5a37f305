// CS-Flow: configuration, the flow, training (through the shared trainer), scoring, model files and
// registration.
#include "flowad/detectors/csflow.hpp"

#include <algorithm>
#include <cmath>
#include <mutex>

#include "detectors/common.hpp"
#include "detectors/registration.hpp"
#include "flowad/detail/config_fields.hpp"
#include "flowad/detail/random.hpp"
#include "flowad/detail/workspace_pool.hpp"
#include "flowad/io/model_file.hpp"
#include "flowad/layers/cross_scale_coupling.hpp"
#include "flowad/layers/permute.hpp"
#include "flowad/scoring/anomaly_map.hpp"
#include "flowad/scoring/latent.hpp"
#include "flowad/train/trainer.hpp"

namespace flowad {
inline namespace v0 {

// ------------------------------------------------------------------------------------------------
// Configuration

training_options csflow_config::default_training() {
  // train.py: Adam(lr 2e-4, eps 1e-4, weight decay 1e-5) with PyTorch's betas, clip_grad_norm_ 1,
  // batch 16, constant learning rate.
  training_options t;
  t.epochs = default_epochs;
  t.batch_size = 16;
  t.optimizer.learning_rate = 2e-4f;
  t.optimizer.beta1 = 0.9f;
  t.optimizer.beta2 = 0.999f;
  t.optimizer.eps = 1e-4f;
  t.optimizer.weight_decay = 1e-5f;
  t.max_grad_norm = 1.0;
  t.schedule.kind = lr_schedule::constant;
  return t;
}

csflow_config csflow_config::recommended(std::vector<scale_shape> scales) {
  csflow_config cfg;
  cfg.scales = std::move(scales);
  return cfg;
}

csflow_config csflow_config::paper() {
  csflow_config cfg;
  cfg.scales = {{304, 24, 24}, {304, 12, 12}, {304, 6, 6}};
  cfg.hidden = 1024;
  cfg.training.epochs = 240;  // meta_epochs 4 × sub_epochs 60
  return cfg;
}

void csflow_config::validate() const {
  const auto fail = [](const std::string& what) { throw error(errc::invalid_argument, "csflow_config: " + what); };
  if (scales.empty() || scales.size() > 8) fail("scales: needs 1 to 8 scales, got " + std::to_string(scales.size()));
  for (const scale_shape& s : scales)
    if (s.channels < 2 || s.height <= 0 || s.width <= 0 || s.channels > (1 << 16) || s.height > (1 << 14) ||
        s.width > (1 << 14))
      fail("scales: every scale needs at least 2 channels and a plausible size, got " + to_config_text(scales));
  for (std::size_t j = 1; j < scales.size(); ++j)
    if (scales[j].height != half_size(scales[j - 1].height) || scales[j].width != half_size(scales[j - 1].width))
      fail(
          "scales: each scale must be half of the previous one in height and width, rounded up (the cross-scale "
          "convolutions upsample and stride by 2), got " +
          to_config_text(scales));
  if (blocks <= 0 || blocks > 256) fail("blocks must be in [1, 256], got " + std::to_string(blocks));
  if (kernels.empty() || kernels.size() > 256) fail("kernels needs 1 to 256 kernel sizes");
  for (index_t k : kernels)
    if (k <= 0 || k % 2 == 0 || k > 15) fail("kernels must be odd sizes in [1, 15], got " + std::to_string(k));
  if (hidden <= 0 || hidden > 16384) fail("hidden must be in [1, 16384], got " + std::to_string(hidden));
  if (!(clamp_alpha > 0.0f && std::isfinite(clamp_alpha))) fail("clamp_alpha must be positive and finite");
  training.validate();
}

// ------------------------------------------------------------------------------------------------
// Sizes, from the configuration alone

namespace {

index_t kernel_of(const csflow_config& cfg, index_t block) {
  return cfg.kernels[static_cast<std::size_t>(block) % cfg.kernels.size()];
}

struct sizes {
  double parameters = 0.0;
  double macs = 0.0;
  double stored = 0.0;  // parameters and permutations
};

// Mirrors cross_scale_coupling's layers: two CrossConvolutions per block (S1: C/2 → 2(C − C/2),
// S2: C − C/2 → 2·C/2 per scale), each with per scale conv_in, conv_out, an up convolution (all but
// the coarsest scale), a strided down convolution (all but the finest), biases, and one γ per scale.
sizes size_of(const csflow_config& cfg) {
  sizes z;
  const std::size_t S = cfg.scales.size();
  const double h = static_cast<double>(cfg.hidden);
  for (index_t b = 0; b < cfg.blocks; ++b) {
    const double k2 = static_cast<double>(kernel_of(cfg, b) * kernel_of(cfg, b));
    for (int conditioner = 0; conditioner < 2; ++conditioner) {
      for (std::size_t j = 0; j < S; ++j) {
        const index_t c = cfg.scales[j].channels;
        const double first = static_cast<double>(c / 2), second = static_cast<double>(c - c / 2);
        const double in = conditioner == 0 ? first : second, out = conditioner == 0 ? 2 * second : 2 * first;
        const double area = static_cast<double>(cfg.scales[j].height * cfg.scales[j].width);
        const double crosses = (j + 1 < S ? 1.0 : 0.0) + (j > 0 ? 1.0 : 0.0);
        z.parameters += k2 * in * h + h + (1.0 + crosses) * (k2 * h * out + out);
        z.macs += area * k2 * (in * h + (1.0 + crosses) * h * out);
      }
      z.parameters += static_cast<double>(S);  // γ
    }
  }
  z.stored = z.parameters;
  for (const scale_shape& s : cfg.scales) z.stored += static_cast<double>(cfg.blocks * s.channels);
  return z;
}

std::uint64_t permutation_seed(std::uint64_t seed, index_t block, std::size_t scale) {
  detail::rng r(seed ^ (0x9E3779B97F4A7C15ull * static_cast<std::uint64_t>(block + 1)) ^
                (0xC2B2AE3D27D4EB4Full * (scale + 1)));
  return r.next();
}


}  // namespace

// ------------------------------------------------------------------------------------------------
// The model

struct csflow::impl {
  std::once_flag built;
  std::vector<std::vector<std::unique_ptr<permute>>> permutations;  // [block][scale]
  std::vector<std::unique_ptr<cross_scale_coupling>> couplings;     // [block]
  mutable detail::workspace_pool pool;

  struct score_state : layer_state {
    std::vector<tensor> permuted, z, scale_maps;
    std::vector<const_view> inputs, permuted_views, map_views;
    std::vector<view> permuted_out, z_out;
    std::vector<double> logdet, zero_logdet, squares;
    map_buffers maps;
  };
  std::uint64_t score_state_id = detail::next_layer_id();

  void build(const csflow_config& cfg) {
    std::call_once(built, [&] {
      const std::size_t S = cfg.scales.size();
      detail::rng seeds(cfg.seed);
      for (index_t b = 0; b < cfg.blocks; ++b) {
        std::vector<std::unique_ptr<permute>> perms;
        for (std::size_t j = 0; j < S; ++j)
          perms.push_back(std::make_unique<permute>(cfg.scales[j].channels, permutation_seed(cfg.seed, b, j)));
        permutations.push_back(std::move(perms));
        cross_scale_coupling_config c;
        for (const scale_shape& s : cfg.scales) c.channels.push_back(s.channels);
        c.hidden = cfg.hidden;
        c.kernel = kernel_of(cfg, b);
        c.negative_slope = 0.1f;
        c.clamp = {clamp_kind::atan, cfg.clamp_alpha};
        c.seed = seeds.next();
        couplings.push_back(std::make_unique<cross_scale_coupling>(c));
      }
    });
  }

  std::vector<parameter*> parameters() {
    std::vector<parameter*> all;
    for (auto& c : couplings)
      for (parameter* p : c->parameters()) all.push_back(p);
    return all;
  }
};

csflow::csflow(const csflow_config& cfg) : cfg_(cfg), impl_(std::make_unique<impl>()) {
  cfg_.validate();
}

csflow::~csflow() = default;

std::vector<const parameter*> csflow::parameters() const {
  impl_->build(cfg_);
  const std::vector<parameter*> ps = impl_->parameters();
  return {ps.begin(), ps.end()};
}

model_stats csflow::stats() const {
  const sizes z = size_of(cfg_);
  return {z.parameters, z.macs};
}

namespace {
double dimension_of(const std::vector<scale_shape>& scales) {
  double d = 0.0;
  for (const scale_shape& s : scales) d += static_cast<double>(s.channels * s.height * s.width);
  return d;
}
}  // namespace

fit_report csflow::fit(const feature_maps& train, const fit_options& options) {
  const index_t n = detail::check_features(train, cfg_.scales, "training features");
  impl_->build(cfg_);
  const std::size_t S = cfg_.scales.size();
  const auto B = static_cast<std::size_t>(cfg_.blocks);
  const double D = dimension_of(cfg_.scales);

  // Per block: the permuted input (the coupling's src) and the coupling's output; gradients ping-pong.
  std::vector<tensor> batch;
  std::vector<std::vector<tensor>> permuted(B, std::vector<tensor>(S)), outputs(B, std::vector<tensor>(S));
  std::vector<tensor> diff_out(S), diff_permuted(S);
  std::vector<const_view> src(S), dst(S), diff_dst(S);
  std::vector<view> out(S), diff_src(S);
  std::vector<double> logdet, diff_logdet, zero;

  training_problem problem;
  problem.name = "csflow::fit";
  problem.samples = n;
  problem.trained = impl_->parameters();
  problem.with_gradients = problem.trained;
  problem.step = [&](span<const index_t> samples, workspace& ws) {
    gather_samples(train, samples, batch);
    const auto N = static_cast<index_t>(samples.size());
    logdet.assign(S * static_cast<std::size_t>(N), 0.0);
    zero.assign(static_cast<std::size_t>(N), 0.0);
    for (std::size_t b = 0; b < B; ++b) {
      for (std::size_t j = 0; j < S; ++j) {
        const const_view in = b == 0 ? batch[j].cview() : outputs[b - 1][j].cview();
        permuted[b][j].resize(in.shape(), layout::nhwc);
        outputs[b][j].resize(in.shape(), layout::nhwc);
        impl_->permutations[b][j]->forward(in, permuted[b][j].view(), zero, ws);
        src[j] = permuted[b][j].cview();
        out[j] = outputs[b][j].view();
      }
      impl_->couplings[b]->forward(src, out, logdet, ws, pass_mode::training);
    }
    double squares = 0.0, total_logdet = 0.0;
    for (std::size_t j = 0; j < S; ++j) {
      const tensor& z = outputs[B - 1][j];
      for (index_t i = 0; i < z.numel(); ++i) squares += static_cast<double>(z.data()[i]) * z.data()[i];
    }
    for (double v : logdet) total_logdet += v;
    const double loss = (0.5 * squares - total_logdet) / (static_cast<double>(N) * D);
    if (!std::isfinite(loss)) return loss;

    // dL/dz = z/(N·D), dL/dlogdet = −1/(N·D).
    const double scale = 1.0 / (static_cast<double>(N) * D);
    diff_logdet.assign(logdet.size(), -scale);
    for (std::size_t j = 0; j < S; ++j) {
      const tensor& z = outputs[B - 1][j];
      diff_out[j].resize(z.shape(), layout::nhwc);
      for (index_t i = 0; i < z.numel(); ++i) diff_out[j].data()[i] = static_cast<float>(z.data()[i] * scale);
    }
    for (std::size_t b = B; b-- > 0;) {
      for (std::size_t j = 0; j < S; ++j) {
        src[j] = permuted[b][j].cview();
        dst[j] = outputs[b][j].cview();
        diff_dst[j] = diff_out[j].cview();
        diff_permuted[j].resize(src[j].shape(), layout::nhwc);
        diff_src[j] = diff_permuted[j].view();
      }
      impl_->couplings[b]->backward(src, dst, diff_dst, diff_logdet, diff_src, ws);
      if (b == 0) break;  // the features need no gradient
      for (std::size_t j = 0; j < S; ++j)
        impl_->permutations[b][j]->backward(outputs[b - 1][j].cview(), permuted[b][j].cview(), diff_permuted[j].cview(),
                                            zero, diff_out[j].view(), ws);
    }
    return loss;
  };
  fit_report report = flowad::train(problem, cfg_.training, options);
  fitted_ = true;
  return report;
}

void csflow::score(const feature_maps& features, const score_options& options, scores& out) const {
  if (!fitted_) throw error(errc::not_fitted, "csflow::score called before fit() or load()");
  const index_t n = detail::check_features(features, cfg_.scales, "features");
  const std::size_t S = cfg_.scales.size();
  detail::check_score_options(options, S);
  const index_t map_h = detail::map_height(options, cfg_.scales), map_w = detail::map_width(options, cfg_.scales);
  out.image.resize(static_cast<std::size_t>(n));
  out.maps.resize({n, 1, map_h, map_w}, layout::nchw);
  const double D = dimension_of(cfg_.scales);
  // anomalib's map is Π_j mean_c z_j²; latent_map's energy is mean_c z²/2 per scale.
  const auto energy_to_squares = static_cast<float>(std::ldexp(1.0, static_cast<int>(S)));

  auto ws = impl_->pool.acquire();
  auto& st = ws->state<impl::score_state>(impl_->score_state_id);
  st.permuted.resize(S);
  st.z.resize(S);
  st.scale_maps.resize(S);
  st.inputs.resize(S);
  st.permuted_views.resize(S);
  st.map_views.resize(S);
  st.permuted_out.resize(S);
  st.z_out.resize(S);
  for (index_t start = 0; start < n; start += options.batch_size) {
    const index_t count = std::min(options.batch_size, n - start);
    st.logdet.assign(S * static_cast<std::size_t>(count), 0.0);
    st.zero_logdet.assign(static_cast<std::size_t>(count), 0.0);
    st.squares.assign(static_cast<std::size_t>(count), 0.0);
    for (std::size_t j = 0; j < S; ++j) {
      st.inputs[j] = features[j].batch(start, count);
      st.permuted[j].resize(st.inputs[j].shape(), layout::nhwc);
      st.z[j].resize(st.inputs[j].shape(), layout::nhwc);
      st.permuted_views[j] = st.permuted[j].cview();
      st.permuted_out[j] = st.permuted[j].view();
      st.z_out[j] = st.z[j].view();
    }
    for (std::size_t b = 0; b < impl_->couplings.size(); ++b) {
      for (std::size_t j = 0; j < S; ++j)
        impl_->permutations[b][j]->forward(b == 0 ? st.inputs[j] : st.z[j].cview(), st.permuted_out[j], st.zero_logdet,
                                           *ws);
      impl_->couplings[b]->forward(st.permuted_views, st.z_out, st.logdet, *ws);
    }
    for (std::size_t j = 0; j < S; ++j) {
      add_squared_norms(st.z[j].cview(), st.squares);
      st.scale_maps[j].resize({count, 1, st.z[j].h(), st.z[j].w()}, layout::nchw);
      latent_map(st.z[j].cview(), st.scale_maps[j].view(), latent_statistic::energy);
      st.map_views[j] = st.scale_maps[j].cview();
    }
    for (index_t i = 0; i < count; ++i)
      out.image[static_cast<std::size_t>(start + i)] = 0.5 * st.squares[static_cast<std::size_t>(i)] / D;
    const view maps = out.maps.view().batch(start, count);
    combine_maps(span<const const_view>(st.map_views.data(), st.map_views.size()), maps, map_combination::product,
                 st.maps, span<const double>(options.cell_offsets.data(), options.cell_offsets.size()));
    float* m = maps.data();
    for (index_t i = 0; i < maps.numel(); ++i) m[i] *= energy_to_squares;
  }
}

// ------------------------------------------------------------------------------------------------
// Model files

model_file_contents csflow::to_model_file() const {
  if (!fitted_) throw error(errc::not_fitted, "csflow: nothing to save before fit() or load()");
  model_file_contents m = detail::model_file_header(*this);
  for (std::size_t b = 0; b < impl_->couplings.size(); ++b) {
    const std::string prefix = detail::block_prefix(static_cast<index_t>(b));
    for (std::size_t j = 0; j < cfg_.scales.size(); ++j) {
      const std::vector<index_t>& perm = impl_->permutations[b][j]->permutation();
      m.tensors.push_back({prefix + "scale" + std::to_string(j) + ".permutation",
                           {static_cast<index_t>(perm.size())},
                           std::vector<float>(perm.begin(), perm.end())});
    }
    detail::store_parameters(m, prefix, impl_->couplings[b]->parameters());
  }
  return m;
}

std::unique_ptr<csflow> csflow::from_model_file(const model_file_contents& m) {
  if (m.kind != "csflow") throw error(errc::bad_file, "model file holds a '" + m.kind + "' detector, not csflow");
  const csflow_config cfg = from_detector_config<csflow_config>(m.config, errc::bad_file);
  // Checked before the model is allocated: a file can only ask for as much as it holds.
  const double expected = size_of(cfg).stored;
  if (detail::stored_values(m) != expected)
    throw error(errc::bad_file, "model file holds " + detail::number_text(detail::stored_values(m)) +
                                    " values but its configuration needs " + detail::number_text(expected));
  auto model = std::make_unique<csflow>(cfg);
  model->impl_->build(cfg);
  std::size_t read = 0;
  for (std::size_t b = 0; b < model->impl_->couplings.size(); ++b) {
    const std::string prefix = detail::block_prefix(static_cast<index_t>(b));
    for (std::size_t j = 0; j < cfg.scales.size(); ++j) {
      // The permutations are drawn from the configuration's seed; a file that disagrees is not ours.
      const stored_tensor& perm = m.tensor_named(prefix + "scale" + std::to_string(j) + ".permutation");
      const std::vector<index_t>& expected_perm = model->impl_->permutations[b][j]->permutation();
      if (perm.values.size() != expected_perm.size() ||
          !std::equal(expected_perm.begin(), expected_perm.end(), perm.values.begin(),
                      [](index_t a, float v) { return static_cast<float>(a) == v; }))
        throw error(errc::bad_file, "model file tensor '" + perm.name + "' is not the permutation its seed draws");
      ++read;
    }
    read += detail::restore_parameters(m, prefix, model->impl_->couplings[b]->parameters());
  }
  detail::require_tensor_count(m, read);
  detail::restore_metadata(*model, m);
  model->fitted_ = true;
  return model;
}

namespace detail {

detector_registration csflow_registration() {
  detector_registration r;
  r.info = {"csflow", "CS-Flow: one flow over all scales with cross-scale coupling convolutions (Rudolph et al. 2022)",
            3};
  r.recommended = [](const feature_geometry& g) { return to_detector_config(csflow_config::recommended(g.shapes)); };
  r.make = [](const detector_config& config) -> std::unique_ptr<detector> {
    return std::make_unique<csflow>(from_detector_config<csflow_config>(config));
  };
  r.load = [](const model_file_contents& contents) -> std::unique_ptr<detector> {
    return csflow::from_model_file(contents);
  };
  r.paper = [] { return to_detector_config(csflow_config::paper()); };
  return r;
}

}  // namespace detail
}  // namespace v0
}  // namespace flowad
