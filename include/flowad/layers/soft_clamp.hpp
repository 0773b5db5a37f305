// Soft clamps of the affine coupling's log-scale (ALGORITHMS.md §2.1). The exact formulas matter for
// reproducing published models, so every variant is available and recorded in model files.
#pragma once

#include <cmath>
#include <utility>
#include <vector>

namespace flowad {
inline namespace v0 {

enum class clamp_kind {
  none,  // φ(s) = s
  atan,  // φ(s) = α·0.636·atan(s/α)   (CS-Flow, MSFlow fusion; range about ±α)
  tanh,  // φ(s) = α·tanh(s/α)         (FrEIA AllInOneBlock since 2023-08; range ±α)
  // φ(s) = α·tanh(s), no division by α: FrEIA AllInOneBlock before commit ae74fd4 (2023-08-17, "fixed soft
  // clamping"), i.e. the FrEIA 1779d1f that FastFlow (gathierry/FastFlow) pins and anomalib's own copy
  // (anomalib@161bb36 src/anomalib/models/components/flow/all_in_one_block.py). Range ±α, slope α at 0.
  tanh_legacy,
};

// The 2/π of CS-Flow's clamp, written as the reference code writes it.
inline constexpr float atan_clamp_factor = 0.636f;

struct soft_clamp {
  clamp_kind kind = clamp_kind::atan;
  float alpha = 3.0f;

  // φ(s) and φ'(s) in double, for references and tests; the kernels use vectorised float versions.
  double apply(double s) const noexcept {
    switch (kind) {
      case clamp_kind::atan: return alpha * atan_clamp_factor * std::atan(s / alpha);
      case clamp_kind::tanh: return alpha * std::tanh(s / alpha);
      case clamp_kind::tanh_legacy: return alpha * std::tanh(s);
      case clamp_kind::none: break;
    }
    return s;
  }
  double derivative(double s) const noexcept {
    switch (kind) {
      case clamp_kind::atan: {
        const double u = s / alpha;
        return atan_clamp_factor / (1.0 + u * u);
      }
      case clamp_kind::tanh: {
        const double t = std::tanh(s / alpha);
        return 1.0 - t * t;
      }
      case clamp_kind::tanh_legacy: {
        const double t = std::tanh(s);
        return alpha * (1.0 - t * t);
      }
      case clamp_kind::none: break;
    }
    return 1.0;
  }
};

// Every clamp with its name, as configurations and model files write them.
inline std::vector<std::pair<clamp_kind, const char*>> clamp_kind_names() {
  return {{clamp_kind::none, "none"}, {clamp_kind::atan, "atan"}, {clamp_kind::tanh, "tanh"}, {clamp_kind::tanh_legacy, "tanh_legacy"}};
}

inline const char* to_string(clamp_kind k) noexcept {
  switch (k) {
    case clamp_kind::atan: return "atan";
    case clamp_kind::tanh: return "tanh";
    case clamp_kind::tanh_legacy: return "tanh_legacy";
    case clamp_kind::none: break;
  }
  return "none";
}

}  // namespace v0
}  // namespace flowad
