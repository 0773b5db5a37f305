// Layer normalisation over whole samples (private to src/): every sample is `size` contiguous floats,
// sample n at n·size (one N x C x H x W sample, dense in one layout), and weight, bias and the gradient
// sums are in that same element order. x̂ = (x − mean[n])·rstd[n].
//
// Sums accumulate in double, over fixed chunks of each sample (and, for the parameter gradients, over the
// samples in order), so that the results do not depend on the thread count.
#pragma once

#include "flowad/tensor.hpp"

namespace flowad {
inline namespace v0 {
namespace kernels {

// mean[n] and rstd[n] = 1/sqrt(σ²[n] + epsilon), σ² the biased variance of sample n. `partials` is
// scratch, grown on first use.
void layer_norm_moments(const float* x, index_t samples, index_t size, double epsilon, double* mean, double* rstd,
                        aligned_vector<double>& partials);

// y = x̂·weight[i] + bias[i].
void layer_norm_forward(const float* x, float* y, index_t samples, index_t size, const double* mean,
                        const double* rstd, const float* weight, const float* bias);

// The parameter gradients, Σ_n dy·x̂ into grad_weight[i] and Σ_n dy into grad_bias[i] (added when
// `accumulate`, else assigned). When sum_g is not null, also what the input gradient needs: sum_g[n] =
// Σ_i dy·weight[i] and sum_gx[n] = Σ_i dy·weight[i]·x̂ (weight is read only then).
void layer_norm_backward_weights(const float* x, const float* dy, index_t samples, index_t size, const double* mean,
                                 const double* rstd, const float* weight, float* grad_weight, float* grad_bias,
                                 bool accumulate, double* sum_g, double* sum_gx, aligned_vector<double>& partials);

// dx = rstd[n]·(dy·weight[i] − sum_g[n]/size − x̂·sum_gx[n]/size).
void layer_norm_backward_data(const float* x, const float* dy, float* dx, index_t samples, index_t size,
                              const double* mean, const double* rstd, const float* weight, const double* sum_g,
                              const double* sum_gx);

// out[j·rows + i] = in[i·cols + j] (+= when `accumulate`): a rows x cols matrix transposed, e.g. C x HW
// parameters into the H x W x C order of an NHWC sample and back.
void transpose_matrix(const float* in, index_t rows, index_t cols, float* out, bool accumulate);

}  // namespace kernels
}  // namespace v0
}  // namespace flowad
