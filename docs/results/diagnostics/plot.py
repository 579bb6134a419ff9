"""docs/results/cpu_walker2d_diagnostics.png: score and critic loss per
iteration for the walker2d-mixed diagnostic runs (one seed)."""
import csv, sys
from collections import defaultdict
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

rows = list(csv.DictReader(open(sys.argv[1])))
runs = defaultdict(list)
for r in rows:
    if r["run"] == "d_default":  # d2_default repeats it to the last digit
        continue
    runs[r["run"]].append(r)
fig, axes = plt.subplots(1, 2, figsize=(13, 5.6))
for name, rs in runs.items():
    it = [int(r["iteration"]) for r in rs]
    style = "-" if "simulator" in name else "--"
    axes[0].plot(it, [float(r["normalized_score"]) for r in rs], style, marker="o", label=name)
    axes[1].plot(it, [float(r["critic_loss"]) for r in rs], style, marker="o", label=name)
axes[0].axhline(17.9, color="gray", lw=0.8, ls=":")
axes[0].set(xlabel="MB2PO iteration (250 updates each)", ylabel="normalised score (10-20 episodes, seeds 20000+)",
            title="walker2d-mixed, seed 0: score (dotted: pretrained 17.9)")
axes[1].set(xlabel="MB2PO iteration", ylabel="critic loss (iteration mean)", yscale="log",
            title="critic loss")
handles, labels = axes[0].get_legend_handles_labels()
fig.legend(handles, labels, fontsize=8, loc="lower center", ncol=3)
fig.tight_layout(rect=(0, 0.13, 1, 1))
fig.savefig(sys.argv[2], dpi=110)
