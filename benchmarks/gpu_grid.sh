#!/usr/bin/env bash
# The reproduction grid on one GPU with a wall-clock deadline, as one command:
#   1. source benchmarks/install_wheelhouse.sh: on a GPU node without
#      internet access, install the wheels in WHEEL_DIR (default .whl) and
#      unpack the Minari datasets in DATASETS_ARCHIVE (default
#      .ds/datasets.tar.xz); stop at once (rc 3) if the stack does not import;
#   2. run the reproduction harness's cells (benchmarks/repro_gpu.sh: SHARDS
#      processes, default 4, each task's seeds one vmapped program) until
#      GRID_DEADLINE_S seconds (default 480) after the start; processes still
#      running then are killed (SIGKILL; running the same command again
#      resumes the sweep from its checkpoints), and the report is written
#      either way;
#   3. with the time left before TOTAL_S (default 540; 0: skip), run
#      benchmarks/gpu_check.sh.
# Output: JSON lines on stdout; with OUT set, the grid's table.md,
# results.csv, sweep.tar.gz and gpu_util.csv (nvidia-smi every 15 s) land in
# $OUT. The sweep's workdir is runs/repro-gpu.
#
#   OUT=out GRID_DEADLINE_S=480 TOTAL_S=540 bash benchmarks/gpu_grid.sh \
#       --tasks=hopper-mixed,walker2d-mixed --seeds=0,1,2 --scale=cpu
#
# Any flag after the variables goes to experiments.reproduce (see
# benchmarks/repro_gpu.sh for SHARD_MODE=any).
set -uo pipefail
cd "$(dirname "$0")/.."
source benchmarks/install_wheelhouse.sh
DEADLINE_S=${GRID_DEADLINE_S:-480} REPORT_DIR=${OUT:-} \
    bash benchmarks/repro_gpu.sh runs/repro-gpu "${SHARDS:-4}" "$@"
echo "{\"grid_rc\": $?, \"elapsed_s\": $(( $(date +%s) - t0 ))}"
left=$(( ${TOTAL_S:-540} - ($(date +%s) - t0) ))
if [ "$left" -gt 90 ]; then
    timeout "$left" bash benchmarks/gpu_check.sh
fi
[ -n "${sampler:-}" ] && kill "$sampler"
echo "{\"total_elapsed_s\": $(( $(date +%s) - t0 ))}"
