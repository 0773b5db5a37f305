// The teacher-student detectors (STFPM, RD, FCL): configuration, training through the shared trainer,
// scoring, model files and the three registrations.
#include "flowad/detectors/teacher_student.hpp"

#include <algorithm>
#include <cmath>
#include <optional>

#include "detectors/common.hpp"
#include "detectors/registration.hpp"
#include "detectors/teacher_student/reverse_distillation_net.hpp"
#include "detectors/teacher_student/student_resnet.hpp"
#include "flowad/detail/config_fields.hpp"
#include "flowad/detail/workspace_pool.hpp"
#include "flowad/io/model_file.hpp"
#include "flowad/nn/consistency.hpp"
#include "flowad/nn/snc.hpp"
#include "flowad/scoring/aggregate.hpp"
#include "flowad/scoring/anomaly_map.hpp"
#include "flowad/train/trainer.hpp"

namespace flowad {
inline namespace v0 {

// ------------------------------------------------------------------------------------------------
// Configuration

namespace {

constexpr index_t image_channels = 3;

// FCL's defaults, chosen by `flowad validate` on the three development categories by the rule in
// docs/lab/teacher-student.md: the RD host, k = 3, the coded consistency alone (raw 0, coded 1); its
// margin over raw + codes and over RD alone is within the validation's noise (docs/algorithms.md).
constexpr index_t fcl_snc_kernel = 3;
constexpr double fcl_weight_raw = 0.0;
constexpr double fcl_weight_coded = 1.0;

// Epochs of the default budget: a 200-image category fits in under 5 minutes on this machine's 2 cores
// (docs/lab/teacher-student.md gives the step times behind them).
constexpr int rd_epochs = 20;
constexpr int stfpm_epochs = 30;

bool starts_with_image(const std::vector<scale_shape>& shapes, const std::vector<index_t>& strides) {
  if (shapes.empty() || shapes[0].channels != image_channels) return false;
  return strides.empty() ? shapes.size() == 4 : strides[0] == 1;
}

}  // namespace

training_options teacher_student_config::default_training(teacher_student_host host) {
  training_options t;
  t.batch_size = 16;
  t.max_grad_norm = 0.0;
  t.schedule.kind = lr_schedule::constant;
  t.optimizer.weight_decay = 0.0f;
  t.optimizer.eps = 1e-8f;
  if (host == teacher_student_host::rd) {
    // RD4AD main.py: Adam(lr 0.005, betas (0.5, 0.999)), batch 16.
    t.epochs = rd_epochs;
    t.optimizer.learning_rate = 5e-3f;
    t.optimizer.beta1 = 0.5f;
    t.optimizer.beta2 = 0.999f;
  } else {
    // STFPM trains with SGD(0.4, momentum 0.9, weight decay 1e-4), batch 32; the shared trainer is Adam:
    // Adam's usual 1e-3 with the recipe's weight decay.
    t.epochs = stfpm_epochs;
    t.optimizer.learning_rate = 1e-3f;
    t.optimizer.weight_decay = 1e-4f;
  }
  return t;
}

teacher_student_config teacher_student_config::recommended(const std::string& kind, const feature_geometry& g) {
  teacher_student_config cfg;
  cfg.scales = g.shapes;
  const bool image = starts_with_image(g.shapes, g.strides);
  cfg.host = kind == "stfpm" || (kind == "fcl" && image) ? teacher_student_host::stfpm : teacher_student_host::rd;
  if (kind == "fcl") {
    cfg.snc_kernel = fcl_snc_kernel;
    cfg.weight_raw = fcl_weight_raw;
    cfg.weight_coded = fcl_weight_coded;
  }
  // RD blurs its map with σ = 4 image pixels; STFPM does not blur.
  const std::size_t finest_teacher = cfg.host == teacher_student_host::stfpm ? 1 : 0;
  if (cfg.host == teacher_student_host::rd)
    cfg.blur_sigma = g.strides.size() > finest_teacher ? 4.0 / static_cast<double>(g.strides[finest_teacher]) : 1.0;
  else
    cfg.blur_sigma = 0.0;
  cfg.training = default_training(cfg.host);
  return cfg;
}

std::vector<scale_shape> teacher_student_config::teacher_scales() const {
  if (host == teacher_student_host::rd || scales.empty()) return scales;
  return {scales.begin() + 1, scales.end()};
}

void teacher_student_config::validate() const {
  const auto fail = [](const std::string& what) { throw error(errc::invalid_argument, "teacher_student_config: " + what); };
  if (scales.empty() || scales.size() > 8) fail("needs 1 to 8 scales, got " + std::to_string(scales.size()));
  for (const scale_shape& s : scales)
    if (s.channels <= 0 || s.height <= 0 || s.width <= 0 || s.channels > 4096 || s.height > 4096 || s.width > 4096)
      fail("scale shapes must be positive and at most 4096, got " + to_config_text(scales));
  const std::vector<scale_shape> teacher = teacher_scales();
  if (host == teacher_student_host::rd) {
    if (teacher.size() != 3) fail("the RD host needs three teacher levels, got " + std::to_string(teacher.size()));
  } else {
    if (scales[0].channels != image_channels)
      fail("the STFPM host reads the image as its first scale (3 channels; the pipeline's \"image\" level), got " +
           to_config_text(scales));
    if (teacher.empty() || teacher.size() > 4) fail("the STFPM host needs 1 to 4 teacher levels after the image");
    index_t h = ((scales[0].height - 1) / 2) / 2 + 1, w = ((scales[0].width - 1) / 2) / 2 + 1;
    for (const scale_shape& t : teacher) {
      if (t.height != h || t.width != w)
        fail("the STFPM student's levels have strides 4, 8, 16, ... of the image (sizes rounded up); the scales " +
             to_config_text(scales) + " do not");
      h = (h - 1) / 2 + 1;
      w = (w - 1) / 2 + 1;
    }
  }
  for (std::size_t l = 1; l < teacher.size(); ++l)
    if (teacher[l].height != (teacher[l - 1].height - 1) / 2 + 1 || teacher[l].width != (teacher[l - 1].width - 1) / 2 + 1)
      fail("each teacher level must be half the size of the one before (rounded up), got " + to_config_text(teacher));
  if (snc_kernel != 0 && (snc_kernel < 1 || snc_kernel > 15 || snc_kernel % 2 == 0))
    fail("snc.kernel must be 0 (no SNC) or odd in [1, 15], got " + std::to_string(snc_kernel));
  if (!(weight_raw >= 0.0 && std::isfinite(weight_raw))) fail("consistency.raw must be finite and >= 0");
  if (!(weight_coded >= 0.0 && std::isfinite(weight_coded))) fail("consistency.coded must be finite and >= 0");
  if (weight_raw + weight_coded <= 0.0) fail("consistency.raw and consistency.coded cannot both be 0");
  if (weight_coded > 0.0 && snc_kernel == 0) fail("consistency.coded > 0 needs SNC (snc.kernel > 0)");
  if (!(blur_sigma >= 0.0 && blur_sigma <= 64.0)) fail("map.blur_sigma must be in [0, 64]");
  training.validate();
}

// ------------------------------------------------------------------------------------------------
// The model

namespace {

nn::ts_distance distance_of(teacher_student_host host) {
  return host == teacher_student_host::rd ? nn::ts_distance::cosine : nn::ts_distance::normalized_l2;
}

double expected_values(const teacher_student_config& cfg) {
  const std::vector<scale_shape> teacher = cfg.teacher_scales();
  double count = 0.0;
  if (cfg.host == teacher_student_host::rd) {
    count = detail::reverse_distillation_net::parameter_count(teacher);
  } else {
    std::vector<index_t> widths;
    for (const scale_shape& t : teacher) widths.push_back(t.channels);
    count = detail::student_resnet::parameter_count(widths, image_channels);
  }
  if (cfg.snc_kernel > 0)
    for (const scale_shape& t : teacher) count += static_cast<double>(t.channels * cfg.snc_kernel * cfg.snc_kernel);
  return count;
}

}  // namespace

struct teacher_student::impl {
  teacher_student_host host;
  std::vector<scale_shape> teacher;  // the teacher's levels (the scales without the image)
  std::size_t first_teacher = 0;  // index of the first teacher level among the scales
  std::unique_ptr<detail::reverse_distillation_net> rd;
  std::unique_ptr<detail::student_resnet> student;
  std::vector<std::unique_ptr<nn::snc>> snc;  // one per teacher level, when configured
  mutable detail::workspace_pool pool;

  // What a forward pass and the maps need, per thread (scoring) or once (training).
  struct pass_buffers {
    std::vector<tensor> inputs;  // dense NHWC copies of the scales
    detail::reverse_distillation_net::activations rd;
    detail::student_resnet::activations student;
    tensor code_t, code_s;
  };
  struct score_state : layer_state {
    pass_buffers pass;
    std::vector<tensor> level_maps;
    std::vector<const_view> map_views;
    tensor coded_map;
    std::vector<double> offsets;
    map_buffers maps;
  };
  std::uint64_t score_state_id = detail::next_layer_id();

  std::size_t levels() const { return rd ? 3 : student->levels(); }

  std::vector<parameter*> trained() {
    std::vector<parameter*> all = rd ? rd->trained() : student->trained();
    for (auto& s : snc) all.push_back(&s->logits());
    return all;
  }
  std::vector<parameter*> parameters() {
    std::vector<parameter*> all = rd ? rd->parameters() : student->parameters();
    for (auto& s : snc) all.push_back(&s->logits());
    return all;
  }

  // The student's level l after forward().
  const tensor& student_level(const pass_buffers& b, std::size_t l) const {
    return rd ? rd->level(b.rd, l) : student->level(b.student, l);
  }
  const tensor& teacher_level(const pass_buffers& b, std::size_t l) const { return b.inputs[first_teacher + l]; }

  void copy_inputs(const feature_maps& features, index_t start, index_t count, pass_buffers& b) const {
    b.inputs.resize(features.size());
    for (std::size_t s = 0; s < features.size(); ++s) {
      const const_view v = features[s].batch(start, count);
      b.inputs[s].resize(v.shape(), layout::nhwc);
      copy(v, b.inputs[s].view());
    }
  }
};

teacher_student::teacher_student(const std::string& kind, const teacher_student_config& cfg)
    : kind_(kind), cfg_(cfg), impl_(std::make_unique<impl>()) {
  if (kind_ != "stfpm" && kind_ != "rd" && kind_ != "fcl")
    throw error(errc::invalid_argument, "teacher_student: unknown kind '" + kind_ + "' (stfpm, rd, fcl)");
  cfg_.validate();
  if (kind_ != "fcl") {
    const teacher_student_host own = kind_ == "rd" ? teacher_student_host::rd : teacher_student_host::stfpm;
    if (cfg_.host != own) throw error(errc::invalid_argument, "teacher_student_config: host must be " + kind_ + " for the " + kind_ + " detector");
    if (cfg_.snc_kernel != 0 || cfg_.weight_coded != 0.0)
      throw error(errc::invalid_argument, "teacher_student_config: SNC (snc.kernel, consistency.coded) belongs to the fcl detector, not " + kind_);
  }
  impl_->host = cfg_.host;
  impl_->teacher = cfg_.teacher_scales();
  const std::vector<scale_shape>& teacher = impl_->teacher;
  if (cfg_.host == teacher_student_host::rd) {
    impl_->rd = std::make_unique<detail::reverse_distillation_net>(teacher, cfg_.seed);
  } else {
    impl_->first_teacher = 1;
    std::vector<index_t> widths;
    for (const scale_shape& t : teacher) widths.push_back(t.channels);
    impl_->student = std::make_unique<detail::student_resnet>(widths, image_channels, cfg_.seed);
  }
  if (cfg_.snc_kernel > 0)
    for (std::size_t l = 0; l < teacher.size(); ++l)
      impl_->snc.push_back(std::make_unique<nn::snc>(teacher[l].channels, cfg_.snc_kernel, "snc.level" + std::to_string(l)));
}

teacher_student::~teacher_student() = default;

model_stats teacher_student::stats() const {
  model_stats s;
  for (const parameter* p : impl_->parameters()) s.parameters += static_cast<double>(p->size());
  const std::vector<scale_shape> teacher = cfg_.teacher_scales();
  s.macs_per_image = impl_->rd ? impl_->rd->macs() : impl_->student->macs(cfg_.scales[0].height, cfg_.scales[0].width);
  for (std::size_t l = 0; l < impl_->snc.size(); ++l)
    s.macs_per_image += 2.0 * impl_->snc[l]->macs(1, teacher[l].height, teacher[l].width);
  return s;
}

fit_report teacher_student::fit(const feature_maps& train, const fit_options& options) {
  const index_t n = detail::check_features(train, cfg_.scales, "training features");
  impl& m = *impl_;
  const std::size_t levels = m.levels();
  const nn::ts_distance distance = distance_of(cfg_.host);
  impl::pass_buffers b;
  std::vector<tensor> d_levels(levels);
  tensor d_code_t, d_code_s, unit_map;
  std::vector<double> per_sample, diff_per_sample;

  // Adds weight·(the level's consistency between t and s) to the loss and its gradient w.r.t. s to d_s
  // (and w.r.t. t to d_t, when given): RD's flattened cosine per sample, STFPM's mean cell distance.
  const auto consistency = [&](const tensor& t, const tensor& s, float* d_t, float* d_s, double weight) {
    const index_t bn = t.n(), c = t.c(), h = t.h(), w = t.w();
    double loss = 0.0;
    if (distance == nn::ts_distance::cosine) {
      per_sample.resize(static_cast<std::size_t>(bn));
      nn::flattened_cosine_distance(t.data(), s.data(), per_sample.data(), bn, c, h, w);
      for (double v : per_sample) loss += v;
      diff_per_sample.assign(static_cast<std::size_t>(bn), weight / static_cast<double>(bn));
      nn::flattened_cosine_distance_backward(t.data(), s.data(), diff_per_sample.data(), d_t, d_s, bn, c, h, w);
      return weight * loss / static_cast<double>(bn);
    }
    unit_map.resize({bn, 1, h, w}, layout::nchw);
    nn::distance_map(distance, t.data(), s.data(), unit_map.data(), bn, c, h, w);
    for (index_t i = 0; i < unit_map.numel(); ++i) loss += unit_map.data()[i];
    const double cells = static_cast<double>(bn * h * w);
    unit_map.fill(static_cast<float>(weight / cells));
    nn::distance_map_backward(distance, t.data(), s.data(), unit_map.data(), d_t, d_s, bn, c, h, w);
    return weight * loss / cells;
  };

  training_problem problem;
  problem.name = kind_ + "::fit";
  problem.samples = n;
  problem.trained = m.trained();
  problem.with_gradients = problem.trained;
  problem.step = [&](span<const index_t> samples, workspace& ws) {
    gather_samples(train, samples, b.inputs);
    if (m.rd)
      m.rd->forward_training(&b.inputs[0], b.rd, ws);
    else
      m.student->forward_training(b.inputs[0], b.student, ws);
    double loss = 0.0;
    for (std::size_t l = 0; l < levels; ++l) {
      const tensor& t = m.teacher_level(b, l);
      const tensor& s = m.student_level(b, l);
      d_levels[l].resize(s.shape(), layout::nhwc);
      d_levels[l].fill(0.0f);
      if (cfg_.weight_raw > 0.0) loss += consistency(t, s, nullptr, d_levels[l].data(), cfg_.weight_raw);
      if (cfg_.weight_coded > 0.0) {
        nn::snc& code = *m.snc[l];
        b.code_t.resize(t.shape(), layout::nhwc);
        b.code_s.resize(s.shape(), layout::nhwc);
        code.forward(t.data(), b.code_t.data(), t.n(), t.h(), t.w());
        code.forward(s.data(), b.code_s.data(), s.n(), s.h(), s.w());
        d_code_t.resize(t.shape(), layout::nhwc);
        d_code_s.resize(s.shape(), layout::nhwc);
        d_code_t.fill(0.0f);
        d_code_s.fill(0.0f);
        loss += consistency(b.code_t, b.code_s, d_code_t.data(), d_code_s.data(), cfg_.weight_coded);
        code.backward(s.data(), d_code_s.data(), d_levels[l].data(), s.n(), s.h(), s.w());
        code.backward(t.data(), d_code_t.data(), nullptr, t.n(), t.h(), t.w());
      }
    }
    if (!std::isfinite(loss)) return loss;
    if (m.rd)
      m.rd->backward(&b.inputs[0], b.rd, d_levels, ws);
    else
      m.student->backward(b.inputs[0], b.student, d_levels, ws);
    return loss;
  };
  fit_report report = flowad::train(problem, cfg_.training, options);
  fitted_ = true;
  return report;
}

void teacher_student::score(const feature_maps& features, const score_options& options, scores& out) const {
  if (!fitted_) throw error(errc::not_fitted, kind_ + "::score called before fit() or load()");
  const index_t n = detail::check_features(features, cfg_.scales, "features");
  detail::check_score_options(options, cfg_.scales.size());
  const impl& m = *impl_;
  const std::size_t levels = m.levels();
  const std::vector<scale_shape>& teacher = m.teacher;
  const index_t map_h = detail::map_height(options, teacher), map_w = detail::map_width(options, teacher);
  out.image.resize(static_cast<std::size_t>(n));
  out.maps.resize({n, 1, map_h, map_w}, layout::nchw);
  const nn::ts_distance distance = distance_of(cfg_.host);
  const map_combination how = cfg_.host == teacher_student_host::rd ? map_combination::sum : map_combination::product;
  const double sigma = cfg_.blur_sigma * static_cast<double>(map_h) / static_cast<double>(teacher[0].height);

  auto ws = m.pool.acquire();
  auto& st = ws->state<impl::score_state>(m.score_state_id);
  st.level_maps.resize(levels);
  st.map_views.resize(levels);
  st.offsets.resize(levels);
  for (std::size_t l = 0; l < levels; ++l)
    st.offsets[l] = options.cell_offsets.empty() ? 0.0 : options.cell_offsets[m.first_teacher + l];
  for (index_t start = 0; start < n; start += options.batch_size) {
    const index_t count = std::min(options.batch_size, n - start);
    m.copy_inputs(features, start, count, st.pass);
    if (m.rd)
      m.rd->forward_inference(&st.pass.inputs[0], st.pass.rd, *ws);
    else
      m.student->forward_inference(st.pass.inputs[0], st.pass.student, *ws);
    for (std::size_t l = 0; l < levels; ++l) {
      const tensor& t = m.teacher_level(st.pass, l);
      const tensor& s = m.student_level(st.pass, l);
      tensor& level_map = st.level_maps[l];
      level_map.resize({count, 1, t.h(), t.w()}, layout::nchw);
      const std::size_t cells = static_cast<std::size_t>(level_map.numel());
      if (cfg_.weight_raw > 0.0) {
        nn::distance_map(distance, t.data(), s.data(), level_map.data(), count, t.c(), t.h(), t.w());
        for (std::size_t i = 0; i < cells; ++i) level_map.data()[i] *= static_cast<float>(cfg_.weight_raw);
      } else {
        level_map.fill(0.0f);
      }
      if (cfg_.weight_coded > 0.0) {
        const nn::snc& code = *m.snc[l];
        st.pass.code_t.resize(t.shape(), layout::nhwc);
        st.pass.code_s.resize(s.shape(), layout::nhwc);
        code.forward(t.data(), st.pass.code_t.data(), count, t.h(), t.w());
        code.forward(s.data(), st.pass.code_s.data(), count, s.h(), s.w());
        st.coded_map.resize(level_map.shape(), layout::nchw);
        nn::distance_map(distance, st.pass.code_t.data(), st.pass.code_s.data(), st.coded_map.data(), count, t.c(), t.h(), t.w());
        for (std::size_t i = 0; i < cells; ++i)
          level_map.data()[i] += static_cast<float>(cfg_.weight_coded) * st.coded_map.data()[i];
      }
      st.map_views[l] = level_map.cview();
    }
    const view maps = out.maps.view().batch(start, count);
    combine_maps(span<const const_view>(st.map_views.data(), st.map_views.size()), maps, how, st.maps,
                 span<const double>(st.offsets.data(), st.offsets.size()));
    if (sigma > 0.0) gaussian_blur(maps, maps, sigma, st.maps);
    image_scores(maps, score_aggregation::max, span<double>(out.image.data() + start, static_cast<std::size_t>(count)));
  }
}

// ------------------------------------------------------------------------------------------------
// Model files

model_file_contents teacher_student::to_model_file() const {
  if (!fitted_) throw error(errc::not_fitted, kind_ + "::to_model_file called before fit() or load()");
  model_file_contents m = detail::model_file_header(*this);
  detail::store_parameters(m, "", impl_->parameters());
  return m;
}

std::unique_ptr<teacher_student> teacher_student::from_model_file(const model_file_contents& m) {
  if (m.kind != "stfpm" && m.kind != "rd" && m.kind != "fcl")
    throw error(errc::bad_file, "model file holds a '" + m.kind + "' detector, not a teacher-student one");
  const teacher_student_config cfg = from_detector_config<teacher_student_config>(m.config, errc::bad_file);
  // Checked before the model is allocated: a file can only ask for as much as it holds.
  const double expected = expected_values(cfg);
  if (detail::stored_values(m) != expected)
    throw error(errc::bad_file, "model file holds " + detail::number_text(detail::stored_values(m)) +
                                    " values but its configuration needs " + detail::number_text(expected));
  std::unique_ptr<teacher_student> model;
  try {
    model = std::make_unique<teacher_student>(m.kind, cfg);
  } catch (const error& e) {
    throw error(errc::bad_file, std::string("model file's configuration: ") + e.what());
  }
  const std::size_t read = detail::restore_parameters(m, "", model->impl_->parameters());
  detail::require_tensor_count(m, read);
  detail::restore_metadata(*model, m);
  model->fitted_ = true;
  return model;
}

namespace detail {

namespace {

detector_registration teacher_student_registration(const char* kind, const char* summary) {
  detector_registration r;
  r.info.kind = kind;
  r.info.summary = summary;
  r.info.recipe_levels = 3;
  // STFPM's student reads the image; so does FCL on that host.
  r.info.reads_image = std::string(kind) == "stfpm";
  if (std::string(kind) == "fcl") r.info.reads_image_when = "host=stfpm";
  return r;
}

// Before the configuration's own checks, which would complain about the scales a wrong host implies.
void check_host_setting(const std::string& kind, const detector_config& config) {
  const std::string* host = config.find("host");
  if (kind != "fcl" && host && *host != kind)
    throw error(errc::invalid_argument, "teacher_student_config: host must be " + kind + " for the " + kind +
                                            " detector (--host chooses fcl's host)");
}

}  // namespace

#define FLOWAD_TEACHER_STUDENT_FUNCTIONS(kind)                                                                     \
  r.recommended = [](const feature_geometry& g) {                                                                  \
    return to_detector_config(teacher_student_config::recommended(kind, g));                                       \
  };                                                                                                                \
  r.make = [](const detector_config& config) -> std::unique_ptr<detector> {                                        \
    check_host_setting(kind, config);                                                                               \
    return std::make_unique<teacher_student>(kind, from_detector_config<teacher_student_config>(config));          \
  };                                                                                                                \
  r.load = [](const model_file_contents& contents) -> std::unique_ptr<detector> {                                  \
    return teacher_student::from_model_file(contents);                                                              \
  };

detector_registration stfpm_registration() {
  detector_registration r = teacher_student_registration(
      "stfpm", "STFPM: a ResNet18-shaped student trained on the image to match the teacher's levels (Wang et al. 2021)");
  FLOWAD_TEACHER_STUDENT_FUNCTIONS("stfpm")
  return r;
}

detector_registration rd_registration() {
  detector_registration r = teacher_student_registration(
      "rd", "Reverse Distillation: a one-class bottleneck and a decoder that rebuilds the teacher's levels (Deng & Li 2022)");
  FLOWAD_TEACHER_STUDENT_FUNCTIONS("rd")
  return r;
}

detector_registration fcl_registration() {
  detector_registration r = teacher_student_registration(
      "fcl", "FCL: feature consistency on raw and spatial-neighbourhood-coded features of a T-S host (Li & Hu 2024; reconstructed)");
  FLOWAD_TEACHER_STUDENT_FUNCTIONS("fcl")
  return r;
}

#undef FLOWAD_TEACHER_STUDENT_FUNCTIONS

}  // namespace detail
}  // namespace v0
}  // namespace flowad
