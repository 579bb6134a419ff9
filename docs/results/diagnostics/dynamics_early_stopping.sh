#!/usr/bin/env bash
# What produced ../cpu_dynamics_early_stopping_table.md: dynamics early stopping
# ablated at the model level (dynamics phase only; MOPO with one 1-update epoch
# after it), 3 vmapped seeds, CPU scale. Runs land in $DIAG_DIR/dynes (default
# runs/diag/dynes, relative to the repository root); summarise them with
# dynamics_early_stopping.py.
cd "$(dirname "$0")/../../.."
D=$(realpath -m "${DIAG_DIR:-runs/diag}")/dynes; mkdir -p "$D"
for task in hopper halfcheetah; do
  for es in False True; do
    d=$D/${task}_es${es}
    python -m experiments.run --config=experiments/configs/${task}_mixed_cpu.py \
      --config.num_seeds=3 --config.seed=0 --config.algorithm=mopo \
      --config.mopo.num_iterations=1 --config.mopo.updates_per_iteration=1 \
      --config.mopo.eval_every=1 --config.mopo.checkpoint_every=1 --config.eval.num_episodes=1 \
      --config.dynamics.early_stopping=$es --config.train.progress_bar=False \
      --workdir=$d > $d.log 2>&1
    echo "$task es=$es rc=$? $(date)"
  done
done
