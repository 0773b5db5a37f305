#!/usr/bin/env bash
# The image-level API and the command line agree: examples/inspect.cpp fits on a folder and saves a
# model; `flowad score` on that model gives the same score, bit for bit, and the same verdict.
#   inspect_roundtrip.sh EXAMPLE FLOWAD GOOD_FOLDER IMAGE SCRATCH
set -euo pipefail
example=$1 flowad=$2 good=$3 image=$4 scratch=$5
rm -rf "$scratch" && mkdir -p "$scratch"
"$example" "$good" "$image" "$scratch/model.flowad" 2 | tee "$scratch/example.txt"
"$flowad" score "$scratch/model.flowad" "$image" --out "$scratch/scored" | tee "$scratch/score.txt"
python3 - "$scratch" <<'PY'
import csv, sys
scratch = sys.argv[1]
lines = dict(l.split(" ", 1) for l in open(f"{scratch}/example.txt").read().splitlines() if " " in l)
api_score, api_verdict = float(lines["score"]), lines["verdict"].strip()
row = next(csv.DictReader(open(f"{scratch}/scored/scores.csv")))
cli_score, cli_verdict = float(row["score"]), ("anomalous" if row["anomalous"] == "1" else "ok")
print(f"API {api_score!r} {api_verdict}; CLI {cli_score!r} {cli_verdict}")
if api_score != cli_score or api_verdict != cli_verdict:
    sys.exit("the API and flowad score disagree")
PY
