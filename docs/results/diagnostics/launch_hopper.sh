#!/usr/bin/env bash
# What produced ../cpu_hopper_diagnostics.csv: 40 MB2PO iterations from the CPU grid's
# seed-0 pretrained checkpoint and trained dynamics, evaluated every 10 on seeds 20000+.
# Run it from a checkout of the commit the row names (or set CODE to one).
# Usage: [CODE=<checkout>] bash launch_hopper.sh NAME [--config.FIELD=VALUE ...]
# DIAG_DIR (default runs/diag) holds the runs, GRID (default runs/repro-cpu) the grid's
# cells; relative paths are taken from the directory the script is started in.
set -e
name=$1; shift
D=$(realpath -m "${DIAG_DIR:-runs/diag}"); mkdir -p "$D"
R=$(realpath -m "${GRID:-runs/repro-cpu}")/hopper-mixed/seed0
cd "${CODE:-.}"
nohup nice -n 1 python -m experiments.run --config=hopper_mixed_cpu.py --config.seed=0 \
  --config.dataset=hopper-mixed --config.init.awac_workdir=$R/pretrain \
  --config.init.dynamics_workdir=$R/mb2po \
  --config.mb2po.num_iterations=40 --config.mb2po.eval_every=10 --config.mb2po.checkpoint_every=10 \
  --config.eval.seed=20000 --config.eval.num_episodes=20 --config.train.progress_bar=False "$@" \
  --workdir=$D/$name > $D/$name.log 2>&1 &
echo "started $name pid $!"
