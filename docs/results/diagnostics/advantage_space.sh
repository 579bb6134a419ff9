#!/usr/bin/env bash
# The advantage-space diagnostics on one task and seed: 40 MB2PO iterations per arm
# from ONE pretrained AWAC workdir (the first arm trains the dynamics, the others
# reuse them), evaluations every 10 iterations on reset seeds 20000+ (never the
# harness's 10000+ final-evaluation seeds). Arms run one after another; re-running
# resumes or skips finished ones.
# Usage: bash advantage_space.sh PRETRAIN_WORKDIR OUT_DIR [CONFIG] [ARM ...]
#   CONFIG: a config file name (default walker2d_mixed_cpu.py)
#   ARM: paper | h | online | alpha20 | alpha5 | horizon5   (default: the first five, in that order)
set -euo pipefail
pre=$(realpath "$1"); out=$(realpath -m "$2"); cfg=${3:-walker2d_mixed_cpu.py}; shift $(( $# < 3 ? $# : 3 ))
arms=("$@"); [ ${#arms[@]} -eq 0 ] && arms=(paper h online alpha20 alpha5)
mkdir -p "$out"
cd "${CODE:-.}"
declare -A extra=(
  [paper]=""
  [h]="--config.awac.advantage_space=h"
  [alpha5]="--config.mb2po.alpha=5.0"
  [alpha20]="--config.mb2po.alpha=20.0"
  [online]="--config.mb2po.model=online --config.mb2po.rollout_samples=5000"
  [horizon5]="--config.mb2po.horizon=5"
)
for arm in "${arms[@]}"; do
  dyn=()
  [ "$arm" != paper ] && dyn=(--config.init.dynamics_workdir="$out/paper")
  echo "$(date -u +%FT%TZ) $arm"
  nice -n "${NICE:-5}" python -m experiments.run --config="$cfg" --config.seed="${SEED:-0}" \
    --config.init.awac_workdir="$pre" "${dyn[@]}" \
    --config.mb2po.num_iterations=40 --config.mb2po.eval_every=10 --config.mb2po.checkpoint_every=10 \
    --config.eval.seed=20000 --config.eval.num_episodes=20 --config.train.progress_bar=False \
    ${extra[$arm]} --workdir="$out/$arm" > "$out/$arm.log" 2>&1
done
