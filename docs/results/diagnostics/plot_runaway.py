"""Q on dataset rows over AWAC pretraining (chunk mean and chunk max of the
min-over-critics Q), one line per run, with the divergence guard's limit.
Usage: python plot_runaway.py OUT.png Q_LIMIT LABEL=metrics_train.csv ... (split at the
last "=", so a label may hold one)."""
import csv, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

out, limit, runs = sys.argv[1], float(sys.argv[2]), [a.rsplit("=", 1) for a in sys.argv[3:]]
fig, axes = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
for i, (label, path) in enumerate(runs):
    rows = list(csv.DictReader(open(path)))
    step = [int(r["step"]) for r in rows]
    style = dict(color=f"C{i}", label=label, lw=1.4)
    axes[0].plot(step, [float(r["q_data_mean"]) for r in rows], **style)
    axes[1].plot(step, [float(r["q_data_max"]) for r in rows], **style)
for ax, name in zip(axes, ("mean", "max")):
    ax.set_title(f"Q on dataset rows, chunk {name}", fontsize=10)
    ax.set_xlabel("AWAC updates")
    ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
axes[1].axhline(limit, color="k", ls="--", lw=1, label=f"guard limit {limit:.0f}")
axes[1].legend(fontsize=8)
fig.savefig(out, dpi=100)
