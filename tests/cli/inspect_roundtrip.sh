#!/usr/bin/env bash
# The image-level API and the command line agree, both ways: examples/inspect.cpp fits on a folder and
# saves a model, and `flowad score` gives it the same score, bit for bit, and the same verdict; then
# `flowad fit` saves a model and the example, loading it, gives the same score as `flowad score`.
#   inspect_roundtrip.sh EXAMPLE FLOWAD GOOD_FOLDER IMAGE SCRATCH
set -euo pipefail
example=$1 flowad=$2 good=$3 image=$4 scratch=$5
rm -rf "$scratch" && mkdir -p "$scratch"
# Both print the score with every digit it needs (shortest round trip in the CSV, %.17g in the example),
# so equal text is equal doubles.
compare() {  # example output, scores.csv
  local api_score api_verdict cli_score cli_verdict
  api_score=$(awk '$1 == "score" {print $2}' "$1")
  api_verdict=$(awk '$1 == "verdict" {print $2}' "$1")
  IFS=, read -r _ cli_score flag < <(sed -n 2p "$2")
  cli_verdict=$([[ $flag == 1 ]] && echo anomalous || echo ok)
  echo "API $api_score $api_verdict; CLI $cli_score $cli_verdict"
  awk -v a="$api_score" -v c="$cli_score" 'BEGIN { exit !(a + 0 == c + 0) }' || { echo "the scores differ"; exit 1; }
  [[ $api_verdict == "$cli_verdict" ]] || { echo "the verdicts differ"; exit 1; }
}
"$example" "$good" "$image" "$scratch/api.flowad" 2 | tee "$scratch/api.txt"
"$flowad" score "$scratch/api.flowad" "$image" --out "$scratch/api-scored"
compare "$scratch/api.txt" "$scratch/api-scored/scores.csv"
# One fit (the holdout): what is compared here is the model file, not the calibration.
"$flowad" fit "$good" --epochs 2 --calibration holdout --out "$scratch/cli.flowad"
"$example" "$scratch/cli.flowad" "$image" | tee "$scratch/cli.txt"
"$flowad" score "$scratch/cli.flowad" "$image" --out "$scratch/cli-scored"
compare "$scratch/cli.txt" "$scratch/cli-scored/scores.csv"
