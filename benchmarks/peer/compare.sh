#!/usr/bin/env bash
# flowad against its PyTorch peer, in one run (issue 5).
#
#   benchmarks/peer/compare.sh [--threads N] [--repeats R] [--build DIR] [--out FILE]
#                              [--configs a,b] [--cases a,b] [--jit]
#
# Runs, one process each and with the same thread count:
#   flowad                   DIR/benchmarks/bench_flow --json (also measures the machine's FP32 peak)
#   stock                    bench_torch.py, NCHW, default allocator
#   channels_last            bench_torch.py --channels-last
#   channels_last+tcmalloc   the same with libtcmalloc_minimal preloaded (skipped, with a note, if absent)
#   channels_last+tcmalloc+jit   only with --jit: scoring through torch.jit freeze/optimize_for_inference
# then prints one table row per case and writes every JSON line (plus a first "meta" line) to FILE.
#
# Options:
#   --threads N     threads of every side (default 2)
#   --repeats R     timed runs per case, median reported (default 7)
#   --build DIR     flowad build directory holding benchmarks/bench_flow (default build; relative paths
#                   are taken from the current directory, else from the repository root)
#   --out FILE      raw JSON lines (default DIR/benchmarks/peer_compare.jsonl)
#   --configs LIST  msflow_seed,fastflow_256 (default both)
#   --cases LIST    score_b1,score_b16,train_b16 (default all)
#   --jit           add the channels_last+tcmalloc+jit PyTorch variant
#
# Ratios in the table are PyTorch time / flowad time: above 1 means flowad is faster.
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
configs=
cases=
jit=0
small=()

usage() { sed -n '2,26p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
die() { echo "compare.sh: $*" >&2; exit 2; }

while [[ $# -gt 0 ]]; do
  case $1 in
    --threads) [[ $# -ge 2 ]] || die "--threads needs a value"; threads=$2; shift 2 ;;
    --repeats) [[ $# -ge 2 ]] || die "--repeats needs a value"; repeats=$2; shift 2 ;;
    --build) [[ $# -ge 2 ]] || die "--build needs a value"; build=$2; shift 2 ;;
    --out) [[ $# -ge 2 ]] || die "--out needs a value"; out=$2; shift 2 ;;
    --configs) [[ $# -ge 2 ]] || die "--configs needs a value"; configs=$2; shift 2 ;;
    --cases) [[ $# -ge 2 ]] || die "--cases needs a value"; cases=$2; shift 2 ;;
    --jit) jit=1; shift ;;
    --small) small=(--small); shift ;;  # development only: reduced PyTorch shapes (the sides then differ)
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option '$1'" ;;
  esac
done
[[ $threads =~ ^[1-9][0-9]*$ ]] || die "--threads must be a positive integer, got '$threads'"
[[ $repeats =~ ^[1-9][0-9]*$ ]] || die "--repeats must be a positive integer, got '$repeats'"

if [[ $build != /* && ! -d $build && -d $root/$build ]]; then build=$root/$build; fi
bench_flow=$build/benchmarks/bench_flow
if [[ ! -x $bench_flow ]]; then
  die "flowad's benchmark '$bench_flow' is missing or not executable.
  Build it first, e.g.:  cmake --build ${build} --target bench_flow
  (or point --build at the build directory that has benchmarks/bench_flow)."
fi
[[ -x $python ]] || die "$python not found (Debian's python3 with python3-torch is required)"
"$python" -c 'import torch' 2>/dev/null || die "$python cannot import torch (bash scripts/install-deps.sh --peer installs python3-torch and tcmalloc)"

tcmalloc=
for candidate in "${tcmalloc_candidates[@]}"; do
  if [[ -r $candidate ]]; then tcmalloc=$candidate; break; fi
done

[[ -n $out ]] || out=$build/benchmarks/peer_compare.jsonl
mkdir -p "$(dirname "$out")"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

filters=()
[[ -n $configs ]] && filters+=(--configs "$configs")
[[ -n $cases ]] && filters+=(--cases "$cases")

# Meta line: when, where, how loaded (the host is shared).
"$python" - "$threads" "$repeats" "$bench_flow" > "$work/meta.jsonl" <<'EOF'
import json, os, platform, sys, time
print(json.dumps({"side": "meta", "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "host": platform.node(),
                  "threads": int(sys.argv[1]), "repeats": int(sys.argv[2]), "bench_flow": sys.argv[3],
                  "cpus": os.cpu_count(), "loadavg_before": os.getloadavg()}))
EOF

echo "== flowad: $bench_flow --json --threads $threads --repeats $repeats ${filters[*]}" >&2
"$bench_flow" --json --threads "$threads" --repeats "$repeats" "${filters[@]}" > "$work/flowad.out"
grep '^{' "$work/flowad.out" > "$work/flowad.jsonl" || die "bench_flow printed no JSON lines"

run_torch() {  # run_torch VARIANT PRELOAD [bench_torch.py options...]
  local variant=$1 preload=$2
  shift 2
  echo "== pytorch $variant${preload:+ (LD_PRELOAD=$preload)}" >&2
  if [[ -n $preload ]]; then
    env LD_PRELOAD="$preload" "$python" "$here/bench_torch.py" --json --threads "$threads" --repeats "$repeats" \
      --variant "$variant" "${filters[@]}" "${small[@]}" "$@" >> "$work/torch.jsonl"
  else
    env -u LD_PRELOAD "$python" "$here/bench_torch.py" --json --threads "$threads" --repeats "$repeats" \
      --variant "$variant" "${filters[@]}" "${small[@]}" "$@" >> "$work/torch.jsonl"
  fi
}
: > "$work/torch.jsonl"
run_torch stock ""
run_torch channels_last "" --channels-last
if [[ -n $tcmalloc ]]; then
  run_torch channels_last+tcmalloc "$tcmalloc" --channels-last
  if [[ $jit == 1 ]]; then run_torch channels_last+tcmalloc+jit "$tcmalloc" --channels-last --jit; fi
else
  echo "note: libtcmalloc_minimal.so.4 not found (apt install libtcmalloc-minimal4); skipping channels_last+tcmalloc" >&2
  if [[ $jit == 1 ]]; then run_torch channels_last+jit "" --channels-last --jit; fi
fi

"$python" - "$work/meta.jsonl" <<'EOF' > "$work/meta2.jsonl"
import json, os, sys
meta = json.loads(open(sys.argv[1]).read())
meta["loadavg_after"] = os.getloadavg()
print(json.dumps(meta))
EOF
cat "$work/meta2.jsonl" "$work/flowad.jsonl" "$work/torch.jsonl" > "$out"

"$python" - "$out" <<'EOF'
"""The comparison table from the JSON lines (stdlib only)."""
import json
import sys

rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
meta = next((r for r in rows if r.get("side") == "meta"), {})
peak = next((r["gflops"] for r in rows if r.get("side") == "flowad" and r.get("case") == "peak"), None)
flowad = {(r["config"], r["case"]): r for r in rows if r.get("side") == "flowad" and r.get("case") != "peak"}
torch_rows = [r for r in rows if r.get("side") == "pytorch"]
variants = []
for r in torch_rows:
    if r["variant"] not in variants:
        variants.append(r["variant"])
torch_by = {(r["config"], r["case"], r["variant"]): r for r in torch_rows}
config_order = ["msflow_seed", "fastflow_256"]
case_order = ["score_b1", "score_b16", "train_b16"]
keys = sorted({(r["config"], r["case"]) for r in rows if r.get("side") in ("flowad", "pytorch") and r.get("case") != "peak"},
              key=lambda k: (config_order.index(k[0]) if k[0] in config_order else len(config_order), k[0],
                             case_order.index(k[1]) if k[1] in case_order else len(case_order), k[1]))


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


print()
print(f"threads {meta.get('threads')}, repeats {meta.get('repeats')}, load average before "
      f"{', '.join(f'{x:.1f}' for x in meta.get('loadavg_before', []))} / after "
      f"{', '.join(f'{x:.1f}' for x in meta.get('loadavg_after', []))} on {meta.get('cpus')} CPUs")
if torch_rows:
    t = torch_rows[0]
    print(f"PyTorch {t.get('torch')}, MKL-DNN available: {t.get('mkldnn')}")
print(f"measured FP32 peak: {fmt(peak, '.1f')} GFLOP/s")
print("ms = median wall time per batch; ratios = PyTorch ms / flowad ms (above 1: flowad faster)")
print()
short = {v: v.replace("channels_last", "cl").replace("tcmalloc", "tcm") for v in variants}
head = (f"{'config':<13} {'case':<10} {'flowad ms':>10} "
        + " ".join(f"{short[v] + ' ms':>{max(10, len(short[v]) + 3)}}" for v in variants)
        + f" {'flowad GF/s':>11} {'% peak':>7} {'best/flowad':>11} {'stock/flowad':>12}  best")
print(head)
print("-" * len(head))
warnings = {}
for config, case in keys:
    f = flowad.get((config, case))
    f_ms = f["ms_median"] if f else None
    cells, best = [], None
    for v in variants:
        t = torch_by.get((config, case, v))
        ms = t["ms_median"] if t else None
        cells.append(f"{fmt(ms, '.2f'):>{max(10, len(short[v]) + 3)}}")
        if ms is not None and (best is None or ms < best[0]):
            best = (ms, v)
        if t and f and abs(t["flops_per_batch"] - f["flops_per_batch"]) > 1e-6 * f["flops_per_batch"]:
            warnings[(config, case)] = (f"{config}/{case}: flops_per_batch differs (flowad {f['flops_per_batch']:.6e}, "
                                        f"pytorch {t['flops_per_batch']:.6e}): the two sides do not run the same flow")
    gflops = f["flops_per_batch"] / (f_ms * 1e-3) * 1e-9 if f else None
    pct = 100.0 * gflops / peak if gflops is not None and peak else None
    stock = torch_by.get((config, case, "stock"))
    best_ratio = best[0] / f_ms if best and f_ms else None
    stock_ratio = stock["ms_median"] / f_ms if stock and f_ms else None
    print(f"{config:<13} {case:<10} {fmt(f_ms, '.2f'):>10} " + " ".join(cells)
          + f" {fmt(gflops, '.1f'):>11} {fmt(pct, '.1f'):>7} {fmt(best_ratio, '.2f'):>11} {fmt(stock_ratio, '.2f'):>12}"
          + f"  {short[best[1]] if best else '-'}")

print()
print("peak RSS per process (MB): " + ", ".join(
    f"{name} {max(r['peak_rss_mb'] for r in group):.0f}"
    for name, group in [("flowad", list(flowad.values()))] + [(v, [r for r in torch_rows if r["variant"] == v])
                                                              for v in variants] if group))
for w in warnings.values():
    print("WARNING:", w)
print(f"raw JSON lines: {sys.argv[1]}")
EOF
