"""docs/results/cpu_critic_lever.png: walker2d-mixed and hopper-mixed side by side
(one seed each): the loop on dataset rows only, the paper's MB2PO, MuJoCo as the
model, self-imitation (weights about 1) and the pretrained critic frozen.
Usage: python plot_critic.py WALKER_CSV HOPPER_CSV PNG"""
import csv, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

PICK = [  # (run-name prefix in each CSV, legend, style)
    (("d_omega1", "h_omega1"), "ω = 1: dataset rows only", dict(color="gray", ls=":")),
    (("d2_default", "h_default"), "the paper's MB2PO (learned model)", dict(color="C0")),
    (("s_sim (", "h_sim"), "MuJoCo as the model", dict(color="C1")),
    (("bc_self", "h_bc_self"), "self-imitation (α = 1e6: weights ≈ 1)", dict(color="C2", ls="--")),
    (("frozen_critic", "h_frozen_critic"), "critic frozen (awac.critic_lr = 0)", dict(color="C3", ls="--")),
]
fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
for ax, path, col, title, pre in ((axes[0], sys.argv[1], 0, "walker2d-mixed", 17.9),
                                  (axes[1], sys.argv[2], 1, "hopper-mixed", 10.9)):
    rows = list(csv.DictReader(open(path)))
    for prefixes, label, style in PICK:
        rs = [r for r in rows if r["run"].startswith(prefixes[col]) and int(r["iteration"]) <= 40]
        ax.plot([0] + [int(r["iteration"]) for r in rs], [pre] + [float(r["normalized_score"]) for r in rs],
                marker="o", label=label, **style)
    ax.axhline(pre, color="black", lw=0.6)
    ax.set(title=f"{title}, seed 0 (pretrained {pre})", xlabel="MB2PO iteration (250 updates each)",
           ylabel="normalised score (10-20 episodes, seeds 20000+)")
handles, labels = axes[0].get_legend_handles_labels()
fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=9)
fig.tight_layout(rect=(0, 0.1, 1, 1))
fig.savefig(sys.argv[3], dpi=110)
