"""docs/results/gpu_h200_hopper-medium_instruments.png: one task's MB2PO arm,
seed by seed (the seeds behave too differently for a mean): Q on dataset rows
(chunk mean and maximum) beside the periodic evaluations, to show whether a
seed's collapse comes with its critic running away.
Usage: python plot_seed_runs.py SWEEP_DIR TASK PNG   (SWEEP_DIR: the harness
workdir, holding TASK/seeds*/mb2po/mb2po/seed_S/metrics_{train,eval}.csv)"""
import csv, glob, os, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

sweep, task, png = sys.argv[1:4]
seed_dirs = sorted(glob.glob(os.path.join(sweep, task, "seeds*", "mb2po", "mb2po", "seed_*")))
if not seed_dirs:
    raise SystemExit(f"no MB2PO seeds for {task} under {sweep}")
fig, (ax_q, ax_s) = plt.subplots(1, 2, figsize=(11, 4))
for i, d in enumerate(seed_dirs):
    seed = d.rsplit("_", 1)[1]
    train = list(csv.DictReader(open(os.path.join(d, "metrics_train.csv"))))
    evals = list(csv.DictReader(open(os.path.join(d, "metrics_eval.csv"))))
    steps = [int(float(r["step"])) for r in train]
    ax_q.plot(steps, [float(r["q_data_mean"]) for r in train], color=f"C{i}",
              label=f"seed {seed}: mean")
    ax_q.plot(steps, [float(r["q_data_max"]) for r in train], color=f"C{i}", ls=":",
              label=f"seed {seed}: max")
    ax_s.plot([int(float(r["step"])) for r in evals],
              [float(r["normalized_score"]) for r in evals], "o-", color=f"C{i}",
              label=f"seed {seed}")
ax_q.set(title=f"{task}, MB2PO: Q on dataset rows", xlabel="MB2PO iteration (250 updates each)")
ax_s.set(title=f"{task}, MB2PO: periodic evaluations (10 episodes)",
         xlabel="MB2PO iteration", ylabel="normalised score")
ax_q.legend(fontsize=7, ncol=2)
ax_s.legend(fontsize=8)
fig.tight_layout()
fig.savefig(png, dpi=110)
print("wrote", png)
