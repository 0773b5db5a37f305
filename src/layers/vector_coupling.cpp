#include "flowad/layers/vector_coupling.hpp"

#include <algorithm>
#include <cmath>

#include "flowad/detail/checks.hpp"
#include "flowad/detail/random.hpp"
#include "kernels/channel_ops.hpp"

namespace flowad {
inline namespace v0 {

namespace {
// The elementwise steps around the products (bias, ReLU, bias gradients) are a few hundred thousand
// values per step: a parallel region (and its barrier, costly on a busy machine) pays only far above that.
constexpr index_t elementwise_parallel_threshold = index_t{1} << 21;
}  // namespace

// An MLP in → hidden (ReLU) × hidden_layers → out on row-major rows, every product on oneDNN.
struct vector_coupling::subnet {
  subnet(const char* name, index_t in_width, index_t out_width, const vector_coupling_config& c, detail::rng& r)
      : in(in_width), out(out_width), hidden(c.hidden), depth(c.hidden_layers + 1) {
    for (index_t l = 0; l < depth; ++l) {
      const index_t fan_in = input_width(l), fan_out = output_width(l);
      const std::string prefix = std::string(name) + ".fc" + std::to_string(l) + ".";
      weights.push_back(std::make_unique<parameter>(prefix + "weight", std::vector<index_t>{fan_out, fan_in}));
      biases.push_back(std::make_unique<parameter>(prefix + "bias", std::vector<index_t>{fan_out}));
      // nn.Linear's default: kaiming_uniform(a = √5) for weights, i.e. U(±1/√fan_in), and the same for biases.
      const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
      for (parameter* p : {weights.back().get(), biases.back().get()}) {
        for (float& v : p->values()) v = static_cast<float>(r.uniform(-bound, bound));
        p->mark_updated();
      }
    }
  }

  index_t input_width(index_t l) const noexcept { return l == 0 ? in : hidden; }
  index_t output_width(index_t l) const noexcept { return l == depth - 1 ? out : hidden; }

  // raw = MLP(x) for `rows` rows of x (row stride ldx); acts[l] receives layer l's ReLU output
  // (rows x hidden each, hidden_layers of them).
  void forward(const float* x, index_t ldx, index_t rows, std::vector<tensor>& acts, float* raw,
               detail::exec_context& ctx) const {
    const float* input = x;
    index_t ld = ldx;
    for (index_t l = 0; l < depth; ++l) {
      const bool last = l == depth - 1;
      const index_t width = output_width(l);
      float* y = raw;
      if (!last) {
        acts[static_cast<std::size_t>(l)].resize({rows, width, 1, 1}, layout::nhwc);
        y = acts[static_cast<std::size_t>(l)].data();
      }
      mm.run(false, true, rows, width, input_width(l), input, ld, weights[l]->data(), input_width(l), y, width, 0.0f, ctx);
      const float* b = biases[l]->data();
#pragma omp parallel for schedule(static) if (rows * width >= elementwise_parallel_threshold)
      for (index_t r = 0; r < rows; ++r) {
        float* row = y + r * width;
        if (last)
          for (index_t j = 0; j < width; ++j) row[j] += b[j];
        else
          for (index_t j = 0; j < width; ++j) row[j] = std::max(row[j] + b[j], 0.0f);
      }
      input = y;
      ld = width;
    }
  }

  // Given diff_raw (rows x out) for the last forward() of x with activations acts: adds dL/dθ to the
  // parameters' gradients and writes dL/dx into diff_x (rows x in, dense). diff_raw is overwritten.
  void backward(const float* x, index_t ldx, index_t rows, const std::vector<tensor>& acts, float* diff_raw,
                float* diff_x, tensor (&diff_hidden)[2], detail::exec_context& ctx) {
    float* diff = diff_raw;
    for (index_t l = depth - 1; l >= 0; --l) {
      const index_t fan_in = input_width(l), fan_out = output_width(l);
      const float* input = l == 0 ? x : acts[static_cast<std::size_t>(l - 1)].data();
      const index_t ld = l == 0 ? ldx : hidden;
      // dW += diffᵀ·input, db += Σ_rows diff.
      mm.run(true, false, fan_out, fan_in, rows, diff, fan_out, input, ld, weights[l]->grad(), fan_in, 1.0f, ctx);
      float* db = biases[l]->grad();
#pragma omp parallel for schedule(static) if (rows * fan_out >= elementwise_parallel_threshold)
      for (index_t j = 0; j < fan_out; ++j) {
        float sum = 0.0f;
        for (index_t r = 0; r < rows; ++r) sum += diff[r * fan_out + j];
        db[j] += sum;
      }
      // d input = diff·W, then through the previous layer's ReLU.
      float* diff_input = diff_x;
      if (l > 0) {
        tensor& next = diff_hidden[l % 2];
        next.resize({rows, hidden, 1, 1}, layout::nhwc);
        diff_input = next.data();
      }
      mm.run(false, false, rows, fan_in, fan_out, diff, fan_out, weights[l]->data(), fan_in, diff_input, fan_in, 0.0f, ctx);
      if (l > 0) {
        const float* act = acts[static_cast<std::size_t>(l - 1)].data();
        const index_t count = rows * hidden;
#pragma omp parallel for schedule(static) if (count >= elementwise_parallel_threshold)
        for (index_t i = 0; i < count; ++i)
          if (!(act[i] > 0.0f)) diff_input[i] = 0.0f;
      }
      diff = diff_input;
    }
  }

  double macs(index_t rows) const noexcept {
    double m = 0.0;
    for (index_t l = 0; l < depth; ++l) m += static_cast<double>(input_width(l)) * static_cast<double>(output_width(l));
    return m * static_cast<double>(rows);
  }

  static double parameter_count(index_t in, index_t out, index_t hidden, index_t hidden_layers) noexcept {
    const double i = static_cast<double>(in), o = static_cast<double>(out), h = static_cast<double>(hidden);
    return i * h + h + static_cast<double>(hidden_layers - 1) * (h * h + h) + h * o + o;
  }

  index_t in, out, hidden, depth;
  std::vector<std::unique_ptr<parameter>> weights, biases;
  detail::matmul mm;
};

// Per workspace: the subnets' activations and raw outputs (kept for backward() after a training pass),
// and the buffers of the elementwise steps.
struct vector_coupling::state : layer_state {
  std::vector<tensor> acts2, acts1;
  tensor raw2, raw1, y1, x_copy, out_buffer, x_inverse;
  tensor diff_raw2, diff_raw1, diff_y1, diff_sub, diff_hidden[2], diff_src_buffer;
  shape4 trained_shape{};
  bool has_training = false;
};

vector_coupling::vector_coupling(const vector_coupling_config& cfg) : cfg_(cfg) {
  const auto fail = [](const std::string& what) { throw error(errc::invalid_argument, "vector_coupling: " + what); };
  if (cfg.channels < 2) fail("needs at least 2 channels, got " + std::to_string(cfg.channels));
  if (cfg.hidden <= 0) fail("needs a positive hidden width, got " + std::to_string(cfg.hidden));
  if (cfg.hidden_layers < 1) fail("needs at least one hidden layer, got " + std::to_string(cfg.hidden_layers));
  if (cfg.clamp.kind != clamp_kind::none && !(cfg.clamp.alpha > 0.0f && std::isfinite(cfg.clamp.alpha)))
    fail("soft clamp alpha must be positive and finite");
  if (!(cfg.output_clamp > 0.0f)) fail("output_clamp must be positive");
  first_ = cfg.channels / 2;
  second_ = cfg.channels - first_;
  detail::rng r(cfg.seed);
  // The reference's order of construction: s1 (d1 → 2·d2) then s2 (d2 → 2·d1).
  s1_ = std::make_unique<subnet>("s1", first_, 2 * second_, cfg, r);
  s2_ = std::make_unique<subnet>("s2", second_, 2 * first_, cfg, r);
}

vector_coupling::~vector_coupling() = default;

std::vector<parameter*> vector_coupling::parameters() {
  std::vector<parameter*> ps;
  for (subnet* s : {s2_.get(), s1_.get()})
    for (std::size_t l = 0; l < s->weights.size(); ++l) ps.insert(ps.end(), {s->weights[l].get(), s->biases[l].get()});
  return ps;
}

double vector_coupling::macs_per_sample(index_t h, index_t w) const noexcept { return s1_->macs(h * w) + s2_->macs(h * w); }

double vector_coupling::parameter_count(const vector_coupling_config& cfg) noexcept {
  const index_t d1 = cfg.channels / 2, d2 = cfg.channels - d1;
  return subnet::parameter_count(d1, 2 * d2, cfg.hidden, cfg.hidden_layers) +
         subnet::parameter_count(d2, 2 * d1, cfg.hidden, cfg.hidden_layers);
}

void vector_coupling::clear_primitive_cache() {
  s1_->mm.clear_cache();
  s2_->mm.clear_cache();
}

void vector_coupling::check(const_view in, const char* in_name, const_view out, const char* out_name) const {
  detail::require_layer_pair("vector_coupling", cfg_.channels, in, in_name, out, out_name);
}

namespace {

// Copies what was written to kernels::dense_nhwc_output's buffer into dst (nothing when dst was dense).
void finish_output(view dst, const tensor& buffer) {
  if (!dst.is_dense(layout::nhwc)) copy(buffer.cview(), dst);
}

}  // namespace

void vector_coupling::forward(const_view src, view dst, span<double> logdet, workspace& ws, pass_mode mode) const {
  check(src, "src", dst, "dst");
  detail::require_size(logdet.size(), static_cast<std::size_t>(src.n()), "logdet");
  const shape4 s = src.shape();
  const index_t C = cfg_.channels, d1 = first_, d2 = second_, pixels = s.h * s.w, rows = s.n * pixels;
  state& st = ws.state<state>(id());
  st.has_training = false;
  const float* x = kernels::dense_nhwc(src, st.x_copy);
  float* out = kernels::dense_nhwc_output(dst, st.out_buffer);
  detail::exec_context& ctx = ws.exec();
  st.acts2.resize(static_cast<std::size_t>(cfg_.hidden_layers));
  st.acts1.resize(static_cast<std::size_t>(cfg_.hidden_layers));
  st.raw2.resize({rows, 2 * d1, 1, 1}, layout::nhwc);
  st.raw1.resize({rows, 2 * d2, 1, 1}, layout::nhwc);
  st.y1.resize({rows, d1, 1, 1}, layout::nhwc);
  const soft_clamp clamp = cfg_.clamp;
  const float limit = cfg_.output_clamp;

  // y1 = exp(φ(s2)) ⊙ x1 + t2 with (s2, t2) = S2(x2).
  s2_->forward(x + d1, C, rows, st.acts2, st.raw2.data(), ctx);
  float* y1 = st.y1.data();
  const float* raw2 = st.raw2.data();
  for (index_t r = 0; r < rows; ++r) {
    double sum = 0.0;
    for (index_t j = 0; j < d1; ++j) {
      const double phi = clamp.apply(raw2[r * 2 * d1 + j]);
      sum += phi;
      y1[r * d1 + j] = static_cast<float>(std::exp(phi) * x[r * C + j] + raw2[r * 2 * d1 + d1 + j]);
    }
    logdet[static_cast<std::size_t>(r / pixels)] += sum;
  }
  // y2 = exp(φ(s1)) ⊙ x2 + t1 with (s1, t1) = S1(y1).
  s1_->forward(y1, d1, rows, st.acts1, st.raw1.data(), ctx);
  const float* raw1 = st.raw1.data();
  for (index_t r = 0; r < rows; ++r) {
    double sum = 0.0;
    float* o = out + r * C;
    for (index_t j = 0; j < d2; ++j) {
      const double phi = clamp.apply(raw1[r * 2 * d2 + j]);
      sum += phi;
      o[d1 + j] = std::clamp(static_cast<float>(std::exp(phi) * x[r * C + d1 + j] + raw1[r * 2 * d2 + d2 + j]), -limit, limit);
    }
    for (index_t j = 0; j < d1; ++j) o[j] = std::clamp(y1[r * d1 + j], -limit, limit);
    logdet[static_cast<std::size_t>(r / pixels)] += sum;
  }
  finish_output(dst, st.out_buffer);
  st.has_training = mode == pass_mode::training;
  st.trained_shape = s;
}

void vector_coupling::inverse(const_view dst, view src, workspace& ws) const {
  check(dst, "dst", src, "src");
  const shape4 s = dst.shape();
  const index_t C = cfg_.channels, d1 = first_, d2 = second_, rows = s.n * s.h * s.w;
  state& st = ws.state<state>(id());
  st.has_training = false;
  const float* y = kernels::dense_nhwc(dst, st.x_copy);
  float* x = kernels::dense_nhwc_output(src, st.x_inverse);
  detail::exec_context& ctx = ws.exec();
  st.acts2.resize(static_cast<std::size_t>(cfg_.hidden_layers));
  st.acts1.resize(static_cast<std::size_t>(cfg_.hidden_layers));
  st.raw2.resize({rows, 2 * d1, 1, 1}, layout::nhwc);
  st.raw1.resize({rows, 2 * d2, 1, 1}, layout::nhwc);
  const soft_clamp clamp = cfg_.clamp;
  // x2 = (y2 − t1) ⊙ exp(−φ(s1)) with (s1, t1) = S1(y1); then x1 from S2(x2).
  s1_->forward(y, C, rows, st.acts1, st.raw1.data(), ctx);
  const float* raw1 = st.raw1.data();
  for (index_t r = 0; r < rows; ++r)
    for (index_t j = 0; j < d2; ++j)
      x[r * C + d1 + j] = static_cast<float>((static_cast<double>(y[r * C + d1 + j]) - raw1[r * 2 * d2 + d2 + j]) *
                                             std::exp(-clamp.apply(raw1[r * 2 * d2 + j])));
  s2_->forward(x + d1, C, rows, st.acts2, st.raw2.data(), ctx);
  const float* raw2 = st.raw2.data();
  for (index_t r = 0; r < rows; ++r)
    for (index_t j = 0; j < d1; ++j)
      x[r * C + j] = static_cast<float>((static_cast<double>(y[r * C + j]) - raw2[r * 2 * d1 + d1 + j]) *
                                        std::exp(-clamp.apply(raw2[r * 2 * d1 + j])));
  finish_output(src, st.x_inverse);
}

void vector_coupling::backward(const_view src, const_view dst, const_view diff_dst, span<const double> diff_logdet,
                               view diff_src, workspace& ws) {
  state& st = ws.state<state>(id());
  detail::require_backward("vector_coupling", cfg_.channels, src, dst, diff_dst, diff_src, diff_logdet.size(), st.has_training,
                           st.trained_shape);
  const shape4 s = src.shape();
  const index_t C = cfg_.channels, d1 = first_, d2 = second_, pixels = s.h * s.w, rows = s.n * pixels;
  const float* x = kernels::dense_nhwc(src, st.x_copy);
  const float* out = kernels::dense_nhwc(dst, st.x_inverse);
  const float* dout = kernels::dense_nhwc(diff_dst, st.out_buffer);
  float* dx = kernels::dense_nhwc_output(diff_src, st.diff_src_buffer);
  detail::exec_context& ctx = ws.exec();
  const soft_clamp clamp = cfg_.clamp;
  const float limit = cfg_.output_clamp;
  const auto passed = [limit](float value, float diff) { return std::abs(value) < limit ? diff : 0.0f; };

  // Through y2 = exp(φ(s1)) ⊙ x2 + t1: dL/d(s1, t1) and the direct part of dL/dx2.
  st.diff_raw1.resize({rows, 2 * d2, 1, 1}, layout::nhwc);
  float* dr1 = st.diff_raw1.data();
  const float* raw1 = st.raw1.data();
  for (index_t r = 0; r < rows; ++r) {
    const double g = diff_logdet[static_cast<std::size_t>(r / pixels)];
    for (index_t j = 0; j < d2; ++j) {
      const double s1 = raw1[r * 2 * d2 + j], e = std::exp(clamp.apply(s1));
      const double dy2 = passed(out[r * C + d1 + j], dout[r * C + d1 + j]);
      dr1[r * 2 * d2 + j] = static_cast<float>((dy2 * x[r * C + d1 + j] * e + g) * clamp.derivative(s1));
      dr1[r * 2 * d2 + d2 + j] = static_cast<float>(dy2);
      dx[r * C + d1 + j] = static_cast<float>(dy2 * e);
    }
  }
  st.diff_y1.resize({rows, d1, 1, 1}, layout::nhwc);
  s1_->backward(st.y1.data(), d1, rows, st.acts1, dr1, st.diff_y1.data(), st.diff_hidden, ctx);

  // Through y1 = exp(φ(s2)) ⊙ x1 + t2, where dL/dy1 adds S1's part to the output's.
  st.diff_raw2.resize({rows, 2 * d1, 1, 1}, layout::nhwc);
  float* dr2 = st.diff_raw2.data();
  const float* raw2 = st.raw2.data();
  const float* dy1_from_s1 = st.diff_y1.data();
  for (index_t r = 0; r < rows; ++r) {
    const double g = diff_logdet[static_cast<std::size_t>(r / pixels)];
    for (index_t j = 0; j < d1; ++j) {
      const double s2 = raw2[r * 2 * d1 + j], e = std::exp(clamp.apply(s2));
      const double dy1 = static_cast<double>(passed(out[r * C + j], dout[r * C + j])) + dy1_from_s1[r * d1 + j];
      dr2[r * 2 * d1 + j] = static_cast<float>((dy1 * x[r * C + j] * e + g) * clamp.derivative(s2));
      dr2[r * 2 * d1 + d1 + j] = static_cast<float>(dy1);
      dx[r * C + j] = static_cast<float>(dy1 * e);
    }
  }
  st.diff_sub.resize({rows, d2, 1, 1}, layout::nhwc);
  s2_->backward(x + d1, C, rows, st.acts2, dr2, st.diff_sub.data(), st.diff_hidden, ctx);
  const float* dx2 = st.diff_sub.data();
  for (index_t r = 0; r < rows; ++r)
    for (index_t j = 0; j < d2; ++j) dx[r * C + d1 + j] += dx2[r * d2 + j];
  finish_output(diff_src, st.diff_src_buffer);
}

}  // namespace v0
}  // namespace flowad
