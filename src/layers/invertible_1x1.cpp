#include "flowad/layers/invertible_1x1.hpp"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <mutex>
#include <numeric>

#include "flowad/detail/backend.hpp"
#include "flowad/detail/checks.hpp"
#include "flowad/detail/random.hpp"
#include "kernels/channel_ops.hpp"
#include "kernels/simd.hpp"

namespace flowad {
inline namespace v0 {

namespace {

void require_permutation(const std::vector<index_t>& perm) {
  std::vector<bool> seen(perm.size(), false);
  for (std::size_t i = 0; i < perm.size(); ++i) {
    const index_t p = perm[i];
    if (p < 0 || p >= static_cast<index_t>(perm.size()) || seen[static_cast<std::size_t>(p)])
      throw error(errc::invalid_argument, "invertible_1x1: not a permutation of 0.." + std::to_string(perm.size() - 1) +
                                              ": entry " + std::to_string(i) + " is " + std::to_string(p));
    seen[static_cast<std::size_t>(p)] = true;
  }
}

std::size_t square(index_t c) { return static_cast<std::size_t>(c * c); }

// Throws errc::non_finite naming the first NaN/Inf among the entries (i, j) of the rows x cols parameter p
// for which used(i, j) holds.
template <class Used>
void require_finite_entries(const parameter& p, index_t rows, index_t cols, Used used) {
  const float* v = p.data();
  for (index_t i = 0; i < rows; ++i)
    for (index_t j = 0; j < cols; ++j) {
      const float x = v[i * cols + j];
      if (!std::isfinite(x) && used(i, j))
        throw error(errc::non_finite, "invertible_1x1: parameter " + p.name() + " holds " +
                                          (std::isnan(x) ? "NaN" : "Inf") + " at row " + std::to_string(i) +
                                          ", column " + std::to_string(j));
    }
}

// Triangular kernels of the weight rebuild, on C x C row-major double matrices. Each skips the zero
// triangles and runs its inner loop over a contiguous row segment; they are cloned for AVX-512 / AVX2.

// Rows [first, last) of a = L·U, L lower triangular, U upper triangular.
FLOWAD_SIMD_CLONES
void lower_times_upper_rows(const double* l, const double* u, double* a, index_t c, index_t first, index_t last) {
  for (index_t i = first; i < last; ++i) {
    double* row = a + i * c;
    std::fill(row, row + c, 0.0);
    for (index_t k = 0; k <= i; ++k) {
      const double lik = l[i * c + k];
      const double* urow = u + k * c;
#pragma omp simd
      for (index_t j = k; j < c; ++j) row[j] += lik * urow[j];
    }
  }
}

// Rows [first, last) of a = Y·X, Y upper triangular, X lower triangular.
FLOWAD_SIMD_CLONES
void upper_times_lower_rows(const double* y, const double* x, double* a, index_t c, index_t first, index_t last) {
  for (index_t i = first; i < last; ++i) {
    double* row = a + i * c;
    std::fill(row, row + c, 0.0);
    for (index_t k = i; k < c; ++k) {
      const double yik = y[i * c + k];
      const double* xrow = x + k * c;
#pragma omp simd
      for (index_t j = 0; j <= k; ++j) row[j] += yik * xrow[j];
    }
  }
}

// x = L^-1 for unit lower triangular L, by forward substitution on the rows of L·X = I.
FLOWAD_SIMD_CLONES
void invert_unit_lower(const double* l, double* x, index_t c) {
  for (index_t i = 0; i < c; ++i) {
    double* row = x + i * c;
    std::fill(row, row + c, 0.0);
    row[i] = 1.0;
    for (index_t k = 0; k < i; ++k) {
      const double lik = l[i * c + k];
      const double* xrow = x + k * c;  // zero right of the diagonal
#pragma omp simd
      for (index_t j = 0; j <= k; ++j) row[j] -= lik * xrow[j];
    }
  }
}

// y = U^-1 for upper triangular U, by back substitution on the rows of U·Y = I.
FLOWAD_SIMD_CLONES
void invert_upper(const double* u, double* y, index_t c) {
  for (index_t i = c - 1; i >= 0; --i) {
    double* row = y + i * c;
    std::fill(row, row + c, 0.0);
    row[i] = 1.0;
    for (index_t k = i + 1; k < c; ++k) {
      const double uik = u[i * c + k];
      const double* yrow = y + k * c;  // zero left of the diagonal
#pragma omp simd
      for (index_t j = k; j < c; ++j) row[j] -= uik * yrow[j];
    }
    const double inv_diag = 1.0 / u[i * c + i];
#pragma omp simd
    for (index_t j = i; j < c; ++j) row[j] *= inv_diag;
  }
}

}  // namespace

// Matrices derived from the parameters, rebuilt when a stamp changes. All C x C, row-major.
struct invertible_1x1::derived {
  explicit derived(index_t c)
      : weight(square(c)),
        weight_t(square(c)),
        inverse_t(square(c)),
        lower_t(square(c)),
        upper_t(square(c)),
        l(square(c)),
        u(square(c)),
        l_inv(square(c)),
        u_inv(square(c)),
        product(square(c)) {}

  // W, its transpose and the factors; throws errc::non_finite for non-finite factors or a W beyond float.
  void build_weight(const parameter& lower, const parameter& upper, const parameter& log_s,
                    const std::vector<float>& signs, const std::vector<index_t>& perm);
  // W^-1 (transposed), only needed by inverse(), so training never pays for it.
  void build_inverse(const parameter& log_s, const std::vector<index_t>& perm);

  std::mutex mutex;
  bool weight_valid = false, inverse_valid = false;
  std::uint64_t lower_stamp = 0, upper_stamp = 0, log_s_stamp = 0;  // of the parameters W was built from
  double log_det_per_pixel = 0.0;                                    // Σ log_s

  // Float operands of the oneDNN products, all in the non-transposed orientation the products read.
  aligned_vector<float> weight;     // W          (backward data: diff_src = diff_dst · W in row form)
  aligned_vector<float> weight_t;   // W^T        (forward: z = x · W^T)
  aligned_vector<float> inverse_t;  // (W^-1)^T   (inverse: x = z · W^-T)
  aligned_vector<float> lower_t;    // L^T        (dL/dU = L^T · dL/dA)
  aligned_vector<float> upper_t;    // U^T        (dL/dL = dL/dA · U^T)

  // Double working storage of the rebuild, kept so that a rebuild does not allocate.
  std::vector<double> l, u, l_inv, u_inv, product;

  detail::matmul matmul;
};

// Per-workspace buffers of backward(): C x C gradients.
struct invertible_1x1::state : layer_state {
  aligned_vector<float> diff_weight, diff_factors, diff_lower, diff_upper;
  void reserve(index_t c) {
    for (auto* v : {&diff_weight, &diff_factors, &diff_lower, &diff_upper}) v->resize(square(c));
  }
};

invertible_1x1::invertible_1x1(std::vector<index_t> permutation, std::vector<float> signs)
    : permutation_(std::move(permutation)),
      signs_(std::move(signs)),
      lower_("lower", {static_cast<index_t>(permutation_.size()), static_cast<index_t>(permutation_.size())}),
      upper_("upper", {static_cast<index_t>(permutation_.size()), static_cast<index_t>(permutation_.size())}),
      log_s_("log_s", {static_cast<index_t>(permutation_.size())}) {
  if (permutation_.empty()) throw error(errc::invalid_argument, "invertible_1x1 needs at least one channel");
  require_permutation(permutation_);
  if (signs_.size() != permutation_.size())
    throw error(errc::shape_mismatch, "invertible_1x1: " + std::to_string(signs_.size()) + " signs for " +
                                          std::to_string(permutation_.size()) + " channels");
  for (std::size_t i = 0; i < signs_.size(); ++i)
    if (signs_[i] != 1.0f && signs_[i] != -1.0f)
      throw error(errc::invalid_argument,
                  "invertible_1x1: sign " + std::to_string(i) + " is " + std::to_string(signs_[i]) + ", not +1 or -1");
  derived_ = std::make_unique<derived>(channels());
}

invertible_1x1::invertible_1x1(index_t channels, std::uint64_t seed)
    : invertible_1x1(
          [&] {
            if (channels <= 0)
              throw error(errc::invalid_argument,
                          "invertible_1x1 needs a positive channel count, got " + std::to_string(channels));
            std::vector<index_t> identity(static_cast<std::size_t>(channels));
            std::iota(identity.begin(), identity.end(), index_t{0});
            return identity;
          }(),
          std::vector<float>(static_cast<std::size_t>(std::max<index_t>(channels, 0)), 1.0f)) {
  // Glow: W0 = Q of QR(Gaussian), then scipy.linalg.lu(W0) = P, L, U with W0 = P·L·U.
  detail::rng r(seed);
  Eigen::MatrixXd gaussian(channels, channels);
  for (index_t i = 0; i < channels; ++i)
    for (index_t j = 0; j < channels; ++j) gaussian(i, j) = r.normal();
  const Eigen::MatrixXd rotation = Eigen::HouseholderQR<Eigen::MatrixXd>(gaussian).householderQ();
  const Eigen::PartialPivLU<Eigen::MatrixXd> lu(rotation);
  // Eigen factors Pe·W0 = L·U, so W0 = Pe^T·L·U: row i of W0 is row permutation_[i] of L·U.
  const Eigen::MatrixXd to_lu_rows = lu.permutationP().toDenseMatrix().cast<double>().transpose();
  const Eigen::MatrixXd& packed = lu.matrixLU();
  for (index_t i = 0; i < channels; ++i) {
    Eigen::Index one = 0;
    to_lu_rows.row(i).maxCoeff(&one);
    permutation_[static_cast<std::size_t>(i)] = static_cast<index_t>(one);
    const double s = packed(i, i);
    signs_[static_cast<std::size_t>(i)] = s < 0.0 ? -1.0f : 1.0f;
    log_s_.data()[i] = static_cast<float>(std::log(std::abs(s)));
    for (index_t j = 0; j < channels; ++j) {
      if (j < i) lower_.data()[i * channels + j] = static_cast<float>(packed(i, j));
      if (j > i) upper_.data()[i * channels + j] = static_cast<float>(packed(i, j));
    }
  }
  lower_.mark_updated();
  upper_.mark_updated();
  log_s_.mark_updated();
}

invertible_1x1::invertible_1x1(const invertible_1x1& other)
    : flow_layer(other),
      permutation_(other.permutation_),
      signs_(other.signs_),
      lower_(other.lower_),
      upper_(other.upper_),
      log_s_(other.log_s_),
      derived_(std::make_unique<derived>(other.channels())) {}

invertible_1x1& invertible_1x1::operator=(const invertible_1x1& other) {
  if (this == &other) return *this;
  flow_layer::operator=(other);
  permutation_ = other.permutation_;
  signs_ = other.signs_;
  lower_ = other.lower_;
  upper_ = other.upper_;
  log_s_ = other.log_s_;
  derived_ = std::make_unique<derived>(other.channels());
  return *this;
}

invertible_1x1::~invertible_1x1() = default;

void invertible_1x1::clear_primitive_cache() { derived_->matmul.clear_cache(); }

const invertible_1x1::derived& invertible_1x1::prepared(bool with_inverse) const {
  derived& d = *derived_;
  std::lock_guard<std::mutex> lock(d.mutex);
  if (!d.weight_valid || d.lower_stamp != lower_.stamp() || d.upper_stamp != upper_.stamp() ||
      d.log_s_stamp != log_s_.stamp()) {
    d.weight_valid = d.inverse_valid = false;
    d.build_weight(lower_, upper_, log_s_, signs_, permutation_);
    d.lower_stamp = lower_.stamp();
    d.upper_stamp = upper_.stamp();
    d.log_s_stamp = log_s_.stamp();
    d.weight_valid = true;
  }
  if (with_inverse && !d.inverse_valid) {
    d.build_inverse(log_s_, permutation_);
    d.inverse_valid = true;
  }
  return d;
}

namespace {
bool all_finite(const aligned_vector<float>& m) {
  return std::all_of(m.begin(), m.end(), [](float v) { return std::isfinite(v); });
}
[[noreturn]] void throw_overflow(const char* what, const parameter& log_s) {
  const auto [lo, hi] = std::minmax_element(log_s.data(), log_s.data() + log_s.size());
  throw error(errc::non_finite, std::string("invertible_1x1: ") + what + " built from the LU factors overflows float (" +
                                    std::to_string(log_s.size()) + " channels, log_s in [" + std::to_string(*lo) +
                                    ", " + std::to_string(*hi) + "])");
}
}  // namespace

// Everything in double.
void invertible_1x1::derived::build_weight(const parameter& lower, const parameter& upper, const parameter& log_s,
                                           const std::vector<float>& signs, const std::vector<index_t>& perm) {
  const index_t c = static_cast<index_t>(perm.size());
  require_finite_entries(lower, c, c, [](index_t i, index_t j) { return j < i; });
  require_finite_entries(upper, c, c, [](index_t i, index_t j) { return j > i; });
  require_finite_entries(log_s, 1, c, [](index_t, index_t) { return true; });

  double* lp = l.data();
  double* up = u.data();
  log_det_per_pixel = 0.0;
  for (index_t i = 0; i < c; ++i) {
    const double s = log_s.data()[i];
    log_det_per_pixel += s;
    for (index_t j = 0; j < c; ++j) {
      lp[i * c + j] = j < i ? lower.data()[i * c + j] : (j == i ? 1.0 : 0.0);
      up[i * c + j] = j > i ? upper.data()[i * c + j] : (j == i ? signs[static_cast<std::size_t>(i)] * std::exp(s) : 0.0);
    }
  }

  // product = L·U; W = P·product, i.e. row i of W is row perm[i] of the product.
  double* a = product.data();
#pragma omp parallel for schedule(dynamic, 8)
  for (index_t i = 0; i < c; ++i) lower_times_upper_rows(lp, up, a, c, i, i + 1);
  for (index_t i = 0; i < c; ++i) {
    const double* row = a + perm[static_cast<std::size_t>(i)] * c;
    for (index_t j = 0; j < c; ++j) {
      weight[static_cast<std::size_t>(i * c + j)] = static_cast<float>(row[j]);
      weight_t[static_cast<std::size_t>(j * c + i)] = static_cast<float>(row[j]);
    }
  }
  for (index_t i = 0; i < c; ++i)
    for (index_t j = 0; j < c; ++j) {
      lower_t[static_cast<std::size_t>(j * c + i)] = static_cast<float>(lp[i * c + j]);
      upper_t[static_cast<std::size_t>(j * c + i)] = static_cast<float>(up[i * c + j]);
    }
  if (!all_finite(weight) || !all_finite(upper_t)) throw_overflow("W", log_s);
}

// W^-1 = U^-1·L^-1·P^T from the L and U of the last build_weight().
void invertible_1x1::derived::build_inverse(const parameter& log_s, const std::vector<index_t>& perm) {
  const index_t c = static_cast<index_t>(perm.size());
  const double* lp = l.data();
  const double* up = u.data();
  // The two substitutions are sequential in their rows but independent of each other.
#pragma omp parallel sections
  {
#pragma omp section
    invert_unit_lower(lp, l_inv.data(), c);
#pragma omp section
    invert_upper(up, u_inv.data(), c);
  }
  // product = U^-1·L^-1; W^-1 = product·P^T, i.e. W^-1[i][j] = product[i][perm[j]].
  double* a = product.data();
#pragma omp parallel for schedule(dynamic, 8)
  for (index_t i = 0; i < c; ++i) upper_times_lower_rows(u_inv.data(), l_inv.data(), a, c, i, i + 1);
  for (index_t i = 0; i < c; ++i)
    for (index_t j = 0; j < c; ++j)
      inverse_t[static_cast<std::size_t>(j * c + i)] = static_cast<float>(a[i * c + perm[static_cast<std::size_t>(j)]]);
  if (!all_finite(inverse_t)) throw_overflow("W^-1", log_s);
}

void invertible_1x1::check(const_view in, const char* in_name, const_view out, const char* out_name) const {
  detail::require_layer_pair("invertible_1x1", channels(), in, in_name, out, out_name);
}

namespace {
// Scratch slots of this layer (contents live only during one call).
constexpr std::size_t input_copy = 0, second_input_copy = 1, output_copy = 2;

void finish_output(const float* written, tensor& buffer, view dst) {
  if (written != dst.data()) copy(buffer.view(), dst);
}
}  // namespace

void invertible_1x1::forward(const_view src, view dst, span<double> logdet, workspace& ws, pass_mode) const {
  check(src, "src", dst, "dst");
  detail::require_size(logdet.size(), static_cast<std::size_t>(src.n()), "logdet");
  const derived& d = prepared(false);
  const index_t c = channels(), pixels = src.shape().pixels();
  const float* x = kernels::dense_nhwc(src, ws.scratch(input_copy));
  tensor& out_buffer = ws.scratch(output_copy);
  float* z = kernels::dense_nhwc_output(dst, out_buffer);
  d.matmul.run(false, false, pixels, c, c, x, c, d.weight_t.data(), c, z, c, 0.0f, ws.exec());
  finish_output(z, out_buffer, dst);
  const double per_sample = static_cast<double>(src.h() * src.w()) * d.log_det_per_pixel;
  for (double& v : logdet) v += per_sample;
}

void invertible_1x1::inverse(const_view dst, view src, workspace& ws) const {
  check(dst, "dst", src, "src");
  const derived& d = prepared(true);
  const index_t c = channels(), pixels = dst.shape().pixels();
  const float* z = kernels::dense_nhwc(dst, ws.scratch(input_copy));
  tensor& out_buffer = ws.scratch(output_copy);
  float* x = kernels::dense_nhwc_output(src, out_buffer);
  d.matmul.run(false, false, pixels, c, c, z, c, d.inverse_t.data(), c, x, c, 0.0f, ws.exec());
  finish_output(x, out_buffer, src);
}

void invertible_1x1::backward(const_view src, const_view, const_view diff_dst, span<const double> diff_logdet,
                              view diff_src, workspace& ws) {
  check(diff_dst, "diff_dst", diff_src, "diff_src");
  detail::require_same_shape(src, "src", diff_dst, "diff_dst");
  detail::require_size(diff_logdet.size(), static_cast<std::size_t>(src.n()), "diff_logdet");
  if (detail::may_overlap(src, diff_src))  // src is read after diff_src is written
    throw error(errc::invalid_argument, "invertible_1x1: src and diff_src overlap");
  const derived& d = prepared(false);
  const index_t c = channels(), pixels = src.shape().pixels();
  const float* x = kernels::dense_nhwc(src, ws.scratch(input_copy));
  const float* dz = kernels::dense_nhwc(diff_dst, ws.scratch(second_input_copy));
  tensor& out_buffer = ws.scratch(output_copy);
  float* dx = kernels::dense_nhwc_output(diff_src, out_buffer);

  // Row form (one pixel per row): z = x·W^T, so dL/dx = dz·W and dL/dW = dz^T·x.
  d.matmul.run(false, false, pixels, c, c, dz, c, d.weight.data(), c, dx, c, 0.0f, ws.exec());
  finish_output(dx, out_buffer, diff_src);

  state& st = ws.state<state>(id());
  st.reserve(c);
  d.matmul.run(true, false, c, c, pixels, dz, c, x, c, st.diff_weight.data(), c, 0.0f, ws.exec());

  // W = P·A with A = L·U: dL/dA = P^T·dL/dW (row i of dL/dW lands on row permutation_[i]),
  // dL/dL = dL/dA·U^T, dL/dU = L^T·dL/dA.
  for (index_t i = 0; i < c; ++i)
    std::copy_n(st.diff_weight.data() + i * c, c, st.diff_factors.data() + permutation_[static_cast<std::size_t>(i)] * c);
  d.matmul.run(false, false, c, c, c, st.diff_factors.data(), c, d.upper_t.data(), c, st.diff_lower.data(), c, 0.0f,
               ws.exec());
  d.matmul.run(false, false, c, c, c, d.lower_t.data(), c, st.diff_factors.data(), c, st.diff_upper.data(), c, 0.0f,
               ws.exec());

  double logdet_weight = 0.0;  // d(Σ_n diff_logdet[n]·logdet[n]) / d log_s[i], the same for every i
  for (double g : diff_logdet) logdet_weight += g;
  logdet_weight *= static_cast<double>(src.h() * src.w());

  float* grad_lower = lower_.grad();
  float* grad_upper = upper_.grad();
  float* grad_log_s = log_s_.grad();
  for (index_t i = 0; i < c; ++i) {
    for (index_t j = 0; j < i; ++j) grad_lower[i * c + j] += st.diff_lower[static_cast<std::size_t>(i * c + j)];
    for (index_t j = i + 1; j < c; ++j) grad_upper[i * c + j] += st.diff_upper[static_cast<std::size_t>(i * c + j)];
    // U_ii = sign_i·exp(log_s_i), so dU_ii/dlog_s_i = U_ii.
    const double u_ii = d.upper_t[static_cast<std::size_t>(i * c + i)];
    grad_log_s[i] += static_cast<float>(st.diff_upper[static_cast<std::size_t>(i * c + i)] * u_ii + logdet_weight);
  }
}

}  // namespace v0
}  // namespace flowad
