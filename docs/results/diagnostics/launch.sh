#!/usr/bin/env bash
# Walker2d-mixed collapse diagnostics (fifth session): 40 MB2PO iterations from the CPU
# grid's seed-0 pretrained checkpoint, evaluated every 10 on evaluation seeds 20000+
# (never the harness's 10000+ final-evaluation seeds). Code: worktree /root/mb2po-runs/code-diag.
# Usage: bash launch.sh NAME [--config.FIELD=VALUE ...]   (first run trains the dynamics;
# DYN=<workdir> reuses that run's trained dynamics)
set -e
name=$1; shift
D=${DIAG_DIR:-/root/mb2po-runs/diag}
PRE=${GRID:-/root/mb2po-runs/repro-cpu}/walker2d-mixed/seed0/pretrain
extra=()
[ -n "${DYN:-}" ] && extra+=(--config.init.dynamics_workdir=$DYN)
cd ${CODE:-/root/mb2po-runs/code-diag}
nohup nice -n 1 python -m experiments.run --config=walker2d_mixed_cpu.py --config.seed=0 \
  --config.dataset=walker2d-mixed --config.init.awac_workdir=$PRE \
  --config.mb2po.num_iterations=40 --config.mb2po.eval_every=10 --config.mb2po.checkpoint_every=10 \
  --config.eval.seed=20000 --config.train.progress_bar=False "${extra[@]}" "$@" \
  --workdir=$D/$name > $D/$name.log 2>&1 &
echo "started $name pid $!"
