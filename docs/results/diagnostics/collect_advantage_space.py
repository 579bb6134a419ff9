"""Rows and figure of the advantage-space diagnostics (advantage_space.sh).

    python collect_advantage_space.py PRETRAIN_WORKDIR ARMS_DIR OUT_PREFIX [COMMIT] [HARDWARE]

writes OUT_PREFIX_pretraining.csv (the AWAC pretraining's weight instruments
in both spaces, every 5k updates), OUT_PREFIX.csv (each arm's evaluations
joined with the training metrics of the same iteration) and OUT_PREFIX.png.
"""
import csv
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

PRE_COLUMNS = ["step", "q_data_mean", "advantage_std_return", "advantage_std_h",
               "weight_ess_return", "weight_ess_h", "weight_clip_fraction_return",
               "weight_clip_fraction_h", "weight_q05", "weight_q50", "weight_q95"]
ARM_TRAIN = ["q_real_mean", "q_model_mean", "critic_loss", "policy_shift", "log_prob_mean",
             "advantage_std", "weight_ess", "weight_clip_fraction", "weight_q05", "weight_q95",
             "weight_real_mean", "weight_model_mean", "rollout_model_reward_mean",
             "rollout_termination_rate"]
LABELS = {"paper": "paper (return space, alpha 1)", "h": "advantage_space=h",
          "alpha5": "return space, alpha 5", "alpha20": "return space, alpha 20",
          "online": "online control (real episodes)", "horizon5": "model rollouts of h = 5"}


def rows(path: Path):
    return list(csv.DictReader(open(path))) if path.is_file() else []


def main(pre: str, arms_dir: str, prefix: str, commit: str = "", hardware: str = "") -> None:
    pre, arms_dir = Path(pre), Path(arms_dir)
    meta = json.loads((pre / "run.json").read_text())
    provenance = dict(dataset=meta["dataset"]["fingerprint"][:12], commit=commit,
                      hardware=hardware, seed=meta["config"]["seed"])
    with open(f"{prefix}_pretraining.csv", "w", newline="") as f:
        out = csv.DictWriter(f, PRE_COLUMNS + list(provenance), lineterminator="\n")
        out.writeheader()
        for r in rows(pre / "awac" / "metrics_train.csv"):
            if int(r["step"]) % 5000 == 0:
                out.writerow({**{k: r[k] for k in PRE_COLUMNS}, **provenance})
    pretrained = rows(pre / "awac" / "metrics_eval.csv")[-1]
    table = []
    for arm in LABELS:
        train = {r["step"]: r for r in rows(arms_dir / arm / "mb2po" / "metrics_train.csv")}
        if not train:
            continue
        table.append({"arm": arm, "iteration": 0,
                      "normalized_score": pretrained["normalized_score"], **provenance})
        for ev in rows(arms_dir / arm / "mb2po" / "metrics_eval.csv"):
            tr = train.get(ev["step"], {})
            table.append({"arm": arm, "iteration": ev["step"],
                          "normalized_score": ev["normalized_score"],
                          **{k: tr.get(k, "") for k in ARM_TRAIN}, **provenance})
    with open(f"{prefix}.csv", "w", newline="") as f:
        out = csv.DictWriter(f, ["arm", "iteration", "normalized_score"] + ARM_TRAIN
                             + list(provenance), lineterminator="\n")
        out.writeheader()
        out.writerows(table)

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.8))
    for arm, label in LABELS.items():
        rs = [r for r in table if r["arm"] == arm]
        if len(rs) < 2:
            continue
        it = [int(r["iteration"]) for r in rs]
        axes[0].plot(it, [float(r["normalized_score"]) for r in rs], marker="o", label=label)
        later = [r for r in rs if r["iteration"] != 0 and r["weight_ess"] != ""]
        axes[1].plot([int(r["iteration"]) for r in later],
                     [float(r["weight_ess"]) for r in later], marker="o", label=label)
        axes[2].plot([int(r["iteration"]) for r in later],
                     [float(r["weight_real_mean"]) for r in later], marker="o", label=label)
    axes[0].set(xlabel="MB2PO iteration (250 updates each)",
                ylabel="normalised score (20 episodes, seeds 20000+)",
                title="score (iteration 0: pretrained)")
    axes[1].set(xlabel="MB2PO iteration", ylabel="effective sample size / batch",
                title="AWR weights: effective sample size", ylim=(0, 1.05))
    axes[2].set(xlabel="MB2PO iteration", ylabel="mean weight", yscale="log",
                title="mean AWR weight of dataset rows")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=9, loc="lower center", ncol=len(labels))
    fig.suptitle(f"{meta['config']['dataset']}, seed {provenance['seed']}, "
                 f"dataset {provenance['dataset']}",
                 fontsize=11)
    fig.tight_layout(rect=(0, 0.08, 1, 0.95))
    fig.savefig(f"{prefix}.png", dpi=110)


if __name__ == "__main__":
    main(*sys.argv[1:])
