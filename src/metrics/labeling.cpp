#include "metrics/labeling.hpp"

#include <algorithm>
#include <limits>
#include <string>

#include "flowad/error.hpp"

namespace flowad {
inline namespace v0 {
namespace metrics_detail {

namespace {
std::int32_t find_root(std::vector<std::int32_t>& parent, std::int32_t x) noexcept {
  while (parent[static_cast<std::size_t>(x)] != x) {
    const std::int32_t grand = parent[static_cast<std::size_t>(parent[static_cast<std::size_t>(x)])];
    parent[static_cast<std::size_t>(x)] = grand;  // path halving
    x = grand;
  }
  return x;
}
void unite(std::vector<std::int32_t>& parent, std::int32_t a, std::int32_t b) noexcept {
  a = find_root(parent, a);
  b = find_root(parent, b);
  if (a < b)
    parent[static_cast<std::size_t>(b)] = a;
  else if (b < a)
    parent[static_cast<std::size_t>(a)] = b;
}
}  // namespace

std::int32_t label_plane(const const_view& mask, std::vector<std::int32_t>& labels, std::vector<std::int32_t>& parent) {
  const index_t height = mask.h(), width = mask.w();
  if (height * width > std::numeric_limits<std::int32_t>::max())
    throw error(errc::invalid_argument, "mask of " + mask.shape().str() + " is too large to label");
  labels.assign(static_cast<std::size_t>(height * width), 0);
  parent.assign(1, 0);  // provisional label 0 = background
  auto at = [&](index_t h, index_t w) -> std::int32_t& { return labels[static_cast<std::size_t>(h * width + w)]; };

  // First pass: provisional labels; neighbours already visited are W, NW, N, NE.
  for (index_t h = 0; h < height; ++h)
    for (index_t w = 0; w < width; ++w) {
      if (mask(0, 0, h, w) == 0.0f) continue;
      std::int32_t neighbours[4];
      int count = 0;
      if (w > 0 && at(h, w - 1) != 0) neighbours[count++] = at(h, w - 1);
      if (h > 0) {
        if (w > 0 && at(h - 1, w - 1) != 0) neighbours[count++] = at(h - 1, w - 1);
        if (at(h - 1, w) != 0) neighbours[count++] = at(h - 1, w);
        if (w + 1 < width && at(h - 1, w + 1) != 0) neighbours[count++] = at(h - 1, w + 1);
      }
      if (count == 0) {
        const std::int32_t fresh = static_cast<std::int32_t>(parent.size());
        parent.push_back(fresh);
        at(h, w) = fresh;
        continue;
      }
      std::int32_t smallest = neighbours[0];
      for (int k = 1; k < count; ++k) smallest = std::min(smallest, neighbours[k]);
      at(h, w) = smallest;
      for (int k = 0; k < count; ++k) unite(parent, smallest, neighbours[k]);
    }

  // Second pass: final labels, numbered in raster order of first appearance.
  std::vector<std::int32_t> final_label(parent.size(), 0);
  std::int32_t components = 0;
  for (std::int32_t& l : labels) {
    if (l == 0) continue;
    const std::size_t root = static_cast<std::size_t>(find_root(parent, l));
    if (final_label[root] == 0) final_label[root] = ++components;
    l = final_label[root];
  }
  return components;
}

}  // namespace metrics_detail
}  // namespace v0
}  // namespace flowad
