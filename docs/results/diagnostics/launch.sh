#!/usr/bin/env bash
# What produced the walker2d-mixed rows of ../cpu_walker2d_diagnostics.csv: 40 MB2PO
# iterations from the CPU grid's seed-0 pretrained checkpoint, evaluated every 10 on
# evaluation seeds 20000+ (never the harness's 10000+ final-evaluation seeds).
# Run it from a checkout of the commit the row names (or set CODE to one).
# Usage: bash launch.sh NAME [--config.FIELD=VALUE ...]   (first run trains the dynamics;
# DYN=<workdir> reuses that run's trained dynamics)
# DIAG_DIR (default runs/diag) holds the runs, GRID (default runs/repro-cpu) the grid's
# cells; relative paths are taken from the directory the script is started in.
set -e
name=$1; shift
D=$(realpath -m "${DIAG_DIR:-runs/diag}"); mkdir -p "$D"
PRE=$(realpath -m "${GRID:-runs/repro-cpu}")/walker2d-mixed/seed0/pretrain
extra=()
[ -n "${DYN:-}" ] && extra+=(--config.init.dynamics_workdir=$(realpath -m "$DYN"))
cd "${CODE:-.}"
nohup nice -n 1 python -m experiments.run --config=walker2d_mixed_cpu.py --config.seed=0 \
  --config.dataset=walker2d-mixed --config.init.awac_workdir=$PRE \
  --config.mb2po.num_iterations=40 --config.mb2po.eval_every=10 --config.mb2po.checkpoint_every=10 \
  --config.eval.seed=20000 --config.train.progress_bar=False "${extra[@]}" "$@" \
  --workdir=$D/$name > $D/$name.log 2>&1 &
echo "started $name pid $!"
