# Offline set-up for a GPU node without internet access. Source it from the
# repository root (gpu_grid.sh and gpu_determinism.sh do):
#
#   source benchmarks/install_wheelhouse.sh
#   source benchmarks/install_wheelhouse.sh && CHECK_STEPS=rollout_blocks bash benchmarks/gpu_check.sh
#
# 1. If the stack (distrax, minari, mujoco, gymnasium, ml_collections,
#    tensorboardX) does not import and WHEEL_DIR (default .whl) holds wheels:
#    install the wheels in WHEEL_DIR into SITE_DIR (default /tmp/site), with
#    no index and no dependency resolution, and put SITE_DIR on PYTHONPATH.
#    A node whose Python environment already has the stack is left alone.
# 2. If DATASETS_ARCHIVE (default .ds/datasets.tar.xz) exists: unpack it into
#    the Minari store, $MINARI_DATASETS_PATH (default ~/.minari/datasets,
#    Minari's own default), and export that path.
# 3. Exit (rc 3) if the stack still does not import; rc 2 if the install
#    failed, rc 4 if the archive did not unpack.
# 4. With OUT set: nvidia-smi samples the GPU every 15 s into
#    $OUT/gpu_util.csv ($sampler: its pid, for the caller to kill at the end).
# Sets t0 (the start, epoch seconds) and py (the interpreter).
# docs/benchmarks.md, "Offline install", shows how to fill WHEEL_DIR and
# DATASETS_ARCHIVE on a machine with internet access.
t0=$(date +%s)
export PYTHONUNBUFFERED=1
py=${PYTHON:-$(command -v python3 || command -v python)}
wheel_dir=${WHEEL_DIR:-.whl}
site_dir=${SITE_DIR:-/tmp/site}
datasets_archive=${DATASETS_ARCHIVE:-.ds/datasets.tar.xz}
export MINARI_DATASETS_PATH=${MINARI_DATASETS_PATH:-$HOME/.minari/datasets}
if compgen -G "$wheel_dir/*.whl" > /dev/null && ! "$py" -c "import distrax, minari, mujoco, gymnasium, ml_collections, tensorboardX" \
        2> /dev/null; then
    "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$site_dir" "$wheel_dir"/*.whl || exit 2
    export PYTHONPATH=$site_dir${PYTHONPATH:+:$PYTHONPATH}
fi
if [ -f "$datasets_archive" ]; then
    mkdir -p "$MINARI_DATASETS_PATH" && tar -C "$MINARI_DATASETS_PATH" -xJf "$datasets_archive" || exit 4
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
