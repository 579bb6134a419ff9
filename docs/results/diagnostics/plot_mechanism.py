"""docs/results/gpu_h100_critic_mechanism_instruments.png: the fine-tuning
instruments of a harness sweep's MB2PO arms (the 3-seed critic-mechanism sweep on
one H100: the paper's MB2PO, the pretrained critic frozen, self-imitation), mean over
seeds with a min..max band, per task: Q on dataset rows and how far the policy
has moved from the pretrained one on dataset states.
Usage: python plot_mechanism.py SWEEP_DIR PNG   (SWEEP_DIR: the harness workdir,
holding TASK/seeds0-2/ARM/mb2po/seed_S/metrics_train.csv)"""
import csv, glob, os, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

ARMS = [("mb2po", "the paper's MB2PO (critic fine-tuned)", "C2"),
        ("frozen", "critic frozen (awac.critic_lr = 0)", "C3"),
        ("selfimit", "self-imitation (mb2po.alpha = 1e6)", "C4")]
METRICS = [("q_data_mean", "Q on dataset rows (mean)"),
           ("policy_shift", "policy_shift (from the pretrained policy)")]
TASKS = ["walker2d-mixed", "hopper-mixed"]

sweep, png = sys.argv[1], sys.argv[2]
fig, axes = plt.subplots(len(TASKS), len(METRICS), figsize=(11, 7.5), squeeze=False)
for row, task in enumerate(TASKS):
    for arm, label, color in ARMS:
        paths = sorted(glob.glob(os.path.join(sweep, task, "seeds*", arm, "mb2po", "seed_*",
                                              "metrics_train.csv")))
        if not paths:
            raise SystemExit(f"no metrics for {task}/{arm} under {sweep}")
        runs = [list(csv.DictReader(open(p))) for p in paths]
        n = min(len(r) for r in runs)  # iterations every seed reached
        steps = np.array([int(float(r["step"])) for r in runs[0][:n]])
        for col, (metric, title) in enumerate(METRICS):
            values = np.array([[float(r[metric]) for r in run[:n]] for run in runs])
            ax = axes[row, col]
            ax.plot(steps, values.mean(0), color=color, label=f"{label} (n={len(runs)})")
            ax.fill_between(steps, values.min(0), values.max(0), color=color, alpha=0.2)
            ax.set(title=f"{task}: {title}", xlabel="MB2PO iteration (250 updates each)")
axes[0, 0].legend(fontsize=8)
fig.tight_layout()
fig.savefig(png, dpi=110)
print("wrote", png)
