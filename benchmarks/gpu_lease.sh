#!/usr/bin/env bash
# Everything a lent GPU session runs, as one command with one time limit:
#   1. installs the wheels carried in .whl/ (packages the lent image lacks:
#      distrax + tfp-nightly, minari, gymnasium, mujoco, ml-collections, ...)
#      and unpacks the Minari datasets carried in .ds/datasets.tar.xz into
#      runs/minari; stops at once (rc 3) if the stack does not import;
#   2. the reproduction grid (benchmarks/repro_gpu.sh, one shard per task,
#      seeds vmapped in one program per task), killed at GRID_DEADLINE_S and
#      reported either way;
#   3. with the time left before TOTAL_S, the device check (gpu_check.sh).
# Output: JSON lines on stdout; with OUT set, the grid's report, its
# sweep.tar.gz and gpu_util.csv (nvidia-smi every 15 s) land in $OUT.
#
#   OUT=... GRID_DEADLINE_S=480 TOTAL_S=540 bash benchmarks/gpu_lease.sh \
#       --tasks=hopper-mixed,walker2d-mixed --seeds=0,1,2 --scale=cpu
#
# Preparing the carried files (here, before the lease; both paths are ignored
# by git through .git/info/exclude): see docs/benchmarks.md, "On a lent GPU".
set -uo pipefail
cd "$(dirname "$0")/.."
source benchmarks/lease_setup.sh
DEADLINE_S=${GRID_DEADLINE_S:-480} REPORT_DIR=${OUT:-} \
    bash benchmarks/repro_gpu.sh runs/repro-gpu "${SHARDS:-4}" "$@"
echo "{\"grid_rc\": $?, \"elapsed_s\": $(( $(date +%s) - t0 ))}"
left=$(( ${TOTAL_S:-540} - ($(date +%s) - t0) ))
if [ "$left" -gt 90 ]; then
    timeout "$left" bash benchmarks/gpu_check.sh
fi
[ -n "${sampler:-}" ] && kill "$sampler"
echo "{\"lease_elapsed_s\": $(( $(date +%s) - t0 ))}"
