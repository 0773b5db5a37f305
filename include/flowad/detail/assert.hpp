// Internal invariants: checked in debug builds, compiled out in release builds.
// Public preconditions are never checked with this macro; they throw flowad::error.
#pragma once

#include <cassert>

#ifndef FLOWAD_ASSERT
#define FLOWAD_ASSERT(condition) assert(condition)
#endif
