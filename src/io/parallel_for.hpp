// An OpenMP loop over independent items that carries exceptions out of the parallel region.
#pragma once

#include <exception>
#include <vector>

#include "flowad/tensor.hpp"

namespace flowad {
inline namespace v0 {
namespace detail {

// Runs body(i) for i in [0, count) on OpenMP threads. Exceptions cannot cross an OpenMP region, so
// each is kept and the one of the lowest index is rethrown: the same error whatever the schedule.
template <class Body>
void parallel_for_each_index(index_t count, const Body& body) {
  std::vector<std::exception_ptr> failures(static_cast<std::size_t>(count));
#pragma omp parallel for schedule(dynamic, 1)
  for (index_t i = 0; i < count; ++i) {
    try {
      body(i);
    } catch (...) {
      failures[static_cast<std::size_t>(i)] = std::current_exception();
    }
  }
  for (const std::exception_ptr& failure : failures)
    if (failure) std::rethrow_exception(failure);
}

}  // namespace detail
}  // namespace v0
}  // namespace flowad
