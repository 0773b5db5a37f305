// A program that uses both interop components (flowad::xtensor, flowad::eigen): per-image features from
// Eigen into flowad and on to xtensor, anomaly maps from xtensor to Eigen, image scores to both.
#include <cstdio>
#include <flowad/interop/eigen.hpp>
#include <flowad/interop/xtensor.hpp>
#include <flowad/version.hpp>
#include <vector>
#include <xtensor/xbuilder.hpp>
#include <xtensor/xmath.hpp>

int main() {
  Eigen::MatrixXf features(4, 3);  // column-major: the view's sample stride is 1
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 3; ++j) features(i, j) = static_cast<float>(3 * i + j);
  const flowad::const_view v = flowad::as_const_view(features);
  flowad::tensor t(v.shape(), flowad::layout::nhwc);
  flowad::copy(v, t);  // compiled in libflowad
  const xt::xtensor<float, 4> x = flowad::to_xtensor(t);

  const xt::xtensor<float, 4> maps = xt::reshape_view(xt::arange<float>(24.0f), {2, 1, 3, 4});
  const Eigen::MatrixXf map = flowad::to_eigen(flowad::as_const_view(maps), 1);

  const std::vector<double> image = {1.0, 2.5};
  const double xt_image = xt::sum(flowad::to_xtensor(image))();
  const double eigen_image = flowad::to_eigen(image).sum();

  const flowad::strides4 s = v.strides();
  std::printf("interop: eigen features %s strides %lld,%lld,%lld,%lld, xtensor sum %g; ", v.shape().str().c_str(),
              static_cast<long long>(s.n), static_cast<long long>(s.c), static_cast<long long>(s.h),
              static_cast<long long>(s.w), static_cast<double>(xt::sum(x)()));
  std::printf("xtensor maps, eigen map %lldx%lld sum %g; image scores %g %g\n", static_cast<long long>(map.rows()),
              static_cast<long long>(map.cols()), static_cast<double>(map.sum()), xt_image, eigen_image);
  const bool zero_copy = v.data() == features.data();
  return zero_copy && flowad::version() == flowad::header_version() ? 0 : 1;
}
