#!/usr/bin/env bash
# flowad against its peers, PyTorch and ONNX Runtime, in one run (issues 5 and 32).
#
#   benchmarks/peer/compare.sh [--threads N] [--repeats R] [--build DIR] [--out FILE]
#                              [--parts flows,pipelines] [--configs a,b] [--cases a,b] [--jit]
#
# Two parts, each side one process, all with the same thread count:
#   flows      the benchmark flows on random features (msflow_seed 304x24x24, fastflow_256 256x64x64):
#              scoring at batch 1 and 16 and a training step at batch 16
#                flowad        DIR/benchmarks/bench_flow --json (also measures the machine's FP32 peak)
#                PyTorch       bench_torch.py: stock, channels_last, channels_last+tcmalloc (+jit with --jit)
#                ONNX Runtime  bench_ort.js on export_onnx.py's graphs (scoring only: it does not train)
#   pipelines  decoded 256x256 images to anomaly maps and image scores with ResNet18 features, for the
#              shipped defaults (e2e_msflow, e2e_fastflow, e2e_patchcore, e2e_fcl), at batch 1 and 16, and
#              one training epoch on 209 images' features (fit_epoch; PyTorch only: ONNX Runtime does not train)
#                flowad        DIR/benchmarks/bench_pipeline --json (models fitted once by --fit, kept in
#                              DIR/benchmarks/pipeline_models; needs ../shared's bottle and ResNet18 weights)
#                PyTorch       bench_pipeline_torch.py: stock, channels_last, channels_last+tcmalloc
#                ONNX Runtime  bench_ort.js on export_onnx.py's graphs
#   decode     one MVTec bottle image (900x900 PNG, and as a quality-95 JPEG) read, decoded, converted to
#              floats and resized to 256x256, on one thread (images are prepared one per thread)
#                flowad        DIR/benchmarks/bench_image_io (bm_prepare_png, bm_prepare_jpeg)
#                PyTorch       bench_decode_torch.py (torchvision.io and its antialiased resize)
# then prints one table (a row per case) and writes every JSON line (plus a first "meta" line) to FILE.
#
# Options:
#   --threads N     threads of every side (default 2)
#   --repeats R     timed runs per case, median reported (default 7)
#   --build DIR     flowad build directory holding benchmarks/bench_flow and bench_pipeline (default build;
#                   relative paths are taken from the current directory, else from the repository root)
#   --out FILE      raw JSON lines (default DIR/benchmarks/peer_compare.jsonl)
#   --parts LIST    flows,pipelines,decode (default all three)
#   --configs LIST  flow configs: msflow_seed,fastflow_256 (default both)
#   --cases LIST    flow cases: score_b1,score_b16,train_b16 (default all)
#   --jit           add the channels_last+tcmalloc+jit PyTorch variant to the flows
#   --no-fit        pipelines: scoring only, without the training epochs (the longest cases)
#
# Needs scripts/install-deps.sh --peer (Debian's python3-torch and tcmalloc, npm's onnxruntime-node).
# Ratios in the table are peer time / flowad time: above 1 means flowad is faster.
# The host is shared and noisy: compare medians measured in the same run, and repeat the whole run.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
python=/usr/bin/python3   # Debian's python3-torch; not the pyenv python3 first on PATH
tcmalloc_candidates=(/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 /usr/lib64/libtcmalloc_minimal.so.4)

threads=2
repeats=7
build=build
out=
parts=flows,pipelines,decode
configs=
cases=
jit=0
fit_cases=fit_epoch
small=()

usage() { sed -n '2,39p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
die() { echo "compare.sh: $*" >&2; exit 2; }

while [[ $# -gt 0 ]]; do
  case $1 in
    --threads) [[ $# -ge 2 ]] || die "--threads needs a value"; threads=$2; shift 2 ;;
    --repeats) [[ $# -ge 2 ]] || die "--repeats needs a value"; repeats=$2; shift 2 ;;
    --build) [[ $# -ge 2 ]] || die "--build needs a value"; build=$2; shift 2 ;;
    --out) [[ $# -ge 2 ]] || die "--out needs a value"; out=$2; shift 2 ;;
    --parts) [[ $# -ge 2 ]] || die "--parts needs a value"; parts=$2; shift 2 ;;
    --configs) [[ $# -ge 2 ]] || die "--configs needs a value"; configs=$2; shift 2 ;;
    --cases) [[ $# -ge 2 ]] || die "--cases needs a value"; cases=$2; shift 2 ;;
    --jit) jit=1; shift ;;
    --no-fit) fit_cases=; shift ;;
    --small) small=(--small); shift ;;  # development only: reduced PyTorch flow shapes (the sides then differ)
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option '$1'" ;;
  esac
done
[[ $threads =~ ^[1-9][0-9]*$ ]] || die "--threads must be a positive integer, got '$threads'"
[[ $repeats =~ ^[1-9][0-9]*$ ]] || die "--repeats must be a positive integer, got '$repeats'"
want_flows=0 want_pipelines=0 want_decode=0
for part in ${parts//,/ }; do
  case $part in
    flows) want_flows=1 ;;
    pipelines) want_pipelines=1 ;;
    decode) want_decode=1 ;;
    *) die "unknown part '$part' (flows, pipelines, decode)" ;;
  esac
done

if [[ $build != /* && ! -d $build && -d $root/$build ]]; then build=$root/$build; fi
for program in bench_flow bench_pipeline bench_image_io; do
  if [[ ! -x $build/benchmarks/$program ]]; then
    die "flowad's benchmark '$build/benchmarks/$program' is missing or not executable.
  Build it first, e.g.:  cmake --build ${build} --target bench_flow bench_pipeline bench_image_io
  (or point --build at the build directory that has them)."
  fi
done
[[ -x $python ]] || die "$python not found (Debian's python3 with python3-torch is required)"
"$python" -c 'import torch' 2>/dev/null ||
  die "$python cannot import torch (bash scripts/install-deps.sh --peer installs python3-torch and tcmalloc)"
command -v node >/dev/null || die "node not found (Node.js runs ONNX Runtime's npm package)"
[[ -d $here/node_modules/onnxruntime-node ]] ||
  die "onnxruntime-node is not installed in $here/node_modules (bash scripts/install-deps.sh --peer installs it)"

tcmalloc=
for candidate in "${tcmalloc_candidates[@]}"; do
  if [[ -r $candidate ]]; then tcmalloc=$candidate; break; fi
done
[[ -n $tcmalloc ]] || echo "note: libtcmalloc_minimal.so.4 not found (apt install libtcmalloc-minimal4); no tcmalloc variants" >&2

[[ -n $out ]] || out=$build/benchmarks/peer_compare.jsonl
mkdir -p "$(dirname "$out")"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

flow_filters=()
[[ -n $configs ]] && flow_filters+=(--configs "$configs")
[[ -n $cases ]] && flow_filters+=(--cases "$cases")

# Meta line: when, where, how loaded (the host is shared).
"$python" - "$threads" "$repeats" "$build" > "$work/meta.jsonl" <<'EOF'
import json, os, platform, sys, time
print(json.dumps({"side": "meta", "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "host": platform.node(),
                  "threads": int(sys.argv[1]), "repeats": int(sys.argv[2]), "build": sys.argv[3],
                  "cpus": os.cpu_count(), "loadavg_before": os.getloadavg()}))
EOF
: > "$work/rows.jsonl"

# PyTorch's matrix products (PatchCore's search) run on the BLAS Debian's alternatives select: OpenBLAS, which
# install-deps --peer installs (the reference BLAS it would otherwise use is 20x slower), with our thread count.
export OPENBLAS_NUM_THREADS=$threads
run_torch() {  # run_torch SCRIPT VARIANT PRELOAD [options...]
  local script=$1 variant=$2 preload=$3
  shift 3
  echo "== pytorch $script $variant${preload:+ (LD_PRELOAD=$preload)}" >&2
  if [[ -n $preload ]]; then
    env LD_PRELOAD="$preload" "$python" "$here/$script" --json --threads "$threads" --repeats "$repeats" \
      --variant "$variant" "$@" >> "$work/rows.jsonl"
  else
    env -u LD_PRELOAD "$python" "$here/$script" --json --threads "$threads" --repeats "$repeats" \
      --variant "$variant" "$@" >> "$work/rows.jsonl"
  fi
}

run_ort() {  # run_ort CONFIGS CASES [export_onnx.py options...]
  echo "== onnxruntime $1 ($2)" >&2
  "$python" "$here/export_onnx.py" "$work/onnx" --configs "$1" "${@:3}" 2>/dev/null
  node "$here/bench_ort.js" --models "$work/onnx" --threads "$threads" --repeats "$repeats" --configs "$1" \
    --cases "$2" >> "$work/rows.jsonl"
}

if [[ $want_flows == 1 ]]; then
  echo "== flowad: bench_flow --json --threads $threads --repeats $repeats ${flow_filters[*]}" >&2
  "$build/benchmarks/bench_flow" --json --threads "$threads" --repeats "$repeats" "${flow_filters[@]}" |
    grep '^{' >> "$work/rows.jsonl" || die "bench_flow printed no JSON lines"
  run_torch bench_torch.py stock "" "${flow_filters[@]}" "${small[@]}"
  run_torch bench_torch.py channels_last "" --channels-last "${flow_filters[@]}" "${small[@]}"
  if [[ -n $tcmalloc ]]; then
    run_torch bench_torch.py channels_last+tcmalloc "$tcmalloc" --channels-last "${flow_filters[@]}" "${small[@]}"
    if [[ $jit == 1 ]]; then
      run_torch bench_torch.py channels_last+tcmalloc+jit "$tcmalloc" --channels-last --jit "${flow_filters[@]}" "${small[@]}"
    fi
  elif [[ $jit == 1 ]]; then
    run_torch bench_torch.py channels_last+jit "" --channels-last --jit "${flow_filters[@]}" "${small[@]}"
  fi
  flow_score_cases=$(echo "${cases:-score_b1,score_b16}" | tr ',' '\n' | grep '^score_' | paste -sd, || true)
  if [[ -n $flow_score_cases ]]; then run_ort "${configs:-msflow_seed,fastflow_256}" "$flow_score_cases"; fi
fi

if [[ $want_pipelines == 1 ]]; then
  detectors=msflow,fastflow,patchcore,fcl
  models=$build/benchmarks/pipeline_models
  for d in ${detectors//,/ }; do
    if [[ ! -f $models/$d.flowad ]]; then
      echo "== flowad: fitting $d once (one epoch on MVTec bottle) -> $models/$d.flowad" >&2
      "$build/benchmarks/bench_pipeline" --fit --configs "$d" --threads "$threads" --models "$models"
    fi
  done
  # One process per detector and kind of case on every side, so that each peak RSS is that case's alone
  # (a training epoch holds far more than scoring; PatchCore's bank more than the flows). The sides of one
  # detector run back to back before the next detector's, so that a slow spell of a shared host falls on
  # all sides of a case alike rather than on one side of several.
  peak_option=()  # the first process also measures the machine's FP32 peak (after its cases)
  for d in ${detectors//,/ }; do
    for c in score $fit_cases; do
      cases_of=$([[ $c == score ]] && echo score_b1,score_b16 || echo fit_epoch)
      echo "== flowad: bench_pipeline --configs $d --cases $cases_of" >&2
      "$build/benchmarks/bench_pipeline" --json --threads "$threads" --repeats "$repeats" --configs "$d" \
        --cases "$cases_of" --models "$models" "${peak_option[@]}" | grep '^{' >> "$work/rows.jsonl" || true
      peak_option=(--no-peak)
    done
    # The work oneDNN executed in one steady-state scoring call, and where its time went.
    for c in score_b1 score_b16; do
      "$build/benchmarks/bench_pipeline" --configs "$d" --cases "$c" --repeats 1 --profile --no-peak \
        --models "$models" --threads "$threads" |
        "$python" "$root/benchmarks/executed_work.py" --json "e2e_$d" "$c" >> "$work/rows.jsonl"
    done
    # The peers' PatchCore searches a bank of as many rows as flowad's fitted one (known once flowad's
    # PatchCore has run, which is before the peers' PatchCore runs).
    bank=$("$python" -c 'import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
print(next((r["bank_rows"] for r in rows if r.get("config") == "e2e_patchcore" and r.get("bank_rows")), 21401))' \
      "$work/rows.jsonl")
    for c in score_b1,score_b16 $fit_cases; do
      pipeline_options=(--configs "$d" --patchcore-bank "$bank" --cases "$c")
      run_torch bench_pipeline_torch.py stock "" "${pipeline_options[@]}"
      run_torch bench_pipeline_torch.py channels_last "" --channels-last "${pipeline_options[@]}"
      if [[ -n $tcmalloc ]]; then
        run_torch bench_pipeline_torch.py channels_last+tcmalloc "$tcmalloc" --channels-last "${pipeline_options[@]}"
      fi
    done
    run_ort "e2e_$d" score_b1,score_b16 --patchcore-bank "$bank"
  done
fi

if [[ $want_decode == 1 ]]; then
  shared=${FLOWAD_SHARED:-$root/../shared}
  echo "== flowad: bench_image_io bm_prepare_* (one thread)" >&2
  OMP_NUM_THREADS=1 "$build/benchmarks/bench_image_io" --benchmark_filter='bm_prepare_' \
    --benchmark_repetitions="$repeats" --benchmark_report_aggregates_only=true --benchmark_format=json > "$work/image_io.json"
  "$python" - "$work/image_io.json" >> "$work/rows.jsonl" <<'EOF'
import json, sys
report = json.load(open(sys.argv[1]))
for b in report["benchmarks"]:
    if b.get("aggregate_name") == "median":
        case = b["run_name"].replace("bm_", "")
        print(json.dumps({"side": "flowad", "variant": "flowad", "config": "decode_resize", "case": case,
                          "ms_median": b["real_time"], "threads": 1}))
EOF
  echo "== pytorch bench_decode_torch.py (one thread)" >&2
  OMP_NUM_THREADS=1 "$python" "$here/bench_decode_torch.py" --json --repeats "$repeats" \
    --png "$shared/data/mvtec_bottle/train/good/000.png" --jpeg "${TMPDIR:-/tmp}/flowad_bench_bottle_q95.jpg" \
    >> "$work/rows.jsonl"
fi

"$python" - "$work/meta.jsonl" <<'EOF' > "$work/meta2.jsonl"
import json, os, sys
meta = json.loads(open(sys.argv[1]).read())
meta["loadavg_after"] = os.getloadavg()
print(json.dumps(meta))
EOF
cat "$work/meta2.jsonl" "$work/rows.jsonl" > "$out"
"$python" "$here/compare_table.py" "$out"
