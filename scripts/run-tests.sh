#!/usr/bin/env bash
# Builds flowad and runs every test: unit, allocation-counting and real-data tests (the latter read
# FLOWAD_SHARED, default ../shared beside the source root).
set -euo pipefail
cd "$(dirname "$0")/.."

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j "$(nproc)"
ctest --test-dir build --output-on-failure
