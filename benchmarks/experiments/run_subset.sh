#!/usr/bin/env bash
# Usage: benchmarks/experiments/run_subset.sh NAME IDEA_JSON [PARAMS_JSON] [SEED] [full]
# Screens one idea on the fixed subset (or the full suite with "full"), nice'd, one thread,
# and writes benchmarks/results/suite_tuning/NAME.txt (run from the repository root).
set -euo pipefail
name=$1; idea=${2:-"{}"}; params=${3:-"{}"}; seed=${4:-0}; scope=${5:-subset}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
# Every run uses the estimator code of one pinned commit (the package is being refactored
# in the working tree meanwhile): PIN, exported from git into /tmp.
PIN=${PIN:-ca9f2a9}
export MLCPC_SNAPSHOT=${MLCPC_SNAPSHOT:-/tmp/mlcpc_snap_$PIN}
if [ ! -d "$MLCPC_SNAPSHOT/sk_mlcpc" ]; then
  mkdir -p "$MLCPC_SNAPSHOT" && git archive "$PIN" sk_mlcpc | tar -x -C "$MLCPC_SNAPSHOT"
fi
tasks=(--tasks gauss-20d-mi2 gauss-20d-mi10 gauss-25d gauss-50d t4-20d mixed-10d t3-1d wiggle)
[ "$scope" = full ] && tasks=()
nice -n 15 python benchmarks/experiments/tuning.py --idea "$idea" --params "$params" \
  --seed "$seed" --jobs 1 "${tasks[@]}" --out "benchmarks/results/suite_tuning/$name.txt"
