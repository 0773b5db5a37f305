#!/usr/bin/env bash
# Scores 10,000 images in one process through the image-level API and prints resident memory and open
# file descriptors every 500 images (benchmarks/long_run.cpp); exits 1 unless both stay flat (memory
# within 5 % of its level after the first 1,000 images, descriptors unchanged). docs/reliability.md,
# "Long runs".
#   benchmarks/long_run.sh [build dir] [long_run options: --detector patchcore, --extractor resnet18 --weights DIR, ...]
set -euo pipefail
build=${1:-build}
bin="$build/benchmarks/long_run"
[[ -x $bin ]] || { echo "missing $bin (build with FLOWAD_BUILD_BENCHMARKS=ON)" >&2; exit 1; }
exec "$bin" --images 10000 --every 500 --check "${@:2}"
