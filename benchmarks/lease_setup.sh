# Sourced (from the repository root) by every script a lent GPU runs:
# installs the wheels carried in .whl/ into /tmp/site (the packages the lent
# image lacks; PYTHONPATH then points there), unpacks the Minari datasets
# carried in .ds/datasets.tar.xz into runs/minari, and exits at once (rc 3)
# if the stack does not import. With OUT set, nvidia-smi samples the GPU
# every 15 s into $OUT/gpu_util.csv ($sampler: its pid, to kill at the end).
# Sets t0 (the start, epoch seconds) and py (the interpreter).
# A later call on the same warm machine can run anything else after it, e.g.
#   source benchmarks/lease_setup.sh && CHECK_STEPS=rollout_blocks bash benchmarks/gpu_check.sh
t0=$(date +%s)
export PYTHONUNBUFFERED=1
py=${PYTHON:-$(command -v python3 || command -v python)}
# Only where the stack is missing (the lent image), not on a machine that has it.
if compgen -G ".whl/*.whl" > /dev/null && ! "$py" -c "import distrax, minari, mujoco, gymnasium, ml_collections, tensorboardX" \
        2> /dev/null; then
    "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 2
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
if [ -f .ds/datasets.tar.xz ]; then
    mkdir -p runs/minari && tar -C runs/minari -xJf .ds/datasets.tar.xz || exit 4
fi
"$py" -c "
import json, jax, flax, optax, chex, orbax.checkpoint, distrax, minari, mujoco, gymnasium
import experiments.run, experiments.reproduce
print(json.dumps({'stack': {m.__name__: m.__version__ for m in (jax, flax, optax, chex, distrax, minari, mujoco, gymnasium)}, 'devices': [str(d) for d in jax.devices()]}))
" || exit 3
[ -n "${OUT:-}" ] && mkdir -p "$OUT"
if [ -n "${OUT:-}" ] && command -v nvidia-smi > /dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
    nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -l 15 \
        > "$OUT/gpu_util.csv" 2>&1 &
    sampler=$!
fi
