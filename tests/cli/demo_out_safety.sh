#!/usr/bin/env bash
# flowad demo --out DIR deletes only what it wrote: a folder with a data/ of someone else's is refused
# and left as it was; a folder the demo wrote is reused, its outputs replaced.
#   demo_out_safety.sh FLOWAD SCRATCH
set -uo pipefail
flowad=$1 scratch=$2
rm -rf "$scratch" && mkdir -p "$scratch/home/data"
echo "precious" > "$scratch/home/data/keep.txt"
if "$flowad" demo --out "$scratch/home" --train 4 --test 2 --epochs 1 > "$scratch/refused.txt" 2>&1; then
  echo "demo wrote into a folder holding someone else's data/"; exit 1
fi
grep -q "did not write" "$scratch/refused.txt" || { cat "$scratch/refused.txt"; echo "no clear message"; exit 1; }
[[ $(cat "$scratch/home/data/keep.txt") == precious ]] || { echo "the foreign data/ was touched"; exit 1; }
for run in 1 2; do
  "$flowad" demo --out "$scratch/demo" --train 4 --test 2 --epochs 1 > "$scratch/run$run.txt" 2>&1 ||
    { cat "$scratch/run$run.txt"; echo "demo run $run failed"; exit 1; }
done
[[ -f $scratch/demo/model.flowad && -f $scratch/demo/.flowad-demo ]] || { echo "demo outputs missing"; exit 1; }
echo "demo --out is safe"
