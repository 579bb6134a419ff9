#!/usr/bin/env bash
# Are GPU runs bit-reproducible? Four copies of the same run side by side on
# one GPU (the same config, seed and data), two with XLA's deterministic-ops
# flag and two without, each stopped after RUN_S seconds; then every pair's
# training metrics are compared at the steps both reached. Shows whether two
# GPU runs of one cell can differ because XLA's GPU reductions and autotuning
# are not deterministic run to run, and what the deterministic-ops flag costs
# in updates per second.
#
#   OUT=... RUN_S=150 bash benchmarks/gpu_determinism.sh [experiments.run flags]
#   (default flags: --config=experiments/configs/hopper_mixed_cpu.py --config.seed=0)
#
# Prints one JSON line per pair (max |difference| over every metric column,
# the first step that differs); with OUT set the four metrics CSVs land there.
# The same pair structure runs on the CPU (where the flag has no effect).
# Sources benchmarks/install_wheelhouse.sh first: on a GPU node without
# internet access it installs the wheels in WHEEL_DIR and unpacks the
# datasets archive; where the stack is installed it only checks the imports.
set -uo pipefail
cd "$(dirname "$0")/.."
source benchmarks/install_wheelhouse.sh
export XLA_PYTHON_CLIENT_PREALLOCATE=false
flags=("$@")
[ ${#flags[@]} -eq 0 ] && flags=(--config=experiments/configs/hopper_mixed_cpu.py --config.seed=0)
root=runs/determinism
rm -rf "$root" && mkdir -p "$root"
names=(det_a det_b plain_a plain_b)  # det_*: with XLA's deterministic GPU ops
pids=()
for name in "${names[@]}"; do
    xla=${XLA_FLAGS:-}
    [[ $name == det_* ]] && xla="$xla --xla_gpu_deterministic_ops=true"
    XLA_FLAGS=$xla timeout -s KILL "${RUN_S:-150}" "$py" -m experiments.run "${flags[@]}" \
        --config.train.progress_bar=False --workdir="$root/$name" > "$root/$name.log" 2>&1 &
    pids+=($!)
done
wait "${pids[@]}"
for name in "${names[@]}"; do
    echo "== $name: $(grep -c "" "$root/$name.log") log lines; last:"; tail -n 2 "$root/$name.log"
    [ -n "${OUT:-}" ] && cp "$root/$name.log" "$OUT/"
done
"$py" - "$root" "${OUT:-}" "${names[@]}" <<'PY'
import csv, itertools, json, pathlib, shutil, sys
root, out, names = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
runs = {}
for name in names:
    found = sorted((root / name).rglob("metrics_train.csv"))
    # the first phase's metrics (AWAC pretraining): the file every run reaches
    path = next((p for p in found if "awac" in p.parts), found[0] if found else None)
    if path is None:
        print(json.dumps({"run": name, "error": "no metrics_train.csv", "log": str(root / f"{name}.log")}))
        continue
    rows = {r["step"]: r for r in csv.DictReader(open(path))}
    runs[name] = rows
    if out:
        shutil.copy(path, pathlib.Path(out) / f"{name}_metrics_train.csv")
for a, b in itertools.combinations(runs, 2):
    common = sorted(set(runs[a]) & set(runs[b]), key=int)
    worst, first = 0.0, None
    for step in common:
        diff = max(abs(float(runs[a][step][k]) - float(runs[b][step][k]))
                   for k in runs[a][step] if k != "step")
        if diff > 0 and first is None:
            first = int(step)
        worst = max(worst, diff)
    print(json.dumps({"pair": [a, b], "common_steps": len(common),
                      "last_common_step": int(common[-1]) if common else None,
                      "max_abs_diff": worst, "first_differing_step": first}))
PY
[ -n "${sampler:-}" ] && kill "$sampler"
echo "{\"elapsed_s\": $(( $(date +%s) - t0 ))}"
