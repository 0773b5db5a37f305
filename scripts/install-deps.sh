#!/usr/bin/env bash
# Installs the Debian packages flowad needs to build, test and benchmark. Idempotent: packages that
# are already installed are left alone, and nothing is downloaded when everything is present.
#   scripts/install-deps.sh          build + test dependencies (no Python: the library never needs it)
#   scripts/install-deps.sh --peer   also Python with NumPy, scikit-learn, SciPy and PyTorch, tcmalloc, and
#                                    ONNX Runtime's CPU build from npm (onnxruntime-node, into
#                                    benchmarks/peer/node_modules): the cross-checks (scripts/run-tests.sh --peer)
#                                    and benchmarks/peer (large)
set -euo pipefail

packages=(
  g++ cmake make pkg-config
  libeigen3-dev          # small dense linear algebra (LU of 1x1 weights)
  libdnnl-dev            # oneDNN 2.6: convolutions, matrix products
  ocl-icd-opencl-dev opencl-headers  # required by oneDNN's CMake config
  xtensor-dev            # the xtensor interop adapter and its tests
  catch2                 # unit tests (v2)
  libstb-dev             # image I/O: BMP, and writing PNG
  libspng-dev            # image I/O: PNG (libspng)
  libjpeg62-turbo-dev    # image I/O: JPEG (libjpeg-turbo)
  zlib1g-dev             # compressed .npz (np.savez_compressed), CRC-32
  libbenchmark-dev       # microbenchmarks
  nlohmann-json3-dev     # the flowad tool's JSON reports
  libcli11-dev           # the flowad tool's command line
)
peer=0
if [[ "${1:-}" == "--peer" ]]; then
  peer=1
  # OpenBLAS: PyTorch's matrix products otherwise run on Debian's reference BLAS (20x slower).
  packages+=(python3 python3-numpy python3-sklearn python3-scipy python3-torch python3-torchvision libtcmalloc-minimal4 libopenblas0-pthread)
  # Node.js runs ONNX Runtime's npm package; a machine that has node already keeps its own.
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then packages+=(nodejs npm); fi
fi

# The ONNX Runtime peer, pinned by benchmarks/peer/package-lock.json. --ignore-scripts: the package's
# postinstall only fetches GPU parts, from a host this machine may not reach.
install_onnxruntime() {
  local peer_dir
  peer_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/../benchmarks/peer" && pwd)
  if [[ -f $peer_dir/node_modules/onnxruntime-node/package.json ]]; then
    echo "install-deps: onnxruntime-node present in $peer_dir/node_modules"
  else
    echo "install-deps: npm ci --ignore-scripts in $peer_dir (onnxruntime-node)"
    (cd "$peer_dir" && npm ci --ignore-scripts --no-audit --no-fund)
  fi
}

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-deps: all ${#packages[@]} packages present"
  if [[ $peer == 1 ]]; then install_onnxruntime; fi
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -q
"${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
if [[ $peer == 1 ]]; then install_onnxruntime; fi
