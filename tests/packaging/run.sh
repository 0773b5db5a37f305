#!/usr/bin/env bash
# Packaging test: install flowad from a build tree and build a consumer with find_package(flowad);
# build another consumer that pulls flowad in with add_subdirectory. Both consumers run.
#   run.sh <flowad source dir> <flowad build dir> <scratch dir> find_package|add_subdirectory
set -euo pipefail
source_dir=$1 build_dir=$2 scratch=$3 mode=$4
rm -rf "$scratch" && mkdir -p "$scratch"
if [[ $mode == find_package ]]; then
  cmake --install "$build_dir" --prefix "$scratch/prefix" > "$scratch/install.log"
  cmake -S "$source_dir/tests/packaging/find_package" -B "$scratch/consumer" -DCMAKE_PREFIX_PATH="$scratch/prefix" > "$scratch/configure.log"
else
  cmake -S "$source_dir/tests/packaging/add_subdirectory" -B "$scratch/consumer" -DFLOWAD_SOURCE_DIR="$source_dir" \
        -DCMAKE_BUILD_TYPE=Release > "$scratch/configure.log"
fi
cmake --build "$scratch/consumer" -j "$(nproc)" > "$scratch/build.log"
"$scratch/consumer/consumer"
