#!/usr/bin/env bash
# GPU check: the benchmarks below in one script, JSON lines, under 8 minutes
# on one GPU. Each step runs the project's own benchmark at the paper's sizes:
#   device       jax version, backend, devices
#   awac_step    the paper-size AWAC update (batch 1024): steps/s and the
#                fraction of a matmul peak measured in the same process
#   rollout      the 1M-sample conservative rollout, h = 1 and h = 5 (hopper)
#   rollout_blocks  the same (h = 1) with larger row blocks (mb2po.block_size,
#                a speed/memory setting: the numbers do not depend on it), since
#                2,048-row blocks leave a GPU mostly waiting between small kernels
#   iteration    one whole paper-size MB2PO iteration (1M samples, 1000 updates)
#   seeds        4 vmapped seeds vs 1 (benchmarks/seeds.py, --config.num_seeds):
#                the AWAC update's throughput ratio
#   pipeline     a 2-minute slice of a real paper-scale hopper run
#                (benchmarks/pipeline_slice.py), with the AWAC phase projected
#   step         per step: rc and wall seconds (a step that fails or times out
#                does not stop the others)
#
#   bash benchmarks/gpu_check.sh             # paper sizes (on a GPU)
#   bash benchmarks/gpu_check.sh --reduced   # small sizes: proves it works on a CPU
#   CHECK_STEPS="pipeline" bash benchmarks/gpu_check.sh   # only the named steps
#       (of awac_step rollout_h1 rollout_h5 rollout_blocks iteration seeds pipeline)
#
# The pipeline slice reads mb2po/hopper/mixed-v0 from $MINARI_DATASETS_PATH
# (default ~/.minari/datasets, Minari's own default).
set -uo pipefail
cd "$(dirname "$0")/.."
export XLA_PYTHON_CLIENT_PREALLOCATE=false
export MINARI_DATASETS_PATH=${MINARI_DATASETS_PATH:-$HOME/.minari/datasets}
reduced=0
[ "${1:-}" = "--reduced" ] && reduced=1
logs=$(mktemp -d)
# Some GPU nodes' Python environments have python3 but no plain python.
py=${PYTHON:-$(command -v python3 || command -v python)}
known_steps=" awac_step rollout_h1 rollout_h5 rollout_blocks iteration seeds pipeline "
for step in ${CHECK_STEPS:-}; do
    case "$known_steps" in
        *" $step "*) ;;
        *) echo "CHECK_STEPS: unknown step '$step'; valid:$known_steps" >&2; exit 2 ;;
    esac
done


"$py" -c "import jax, json; print(json.dumps({'check': 'device', 'jax': jax.__version__, 'backend': jax.default_backend(), 'devices': [str(d) for d in jax.devices()], 'reduced': bool($reduced)}))"

run_step() {  # name timeout_s command...
    local name=$1 limit=$2
    shift 2
    case " ${CHECK_STEPS:-$known_steps} " in *" $name "*) ;; *) return 0 ;; esac
    local start rc
    start=$(date +%s.%N)
    timeout "$limit" "$@" > "$logs/$name.out" 2> "$logs/$name.err"
    rc=$?
    grep '^{' "$logs/$name.out"
    "$py" -c "import json; print(json.dumps({'check': 'step', 'name': '$name', 'rc': $rc, 'seconds': round($(date +%s.%N) - $start, 1)}))"
    if [ "$rc" -ne 0 ]; then tail -n 5 "$logs/$name.err" | sed 's/^/  /'; fi
}

if [ "$reduced" -eq 1 ]; then
    run_step awac_step 600 "$py" benchmarks/awac_step.py --batch-size 64 --steps-per-call 2 \
        --repeats 2 --hidden 64 64 --quantiles 16 --advantage-samples 3 --dataset-size 1000 \
        --peak-size 256 --peak-repeats 3
    run_step rollout_h1 300 "$py" benchmarks/rollout.py --case hopper 20000 1 --repeats 1
    run_step rollout_h5 300 "$py" benchmarks/rollout.py --case hopper 20000 5 --repeats 1
    run_step rollout_blocks 300 "$py" benchmarks/rollout.py --case hopper 20000 1 --repeats 1 \
        --block-size 8192
    run_step iteration 600 "$py" benchmarks/rollout.py --iteration hopper --samples 20000 \
        --updates 10 --batch-size 64 --repeats 1
    run_step seeds 300 "$py" benchmarks/seeds.py --num-seeds 2 --batch-size 64 \
        --steps-per-call 2 --repeats 2 --hidden 64 64 --quantiles 16 --advantage-samples 3 \
        --dataset-size 1000 --peak-size 256 --peak-repeats 3
    run_step pipeline 400 "$py" benchmarks/pipeline_slice.py --config=quickstart.py --seconds=180
else
    run_step awac_step 180 "$py" benchmarks/awac_step.py
    run_step rollout_h1 90 "$py" benchmarks/rollout.py --case hopper 1000000 1
    run_step rollout_h5 90 "$py" benchmarks/rollout.py --case hopper 1000000 5
    run_step rollout_blocks 120 bash -c "'$py' benchmarks/rollout.py --case hopper 1000000 1 \
        --block-size 32768 && '$py' benchmarks/rollout.py --case hopper 1000000 1 --block-size 262144"
    run_step iteration 120 "$py" benchmarks/rollout.py --iteration hopper
    run_step seeds 150 "$py" benchmarks/seeds.py --num-seeds 4
    run_step pipeline 200 "$py" benchmarks/pipeline_slice.py --config=hopper_mixed.py \
        --seconds=120 --set dataset=minari:mb2po/hopper/mixed-v0
fi
rm -rf "$logs"
