"""docs/results/gpu_h200_halfcheetah-mixed_400it_instruments.png: a long
fine-tuning's MB2PO arm against its control, seed by seed, and where the
penalised model reward's gain comes from.
Left: periodic evaluations (10 episodes) of MB2PO (solid) and the control
(dashed), both on the x-axis of updates after pretraining. Middle: per model
step, the model reward and the penalty lambda*u it loses (mean over seeds;
lambda*u = model reward - penalised reward). Right: Q on dataset rows.
Usage: python plot_long_finetune.py SWEEP_DIR TASK PNG   (SWEEP_DIR: the harness
workdir, holding TASK/seeds*/{mb2po/mb2po,awac/awac}/seed_S/metrics_*.csv)"""
import csv, glob, json, os, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

sweep, task, png = sys.argv[1:4]
unit = sorted(glob.glob(os.path.join(sweep, task, "seeds*")))
if len(unit) != 1:
    raise SystemExit(f"expected one unit of {task} under {sweep}, found {unit}")
unit = unit[0]
rows = lambda path: list(csv.DictReader(open(path)))  # noqa: E731
mb_dirs = sorted(glob.glob(os.path.join(unit, "mb2po", "mb2po", "seed_*")))
ctl_dirs = sorted(glob.glob(os.path.join(unit, "awac", "awac", "seed_*")))
cfg = json.load(open(os.path.join(unit, "mb2po", "run.json")))["config"]
updates = int(cfg["mb2po"]["updates_per_iteration"])
pretrain = int(cfg["awac"]["num_steps"])

fig, (ax_s, ax_r, ax_q) = plt.subplots(1, 3, figsize=(15, 4))
for i, (mb, ctl) in enumerate(zip(mb_dirs, ctl_dirs)):
    seed = mb.rsplit("_", 1)[1]
    ev = rows(os.path.join(mb, "metrics_eval.csv"))
    ax_s.plot([int(r["step"]) * updates for r in ev], [float(r["normalized_score"]) for r in ev],
              "o-", ms=3, color=f"C{i}", label=f"MB2PO seed {seed}")
    ev = [r for r in rows(os.path.join(ctl, "metrics_eval.csv")) if int(r["step"]) > pretrain]
    ax_s.plot([int(r["step"]) - pretrain for r in ev], [float(r["normalized_score"]) for r in ev],
              "s--", ms=3, color=f"C{i}", alpha=0.6, label=f"control seed {seed}")
train = [rows(os.path.join(d, "metrics_train.csv")) for d in mb_dirs]
n = min(len(t) for t in train)
it = np.array([int(r["step"]) for r in train[0][:n]])
col = lambda k: np.array([[float(r[k]) for r in t[:n]] for t in train])  # noqa: E731  [seeds, n]
reward, penalised = col("rollout_model_reward_mean"), col("rollout_penalized_reward_mean")
ax_r.plot(it, reward.mean(0), label="model reward r per step")
ax_r.plot(it, (reward - penalised).mean(0), label="penalty λ·u per step")
ax_r.plot(it, penalised.mean(0), label="penalised reward r − λ·u")
q = col("q_data_mean")
for i in range(len(train)):
    ax_q.plot(it, q[i], color=f"C{i}", label=f"seed {mb_dirs[i].rsplit('_', 1)[1]}")
ax_s.set(title=f"{task}: periodic evaluations", xlabel="updates after pretraining",
         ylabel="normalised score")
ax_r.set(title="MB2PO rollouts (mean over seeds)", xlabel="MB2PO iteration")
ax_q.set(title="MB2PO: Q on dataset rows (chunk mean)", xlabel="MB2PO iteration")
ax_s.legend(fontsize=7, ncol=2)
ax_r.legend(fontsize=8)
ax_q.legend(fontsize=8)
fig.tight_layout()
fig.savefig(png, dpi=110)
print("wrote", png)
