// DifferNet: configuration, the flow, training (through the shared trainer), scoring, model files and
// registration.
#include "flowad/detectors/differnet.hpp"

#include <algorithm>
#include <cmath>

#include "detectors/common.hpp"
#include "detectors/registration.hpp"
#include "flowad/detail/config_fields.hpp"
#include "flowad/detail/random.hpp"
#include "flowad/detail/workspace_pool.hpp"
#include "flowad/io/model_file.hpp"
#include "flowad/layers/permute.hpp"
#include "flowad/layers/sequential_flow.hpp"
#include "flowad/layers/vector_coupling.hpp"
#include "flowad/train/nll.hpp"
#include "flowad/train/trainer.hpp"

namespace flowad {
inline namespace v0 {

// ------------------------------------------------------------------------------------------------
// Configuration

training_options differnet_config::default_training() {
  // differnet config.py / train.py: Adam(lr 2e-4, betas (0.8, 0.8), eps 1e-4, weight decay 1e-5), batch
  // 24 images × their transforms, no schedule, no clipping.
  training_options t;
  t.epochs = default_epochs;
  t.batch_size = images_per_batch;
  t.optimizer.learning_rate = 2e-4f;
  t.optimizer.beta1 = 0.8f;
  t.optimizer.beta2 = 0.8f;
  t.optimizer.eps = 1e-4f;
  t.optimizer.weight_decay = 1e-5f;
  t.max_grad_norm = 0.0;
  t.schedule.kind = lr_schedule::constant;
  return t;
}

differnet_config differnet_config::recommended(std::vector<scale_shape> scales) {
  differnet_config cfg;
  cfg.scales = std::move(scales);
  return cfg;
}

differnet_config differnet_config::paper() {
  differnet_config cfg;
  cfg.scales = {{256, 13, 13}, {256, 6, 6}, {256, 2, 2}};
  cfg.training.epochs = 192;  // meta_epochs 24 × sub_epochs 8
  return cfg;
}

index_t differnet_config::input_size() const noexcept {
  index_t d = 0;
  for (const scale_shape& s : scales) d += s.channels;
  return d;
}

void differnet_config::validate() const {
  const auto fail = [](const std::string& what) { throw error(errc::invalid_argument, "differnet_config: " + what); };
  if (scales.empty() || scales.size() > 16) fail("needs 1 to 16 scales, got " + std::to_string(scales.size()));
  for (const scale_shape& s : scales)
    if (s.channels < 1 || s.height <= 0 || s.width <= 0 || s.channels > (1 << 16) || s.height > (1 << 14) || s.width > (1 << 14))
      fail("scale shapes must have channels and plausible sizes, got " + to_config_text(scales));
  if (input_size() < 2) fail("the pooled features need at least 2 values, got " + std::to_string(input_size()));
  if (blocks <= 0 || blocks > 4096) fail("blocks must be in [1, 4096], got " + std::to_string(blocks));
  if (hidden <= 0 || hidden > (1 << 16)) fail("hidden must be in [1, 65536], got " + std::to_string(hidden));
  if (hidden_layers < 1 || hidden_layers > 64) fail("hidden_layers must be in [1, 64], got " + std::to_string(hidden_layers));
  if (!(clamp_alpha > 0.0f && std::isfinite(clamp_alpha))) fail("clamp_alpha must be positive and finite");
  if (train_rotations < 1 || train_rotations > 1024)
    fail("rotations.train must be in [1, 1024], got " + std::to_string(train_rotations));
  if (test_rotations < 1 || test_rotations > 1024)
    fail("rotations.test must be in [1, 1024], got " + std::to_string(test_rotations));
  training.validate();
}

// ------------------------------------------------------------------------------------------------
// The model

namespace {

std::uint64_t block_seed(std::uint64_t seed, index_t block) {
  detail::rng r(seed ^ (0xD6E8FEB86659FD93ull * static_cast<std::uint64_t>(block + 1)));
  return r.next();
}

vector_coupling_config coupling_of(const differnet_config& cfg, index_t block) {
  vector_coupling_config c;
  c.channels = cfg.input_size();
  c.hidden = cfg.hidden;
  c.hidden_layers = cfg.hidden_layers;
  c.clamp = {clamp_kind::atan, cfg.clamp_alpha};
  c.output_clamp = 1e6f;
  c.seed = block_seed(cfg.seed, block);
  return c;
}


// out (N x d x 1 x 1, dense) = each scale's mean over H, W, concatenated in scale order.
void pool_features(const feature_maps& features, index_t first, index_t count, tensor& out, index_t d) {
  out.resize({count, d, 1, 1}, layout::nhwc);
  float* o = out.data();
#pragma omp parallel for schedule(static) if (count > 1)
  for (index_t n = 0; n < count; ++n) {
    index_t offset = 0;
    for (const const_view& f : features) {
      const index_t C = f.c(), H = f.h(), W = f.w();
      const double inv = 1.0 / static_cast<double>(H * W);
      for (index_t c = 0; c < C; ++c) {
        double sum = 0.0;
        for (index_t y = 0; y < H; ++y)
          for (index_t x = 0; x < W; ++x) sum += f(first + n, c, y, x);
        o[n * d + offset + c] = static_cast<float>(sum * inv);
      }
      offset += C;
    }
  }
}

}  // namespace

struct differnet::impl {
  std::unique_ptr<sequential_flow> flow;
  mutable detail::workspace_pool pool;

  struct score_state : layer_state {
    tensor pooled, z;
    std::vector<double> logdet;
  };
  std::uint64_t score_state_id = detail::next_layer_id();
};

differnet::differnet(const differnet_config& cfg) : cfg_(cfg), impl_(std::make_unique<impl>()) {
  cfg_.validate();
  const index_t d = cfg_.input_size();
  impl_->flow = std::make_unique<sequential_flow>(d);
  for (index_t b = 0; b < cfg_.blocks; ++b) {
    // permute_layer(seed = k) before each coupling, as the reference's nf_head.
    impl_->flow->emplace<permute>(d, block_seed(cfg_.seed, b) + 1);
    impl_->flow->emplace<vector_coupling>(coupling_of(cfg_, b));
  }
}

differnet::~differnet() = default;

std::vector<const parameter*> differnet::parameters() const {
  const std::vector<parameter*> ps = impl_->flow->parameters();
  return {ps.begin(), ps.end()};
}

model_stats differnet::stats() const {
  model_stats s;
  for (const parameter* p : parameters()) s.parameters += static_cast<double>(p->size());
  s.macs_per_image = impl_->flow->macs_per_sample(1, 1);  // per transformed copy
  return s;
}

image_rotations differnet::rotations() const {
  image_rotations r;
  r.training_copies = cfg_.train_rotations;
  r.training_seed = cfg_.rotation_seed;
  for (index_t i = 0; i < cfg_.test_rotations; ++i)
    r.test_angles.push_back(360.0 * static_cast<double>(i) / static_cast<double>(cfg_.test_rotations));
  return r;
}

fit_report differnet::fit(const feature_maps& train, const fit_options& options) {
  const index_t n = detail::check_features(train, cfg_.scales, "training features");
  const index_t copies = cfg_.train_rotations;
  if (n % copies != 0)
    throw error(errc::shape_mismatch, "differnet::fit takes " + std::to_string(copies) +
                                          " consecutive copies per image (rotations.train), got " + std::to_string(n) +
                                          " samples, not a multiple of it");
  const index_t d = cfg_.input_size();
  // The flow sees only the pooled vectors: pool every sample once.
  tensor pooled, batch;
  pool_features(train, 0, n, pooled, d);
  std::vector<flow_layer*> flows{impl_->flow.get()};
  nll_objective objective(flows, nll_normalization::per_dimension);

  training_problem problem;
  problem.name = "differnet::fit";
  problem.samples = n / copies;  // images: a batch takes each with all its copies
  problem.trained = impl_->flow->parameters();
  problem.with_gradients = problem.trained;
  problem.step = [&](span<const index_t> images, workspace& ws) {
    const index_t rows = static_cast<index_t>(images.size()) * copies;
    batch.resize({rows, d, 1, 1}, layout::nhwc);
    for (std::size_t i = 0; i < images.size(); ++i) {
      const float* from = pooled.data() + images[i] * copies * d;
      std::copy(from, from + copies * d, batch.data() + static_cast<index_t>(i) * copies * d);
    }
    return objective.forward_backward({batch.cview()}, ws);
  };
  fit_report report = flowad::train(problem, cfg_.training, options);
  fitted_ = true;
  return report;
}

void differnet::score(const feature_maps& features, const score_options& options, scores& out) const {
  if (!fitted_) throw error(errc::not_fitted, "differnet::score called before fit() or load()");
  const index_t n = detail::check_features(features, cfg_.scales, "features");
  detail::check_score_options(options, cfg_.scales.size());
  const index_t d = cfg_.input_size();
  out.image.resize(static_cast<std::size_t>(n));
  out.maps.resize({n, 1, 0, 0}, layout::nchw);  // DifferNet does not localise

  auto ws = impl_->pool.acquire();
  auto& st = ws->state<impl::score_state>(impl_->score_state_id);
  for (index_t start = 0; start < n; start += options.batch_size) {
    const index_t count = std::min(options.batch_size, n - start);
    pool_features(features, start, count, st.pooled, d);
    st.z.resize(st.pooled.shape(), layout::nhwc);
    st.logdet.assign(static_cast<std::size_t>(count), 0.0);
    impl_->flow->forward(st.pooled.cview(), st.z.view(), st.logdet, *ws);
    // mean z² over the dimensions (train.py: no 0.5, no log-determinant).
    for (index_t i = 0; i < count; ++i) {
      double sum = 0.0;
      const float* z = st.z.data() + i * d;
      for (index_t j = 0; j < d; ++j) sum += static_cast<double>(z[j]) * z[j];
      out.image[static_cast<std::size_t>(start + i)] = sum / static_cast<double>(d);
    }
  }
}

// ------------------------------------------------------------------------------------------------
// Model files

model_file_contents differnet::to_model_file() const {
  if (!fitted_) throw error(errc::not_fitted, "differnet::to_model_file called before fit() or load()");
  model_file_contents m = detail::model_file_header(*this);
  sequential_flow& flow = *impl_->flow;
  for (index_t b = 0; b < cfg_.blocks; ++b) {
    const auto& perm = dynamic_cast<const permute&>(flow.layer(static_cast<std::size_t>(2 * b))).permutation();
    m.tensors.push_back({detail::block_prefix(b) + "permutation", {static_cast<index_t>(perm.size())}, std::vector<float>(perm.begin(), perm.end())});
    detail::store_parameters(m, detail::block_prefix(b), flow.layer(static_cast<std::size_t>(2 * b + 1)).parameters());
  }
  return m;
}

std::unique_ptr<differnet> differnet::from_model_file(const model_file_contents& m) {
  if (m.kind != "differnet") throw error(errc::bad_file, "model file holds a '" + m.kind + "' detector, not differnet");
  const differnet_config cfg = from_detector_config<differnet_config>(m.config, errc::bad_file);
  // Checked before the model is allocated: a file can only ask for as much as it holds.
  double expected = 0.0;
  for (index_t b = 0; b < cfg.blocks; ++b)
    expected += static_cast<double>(cfg.input_size()) + vector_coupling::parameter_count(coupling_of(cfg, b));
  if (detail::stored_values(m) != expected)
    throw error(errc::bad_file, "model file holds " + detail::number_text(detail::stored_values(m)) +
                                    " values but its configuration needs " + detail::number_text(expected));
  auto model = std::make_unique<differnet>(cfg);
  sequential_flow& flow = *model->impl_->flow;
  std::size_t read = 0;
  for (index_t b = 0; b < cfg.blocks; ++b) {
    // The permutations are drawn from the configuration's seed; a file that disagrees is not ours.
    const stored_tensor& perm = m.tensor_named(detail::block_prefix(b) + "permutation");
    const auto& expected_perm = dynamic_cast<const permute&>(flow.layer(static_cast<std::size_t>(2 * b))).permutation();
    if (perm.values.size() != expected_perm.size() ||
        !std::equal(expected_perm.begin(), expected_perm.end(), perm.values.begin(),
                    [](index_t a, float v) { return static_cast<float>(a) == v; }))
      throw error(errc::bad_file, "model file tensor '" + perm.name + "' is not the permutation its seed draws");
    read += 1 + detail::restore_parameters(m, detail::block_prefix(b), flow.layer(static_cast<std::size_t>(2 * b + 1)).parameters());
  }
  detail::require_tensor_count(m, read);
  detail::restore_metadata(*model, m);
  model->fitted_ = true;
  return model;
}

namespace detail {

detector_registration differnet_registration() {
  detector_registration r;
  r.info = {"differnet", "DifferNet: an image-level flow on pooled features of rotated copies (Rudolph et al. 2021)", 3};
  r.recommended = [](const feature_geometry& g) { return to_detector_config(differnet_config::recommended(g.shapes)); };
  r.make = [](const detector_config& config) -> std::unique_ptr<detector> {
    return std::make_unique<differnet>(from_detector_config<differnet_config>(config));
  };
  r.load = [](const model_file_contents& contents) -> std::unique_ptr<detector> { return differnet::from_model_file(contents); };
  r.paper = [] { return to_detector_config(differnet_config::paper()); };
  return r;
}

}  // namespace detail
}  // namespace v0
}  // namespace flowad
