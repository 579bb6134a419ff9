#!/usr/bin/env bash
# The reproduction grid on one GPU: N harness shards side by side, each a
# process with a slice of the GPU's memory, so the small-batch (latency-bound)
# CPU-scale cells overlap on the device; MuJoCo evaluation runs on the host's
# cores. Resumable like any sweep: run it again to continue.
#
#   bash benchmarks/repro_gpu.sh WORKDIR SHARDS [harness flags...]
#   e.g. bash benchmarks/repro_gpu.sh runs/repro-gpu 3 --tasks=hopper-mixed,walker2d-mixed,halfcheetah-mixed --seeds=0,1,2 --scale=cpu
#
# Shards split units: a new sweep of consecutive seeds runs each task's seeds
# as one vmapped program (--seed_programs=one), so a unit is a task and more
# shards than tasks would idle; --seed_programs=each makes a unit per task
# and seed (e.g. 6 shards for 2 tasks x 3 seeds). With SHARD_MODE=any every
# process takes whichever cell is free (--shard=any) and, while cells are
# still pending (an arm waiting for its unit's pretraining, or a cell another
# process holds), runs the harness again every 15 s: so after a unit's
# pretraining its arms (control, MB2PO, variants) run side by side, and
# SHARDS may exceed the number of tasks.
#
# Datasets: the harness reads the Minari store in $MINARI_DATASETS_PATH
# (default ~/.minari/datasets, Minari's own default; install_wheelhouse.sh
# unpacks a datasets archive there). Prints one JSON line per finished shard
# and the report path; per-shard logs in WORKDIR/shard<I>.log.
#
# With DEADLINE_S set, shards still running that many seconds after the start
# are killed (SIGKILL: the sweep resumes from its checkpoints when run again),
# so a run with a hard time limit still ends with a report of what finished.
# With REPORT_DIR set, table.md, results.csv and summary.png are copied
# there, and everything else the sweep wrote except checkpoints (shard logs,
# per-task PNGs, every cell's cell.json, run.json, results.json and metrics
# CSVs; not TensorBoard files) goes into one sweep.tar.gz beside them: a few
# flat files, easy to copy off the node.
set -uo pipefail
cd "$(dirname "$0")/.."
workdir=${1:?usage: repro_gpu.sh WORKDIR SHARDS [harness flags]}
shards=${2:?usage: repro_gpu.sh WORKDIR SHARDS [harness flags]}
shift 2
export MINARI_DATASETS_PATH=${MINARI_DATASETS_PATH:-$HOME/.minari/datasets}
# Each process takes only what it uses (no 75 % preallocation per process).
export XLA_PYTHON_CLIENT_PREALLOCATE=false
# Some GPU nodes' Python environments have python3 but no plain python.
py=${PYTHON:-$(command -v python3 || command -v python)}
mkdir -p "$workdir"
"$py" -c "import jax, json; print(json.dumps({'jax': jax.__version__, 'devices': [str(d) for d in jax.devices()]}))"
start=$(date +%s)
pids=()
shard_loop() {  # i: with SHARD_MODE=any, rerun while the sweep has pending cells
    local i=$1
    shift
    if [ "${SHARD_MODE:-static}" != any ]; then
        "$py" -m experiments.reproduce --workdir="$workdir" --shard="$i/$shards" \
            --set=train.progress_bar=False "$@"
        return
    fi
    while :; do
        "$py" -m experiments.reproduce --workdir="$workdir" --shard=any \
            --set=train.progress_bar=False "$@" || return
        # The harness's own summary line says whether cells were left pending.
        grep '^sweep: ' "$workdir/shard$i.log" | tail -n 1 | grep -q "'pending'" || return 0
        sleep 15
    done
}
export -f shard_loop
export py workdir shards SHARD_MODE
for ((i = 0; i < shards; i++)); do
    limit=()  # the deadline counts from the start, whatever the stagger below
    [ -n "${DEADLINE_S:-}" ] && limit=(timeout -s KILL $(( DEADLINE_S - ($(date +%s) - start) )))
    "${limit[@]}" bash -c 'shard_loop "$@"' _ "$i" "$@" > "$workdir/shard$i.log" 2>&1 &
    pids+=($!)
    [ "${SHARD_MODE:-static}" = any ] && sleep 5  # each takes the next free cell
done
status=0
for i in "${!pids[@]}"; do
    wait "${pids[$i]}"; rc=$?
    [ "$rc" -ne 0 ] && status=$rc
    # rc 137 with DEADLINE_S set: killed at the deadline (resumable).
    echo "{\"shard\": $i, \"rc\": $rc, \"elapsed_s\": $(( $(date +%s) - start ))}"
    tail -n 2 "$workdir/shard$i.log"
done
"$py" -m experiments.reproduce --workdir="$workdir" --report_only
if [ -n "${REPORT_DIR:-}" ]; then
    mkdir -p "$REPORT_DIR"
    cp "$workdir"/table.md "$workdir"/results.csv "$workdir"/summary.png "$REPORT_DIR" 2> /dev/null
    # TensorBoard files left out: they repeat the metrics CSVs and would make
    # the archive much larger.
    tar -C "$workdir" --exclude=checkpoints --exclude='.*lock' --exclude='events.out.tfevents*' \
        -czf "$REPORT_DIR/sweep.tar.gz" .
fi
exit $status
