#!/usr/bin/env bash
# Installs the Debian packages flowad needs to build, test and benchmark. Idempotent: packages that
# are already installed are left alone, and nothing is downloaded when everything is present.
#   scripts/install-deps.sh          build + test dependencies (no Python: the library never needs it)
#   scripts/install-deps.sh --peer   also Python with NumPy, scikit-learn, SciPy and PyTorch, and tcmalloc:
#                                    the cross-checks (scripts/run-tests.sh --peer) and benchmarks/peer (large)
set -euo pipefail

packages=(
  g++ cmake make pkg-config
  libeigen3-dev          # small dense linear algebra (LU of 1x1 weights)
  libdnnl-dev            # oneDNN 2.6: convolutions, matrix products
  ocl-icd-opencl-dev opencl-headers  # required by oneDNN's CMake config
  xtensor-dev            # the xtensor interop adapter and its tests
  catch2                 # unit tests (v2)
  libstb-dev             # image I/O: PNG, BMP, and writing PNG
  libjpeg62-turbo-dev    # image I/O: JPEG (libjpeg-turbo)
  zlib1g-dev             # compressed .npz (np.savez_compressed), CRC-32
  libbenchmark-dev       # microbenchmarks
  nlohmann-json3-dev     # the flowad tool's JSON reports
  libcli11-dev           # the flowad tool's command line
)
if [[ "${1:-}" == "--peer" ]]; then
  packages+=(python3 python3-numpy python3-sklearn python3-scipy python3-torch libtcmalloc-minimal4)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -q
"${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
