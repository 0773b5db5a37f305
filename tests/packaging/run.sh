#!/usr/bin/env bash
# Packaging tests: install flowad from a build tree and build consumers of the install, or pull flowad in
# with add_subdirectory; every consumer runs and its output is checked.
#   run.sh <flowad source dir> <flowad build dir> <scratch dir> <mode> [<c++ compiler> <library type>]
# Modes:
#   find_package        find_package(flowad), links flowad::flowad
#   no_components       the same with xtensor and Eigen unfindable: flowad alone needs neither
#   components          find_package(flowad COMPONENTS xtensor eigen) and both adapters; asking for a
#                       component whose package is missing fails at configure time
#   add_subdirectory    flowad as a subproject, with the flowad::xtensor / flowad::eigen aliases
#   pkg_config          c++ $(pkg-config --cflags --libs [--static] flowad) consumer.cpp
set -euo pipefail
source_dir=$1 build_dir=$2 scratch=$3 mode=$4
packaging=$source_dir/tests/packaging
rm -rf "$scratch" && mkdir -p "$scratch"

# Runs a program and checks that it succeeds and prints a line matching a pattern.
expect() {
  local pattern=$1 output
  shift
  output=$("$@")
  echo "$output"
  if ! grep -Eq "$pattern" <<< "$output"; then
    echo "FAILED: $* printed no line matching: $pattern" >&2
    exit 1
  fi
}
consumer_line='^flowad ([0-9]+\.[0-9]+\.[0-9]+) \(headers \1\): paper preset 14\.02 M parameters; scored 16 samples$'
interop_line='^interop: eigen features 4x3x1x1 strides 1,4,1,1, xtensor sum 66; xtensor maps, eigen map 3x4 sum 210; image scores 3\.5 3\.5$'

install() { cmake --install "$build_dir" --prefix "$scratch/prefix" > "$scratch/install.log"; }
configure() { cmake -S "$1" -B "$scratch/consumer" "${@:2}" > "$scratch/configure.log"; }
build() { cmake --build "$scratch/consumer" -j "$(nproc)" > "$scratch/build.log"; }

case $mode in
  find_package)
    install
    configure "$packaging/find_package" -DCMAKE_PREFIX_PATH="$scratch/prefix"
    build
    expect "$consumer_line" "$scratch/consumer/consumer"
    ;;
  no_components)
    install
    configure "$packaging/find_package" -DCMAKE_PREFIX_PATH="$scratch/prefix" \
              -DCMAKE_DISABLE_FIND_PACKAGE_xtensor=ON -DCMAKE_DISABLE_FIND_PACKAGE_Eigen3=ON
    build
    expect "$consumer_line" "$scratch/consumer/consumer"
    ;;
  components)
    install
    if cmake -S "$packaging/components" -B "$scratch/missing" -DCMAKE_PREFIX_PATH="$scratch/prefix" \
             -DCMAKE_DISABLE_FIND_PACKAGE_xtensor=ON > "$scratch/missing.log" 2>&1; then
      echo "FAILED: find_package(flowad COMPONENTS xtensor) succeeded without xtensor" >&2
      exit 1
    fi
    grep -q "xtensor" "$scratch/missing.log"
    configure "$packaging/components" -DCMAKE_PREFIX_PATH="$scratch/prefix"
    build
    expect "$interop_line" "$scratch/consumer/interop_consumer"
    ;;
  add_subdirectory)
    # Unoptimised (-O0, no debug information): the wiring is under test, and this is the one test that
    # compiles the library again, so it is built the fastest way (75 s at -O3 on 2 cores).
    configure "$packaging/add_subdirectory" -DFLOWAD_SOURCE_DIR="$source_dir" -DCMAKE_BUILD_TYPE=Debug \
              -DCMAKE_CXX_FLAGS_DEBUG=-O0
    build
    expect "$consumer_line" "$scratch/consumer/consumer"
    expect "$interop_line" "$scratch/consumer/interop_consumer"
    ;;
  pkg_config)
    compiler=$5 library_type=$6
    install
    pc=$(find "$scratch/prefix" -name flowad.pc)
    [[ -n $pc ]] || { echo "FAILED: no flowad.pc installed" >&2; exit 1; }
    export PKG_CONFIG_PATH=$(dirname "$pc")
    static=()
    [[ $library_type == STATIC_LIBRARY ]] && static=(--static)
    flags=$(pkg-config --cflags --libs "${static[@]}" flowad)
    echo "pkg-config --cflags --libs ${static[*]} flowad: $flags"
    # The consumer after flowad's flags would not link statically; flags go last, as in a Makefile.
    # shellcheck disable=SC2086
    "$compiler" -std=c++17 -O1 "$packaging/consumer.cpp" -o "$scratch/consumer" $flags 2> "$scratch/build.log" ||
      { cat "$scratch/build.log" >&2; exit 1; }
    version=$(pkg-config --modversion flowad)
    expect "^flowad $version \\(headers $version\\)" "$scratch/consumer"
    expect "$consumer_line" "$scratch/consumer"
    ;;
  *)
    echo "unknown mode $mode" >&2
    exit 2
    ;;
esac
