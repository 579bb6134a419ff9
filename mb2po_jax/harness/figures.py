"""The report's pictures: each task's evaluation curves, and the summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mb2po_jax.harness.names import LABELS, PRETRAIN, TREATMENT
from mb2po_jax.harness.paper_scores import PAPER_TABLE_1
from mb2po_jax.harness.records import finished_scores


def plot_task(records: list[dict[str, Any]], task: str, out: Path,
              labels: dict[str, str] = LABELS) -> Path | None:
    """Both arms' evaluation curves (mean and min-max band over seeds) on one
    axis of gradient updates, after the shared pretraining curve."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    by_arm: dict[str, list[dict[int, float]]] = {}
    for record in records:
        if record["task"] == task and record.get("curve"):
            by_arm.setdefault(record["arm"], []).append(dict(record["curve"]))
    if not by_arm:
        return None
    # The legend goes below the axes (a row per two arms): inside, it hid
    # the curves' dips wherever matplotlib put it.
    fig = Figure(figsize=(7.0, 4.2 + 0.25 * ((len(by_arm) + 1) // 2)), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    pretrain_end = None
    for arm in [PRETRAIN, *(a for a in by_arm if a != PRETRAIN)]:
        curves = by_arm.get(arm)
        if not curves:
            continue
        xs = sorted(set().union(*curves))
        if arm != PRETRAIN and pretrain_end is not None:
            xs = [pretrain_end[0], *xs]
        mean, low, high, n = [], [], [], []
        for x in xs:
            values = [c[x] for c in curves if x in c]
            if arm != PRETRAIN and pretrain_end is not None and x == pretrain_end[0]:
                values = pretrain_end[1]
            mean.append(float(np.mean(values)))
            low.append(float(np.min(values)))
            high.append(float(np.max(values)))
            n.append(len(values))
        line, = ax.plot(xs, mean, marker="o", markersize=3,
                        label=f"{labels.get(arm, arm)} (n={max(n)})")
        ax.fill_between(xs, low, high, color=line.get_color(), alpha=0.2)
        finals = list(finished_scores(records, task, arm).values())
        if finals:  # the final evaluation (more episodes), mean ± std over seeds
            ax.errorbar([xs[-1]], [np.mean(finals)], yerr=[np.std(finals)], fmt="D",
                        color=line.get_color(), markersize=6, capsize=4)
        if arm == PRETRAIN:
            last = xs[-1]
            pretrain_end = (last, [c[last] for c in curves if last in c])
            ax.axvline(last, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("gradient updates")
    ax.set_ylabel("normalised score (periodic evaluations)")
    ax.set_title(f"{task}: mean over seeds, band = min..max; ◆ final evaluation ± std",
                 fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, fontsize=8,
              frameon=False)
    fig.tight_layout()
    fig.savefig(out, format="png")
    return out


def plot_summary(records: list[dict[str, Any]], out: Path, tasks: list[str],
                 labels: dict[str, str] = LABELS) -> Path | None:
    """One picture of the table: per task, each arm's final scores (a bar
    at the mean over seeds, a dot per seed), with the paper's Table 1 AWAC
    and AWAC+MB2PO scores as dashed lines beside."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    tasks = [t for t in tasks if any(r["task"] == t for r in records)]
    arms = [PRETRAIN, *dict.fromkeys(r["arm"] for r in records if r["arm"] != PRETRAIN)]
    if not any(finished_scores(records, task, arm) for task in tasks for arm in arms):
        return None  # no final score yet: nothing to draw
    fig = Figure(figsize=(max(6.5, 2.6 * len(tasks)), 4.4), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(tasks), squeeze=False)[0]
    colors = {arm: f"C{i}" for i, arm in enumerate(arms)}
    for ax, task in zip(axes, tasks):
        for x, arm in enumerate(arms):
            finals = finished_scores(records, task, arm)
            if finals:
                values = list(finals.values())
                ax.bar(x, np.mean(values), color=colors[arm], alpha=0.45, width=0.7)
                jitter = np.linspace(-0.15, 0.15, len(values)) if len(values) > 1 else [0.0]
                ax.plot(x + np.asarray(jitter), values, "o", color=colors[arm], markersize=4)
            else:
                ax.text(x, 0.5, "n/a", ha="center", va="bottom", fontsize=8, color="grey")
        paper = PAPER_TABLE_1.get(task)
        if paper:
            ax.axhline(paper[0][0], color=colors[PRETRAIN], linestyle="--", linewidth=1)
            if TREATMENT in colors:
                ax.axhline(paper[1][0], color=colors[TREATMENT], linestyle="--", linewidth=1)
        ax.set_xlim(-0.6, len(arms) - 0.4)
        ax.set_xticks(range(len(arms)))
        ax.set_xticklabels([labels.get(a, a).replace(" (", "\n(") for a in arms], fontsize=7,
                           rotation=30, ha="right")
        ax.set_title(task, fontsize=10)
        ax.grid(True, axis="y", alpha=0.3)
    axes[0].set_ylabel("normalised score, final evaluation")
    fig.suptitle("Final scores: bar = mean over seeds, dots = seeds\ndashed = paper Table 1 "
                 "(AWAC, AWAC+MB2PO; D4RL data, paper scale)", fontsize=9)
    fig.savefig(out, format="png")
    return out
