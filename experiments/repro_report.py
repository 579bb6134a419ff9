"""The reproduction harness's report: ``results.csv``, ``table.md``, ``<task>.png``.

Everything is rebuilt from the sweep directory alone (each cell's
``cell.json``, ``run.json`` and ``<phase>/metrics_eval.csv``), so shards,
re-runs and machines that share a directory merge by simply writing the
report again (``python -m experiments.reproduce --report_only``).

Two scores per cell, named apart: ``final`` is the cell's last policy
evaluated with the harness's ``final_episodes`` episodes (default 50);
``best_periodic`` is the best of the run's periodic evaluations
(``eval.num_episodes`` episodes each), an optimistic statistic: a maximum over
noisy evaluations, reported because papers often report it.

The lift is MB2PO's final score minus the control's, paired by seed (both
arms start from the same pretrained checkpoint); its 95 % interval is a
percentile bootstrap over seeds of the mean paired difference. A sweep's
variants (MB2PO arms with overrides, ``--variant``) and the ``mopo`` arm (MOPO
from scratch) get the same lift over the control in a table of their own.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from mb2po_jax.metrics_logger import read_series

SWEEP_FILE, RESULTS_FILE, TABLE_FILE = "sweep.json", "results.csv", "table.md"
CELL_FILE = "cell.json"
CONTROL, TREATMENT, PRETRAIN, MOPO = "awac", "mb2po", "pretrain", "mopo"
LABELS = {PRETRAIN: "AWAC pretrained", CONTROL: "AWAC continued (control)",
          TREATMENT: "AWAC+MB2PO", MOPO: "MOPO (from scratch)"}
# Paper Table 1's MOPO column (mean, std; from MOPO's paper), where it has one.
PAPER_MOPO = {
    "halfcheetah-random": (31.9, 2.8), "hopper-random": (13.3, 1.6),
    "walker2d-random": (13.0, 2.6), "halfcheetah-medium": (40.2, 2.7),
    "hopper-medium": (26.5, 3.7), "walker2d-medium": (14.0, 10.1),
    "halfcheetah-medium-expert": (57.9, 24.8), "hopper-medium-expert": (51.7, 42.9),
    "walker2d-medium-expert": (55.0, 19.1), "halfcheetah-mixed": (54.0, 2.6),
    "hopper-mixed": (92.5, 6.3), "walker2d-mixed": (42.7, 8.3),
}
# Paper Table 1 (AWAC, AWAC+MB2PO), D4RL datasets, 4 seeds: mean, std.
PAPER_TABLE_1 = {
    "halfcheetah-random": ((18.8, 1.5), (25.5, 1.1)),
    "hopper-random": ((11.2, 0.1), (11.4, 0.1)),
    "walker2d-random": ((1.4, 3.0), (0.2, 2.3)),
    "halfcheetah-medium": ((40.9, 0.3), (40.7, 0.2)),
    "hopper-medium": ((35.0, 3.9), (55.7, 14.6)),
    "walker2d-medium": ((74.3, 1.6), (80.4, 0.9)),
    "halfcheetah-expert": ((106.7, 0.6), (105.1, 1.3)),
    "hopper-expert": ((108.1, 3.8), (105.5, 10.5)),
    "walker2d-expert": ((100.5, 12.3), (107.4, 1.1)),
    "halfcheetah-medium-expert": ((104.7, 1.6), (104.8, 1.1)),
    "hopper-medium-expert": ((75.1, 15.9), (79.1, 13.5)),
    "walker2d-medium-expert": ((81.8, 18.9), (86.2, 35.5)),
    "halfcheetah-mixed": ((42.3, 0.3), (55.6, 0.6)),
    "hopper-mixed": ((30.1, 0.9), (72.6, 25.5)),
    "walker2d-mixed": ((16.9, 1.7), (61.9, 8.2)),
}
COLUMNS = (
    "task", "seed", "arm", "scale", "status", "final_score", "final_score_std", "final_episodes",
    "best_periodic_score", "best_periodic_updates", "periodic_episodes", "pretrain_updates",
    "finetune_updates", "total_updates", "batch_size", "wall_seconds", "dataset", "dataset_fingerprint",
    "num_transitions", "commit", "message", "seeds_in_program", "dataset_episode_score",
    "behaviour_score",
)
# How results.csv's columns read back (merging CSVs from several sweeps).
_INT_COLUMNS = {"seed", "final_episodes", "best_periodic_updates", "periodic_episodes",
                "pretrain_updates", "finetune_updates", "total_updates", "batch_size",
                "num_transitions", "seeds_in_program"}
_FLOAT_COLUMNS = {"final_score", "final_score_std", "best_periodic_score", "wall_seconds",
                  "dataset_episode_score", "behaviour_score"}


def collect(root: Path) -> list[dict[str, Any]]:
    """Every cell record under ``root`` with its periodic evaluations attached."""
    records = []
    for path in sorted(root.glob(f"*/seed*/*/{CELL_FILE}")):
        cell = json.loads(path.read_text())
        # A cell of several vmapped seeds is one row per seed.
        for record in ([{**cell, **one} for one in cell["per_seed"]] if "per_seed" in cell
                       else [cell]):
            record.pop("per_seed", None)
            record["curve"] = eval_curve(path.parent, record) if record["status"] == "done" else []
            if record["curve"]:
                best = max(record["curve"], key=lambda point: point[1])
                record["best_periodic_updates"], record["best_periodic_score"] = best
            records.append(record)
    return records


def eval_curve(cell_dir: Path, record: dict[str, Any]) -> list[tuple[int, float]]:
    """The cell's periodic evaluations as (gradient updates since the start
    of pretraining, normalised score). A phase counting iterations is mapped
    through its updates per iteration, after the pretraining's updates."""
    phase = record.get("curve_phase", "awac")
    path = cell_dir / phase / record.get("curve_subdir", "") / "metrics_eval.csv"
    if not path.is_file():
        return []
    steps, scores = read_series(path, "normalized_score")
    per_unit, offset = record.get("updates_per_unit", 1), record.get("curve_offset", 0)
    return [(int(offset + step * per_unit), score) for step, score in zip(steps, scores)]


def write_csv(records: Iterable[dict[str, Any]], path: Path) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(COLUMNS), extrasaction="ignore", restval="")
        writer.writeheader()
        for record in records:
            writer.writerow({k: _fmt_cell(record.get(k)) for k in COLUMNS})


def _fmt_cell(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "" if value is None else value


def bootstrap_interval(differences: list[float], *, num_resamples: int = 10_000,
                       seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``differences``
    (resampling seeds with replacement); (nan, nan) for fewer than 2."""
    values = np.asarray(differences, dtype=np.float64)
    if values.size < 2:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, (num_resamples, values.size))].mean(axis=1)
    tail = (1.0 - level) / 2.0
    return float(np.quantile(means, tail)), float(np.quantile(means, 1.0 - tail))


def _mean_std(values: list[float]) -> str:
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{np.mean(values):.1f} ± {np.std(values, ddof=1):.1f}"


def _done(records, task, arm, key="final_score") -> dict[int, float]:
    return {r["seed"]: r[key] for r in records if r["task"] == task and r["arm"] == arm
            and r["status"] == "done" and r.get(key) is not None}


def lift(records: list[dict[str, Any]], task: str, key: str = "final_score",
         arm: str = TREATMENT):
    """(mean paired difference ``arm`` (MB2PO) - control, interval, seeds paired)."""
    control, treatment = _done(records, task, CONTROL, key), _done(records, task, arm, key)
    seeds = sorted(set(control) & set(treatment))
    diffs = [treatment[s] - control[s] for s in seeds]
    mean = float(np.mean(diffs)) if diffs else math.nan
    return mean, bootstrap_interval(diffs), seeds


def variant_label(name: str, fields: dict[str, Any]) -> str:
    """The label of a variant arm (MB2PO with ``fields`` overridden)."""
    return f"AWAC+MB2PO, {name} ({', '.join(f'{k}={v}' for k, v in fields.items())})"


def arm_labels(sweep: dict[str, Any]) -> dict[str, str]:
    """Legend and table labels: the built-in arms' and the sweep's variants'."""
    return {**LABELS, **{name: variant_label(name, fields)
                         for name, fields in sweep.get("variants", {}).items()}}


def _lift_cells(records, task: str, arm: str) -> tuple[str, str, str, str]:
    """A lift row's cells for ``arm`` - control: seeds paired, mean, interval,
    per-seed differences."""
    mean, (low, high), seeds = lift(records, task, arm=arm)
    control, treatment = _done(records, task, CONTROL), _done(records, task, arm)
    per_seed = ", ".join(f"{treatment[s] - control[s]:+.1f}" for s in seeds)
    interval = "n/a (< 2 seeds)" if math.isnan(low) else f"[{low:+.1f}, {high:+.1f}]"
    return str(len(seeds)), "n/a" if math.isnan(mean) else f"{mean:+.1f}", interval, per_seed


def table_markdown(records: list[dict[str, Any]], sweep: dict[str, Any]) -> str:
    labels = arm_labels(sweep)
    tasks = list(dict.fromkeys([*sweep.get("tasks", []), *(r["task"] for r in records)]))
    arms = [PRETRAIN, *dict.fromkeys([*sweep.get("arms", []), *(r["arm"] for r in records
                                                                 if r["arm"] != PRETRAIN)])]
    final_eps = sorted({r["final_episodes"] for r in records if r.get("final_episodes")})
    periodic_eps = sorted({r["periodic_episodes"] for r in records if r.get("periodic_episodes")})
    lines = [
        f"# Reproduction: scale `{sweep.get('scale', '?')}`",
        "",
        f"Normalised scores (D4RL references), mean ± std over seeds. **final**: the last "
        f"policy, {'/'.join(map(str, final_eps)) or '?'} evaluation episodes; **best periodic**: "
        f"the best of the run's periodic evaluations ({'/'.join(map(str, periodic_eps)) or '?'} "
        f"episodes each; optimistic). The control continues AWAC for as many updates as MB2PO "
        f"makes, from the same pretrained checkpoint. Paper: Table 1 (D4RL data, paper scale; "
        f"not comparable with other data or scales).",
        "",
        # A merged table's overrides are its sources' (their own table.md).
        (f"Merged from other sweeps' `results.csv` (each task's rows from one file, so "
         f"every pair shares its pretraining): "
         + "; ".join(f"`{path}`: {', '.join(tasks)}" for path, tasks in sweep["sources"])
         if sweep.get("sources") else
         f"Overrides: `{json.dumps(sweep.get('overrides', {}))}`"
         + (f"; datasets: `{json.dumps(sweep['datasets'])}`" if sweep.get("datasets") else "")),
        "",
        "| task | arm | seeds | final | best periodic | other cells | paper |",
        "|---|---|---|---|---|---|---|",
    ]
    for task in tasks:
        paper = PAPER_TABLE_1.get(task)
        for arm in arms:
            cells = [r for r in records if r["task"] == task and r["arm"] == arm]
            final = _done(records, task, arm)
            best = _done(records, task, arm, "best_periodic_score")
            other = ", ".join(f"seed {r['seed']} {r['status']}" for r in cells
                              if r["status"] != "done") or ""
            paper_cell = ""
            if paper and arm == PRETRAIN:
                paper_cell = f"AWAC {paper[0][0]} ± {paper[0][1]}"
            elif paper and arm == TREATMENT:
                paper_cell = f"AWAC+MB2PO {paper[1][0]} ± {paper[1][1]}"
            elif arm == MOPO and task in PAPER_MOPO:
                paper_cell = f"MOPO {PAPER_MOPO[task][0]} ± {PAPER_MOPO[task][1]}"
            lines.append(f"| {task} | {labels.get(arm, arm)} | {len(final)} | {_mean_std(list(final.values()))} "
                         f"| {_mean_std(list(best.values()))} | {other} | {paper_cell} |")
    lines += ["", "## Lift: MB2PO − control (final scores, paired by seed)", "",
              "| task | seeds paired | lift | 95 % bootstrap interval | per seed | dataset episodes (mean) | behaviour policy |",
              "|---|---|---|---|---|---|---|"]
    for task in tasks:
        paired, mean, interval, per_seed = _lift_cells(records, task, TREATMENT)
        pre = [r for r in records if r["task"] == task and r["arm"] == PRETRAIN
               and r.get("dataset_episode_score") is not None]
        data_score = f"{pre[0]['dataset_episode_score']:.1f}" if pre else "n/a"
        behaviour = (f"{pre[0]['behaviour_score']:.1f}" if pre and pre[0].get("behaviour_score")
                     is not None else "n/a")
        lines.append(f"| {task} | {paired} | {mean} | {interval} | {per_seed} | {data_score} "
                     f"| {behaviour} |")
    # Every other arm (variants, MOPO) against the same control.
    variants = [arm for arm in arms if arm not in (PRETRAIN, CONTROL, TREATMENT)]
    if variants:
        lines += ["", "## Lift of each variant over the control (final scores, paired by seed)",
                  "", "Beside MB2PO's lift above: same control; variants start from the same "
                  "pretrained checkpoints, MOPO from scratch.", "",
                  "| task | variant | seeds paired | lift | 95 % bootstrap interval | per seed |",
                  "|---|---|---|---|---|---|"]
        for task in tasks:
            for arm in variants:
                lines.append(f"| {task} | {labels[arm]} | "
                             + " | ".join(_lift_cells(records, task, arm)) + " |")
    commits = sorted({r["commit"] for r in records if r.get("commit")})
    fingerprints = sorted({(r["task"], r["dataset_fingerprint"][:12]) for r in records
                           if r.get("dataset_fingerprint")})
    lines += ["", f"Commits: {', '.join(commits) or 'n/a'}. Dataset fingerprints: "
              + (", ".join(f"{t} {f}" for t, f in fingerprints) or "n/a") + "."]
    return "\n".join(lines) + "\n"


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
        finals = list(_done(records, task, arm).values())
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


SUMMARY_FILE = "summary.png"


def plot_summary(records: list[dict[str, Any]], out: Path, tasks: list[str],
                 labels: dict[str, str] = LABELS) -> Path | None:
    """One picture of the table: per task, each arm's final scores (a bar
    at the mean over seeds, a dot per seed), with the paper's Table 1 AWAC
    and AWAC+MB2PO scores as dashed lines beside."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    tasks = [t for t in tasks if any(r["task"] == t for r in records)]
    arms = [PRETRAIN, *dict.fromkeys(r["arm"] for r in records if r["arm"] != PRETRAIN)]
    if not any(_done(records, task, arm) for task in tasks for arm in arms):
        return None  # no final score yet: nothing to draw
    fig = Figure(figsize=(max(6.5, 2.6 * len(tasks)), 4.4), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(tasks), squeeze=False)[0]
    colors = {arm: f"C{i}" for i, arm in enumerate(arms)}
    for ax, task in zip(axes, tasks):
        for x, arm in enumerate(arms):
            finals = _done(records, task, arm)
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


def write_report(root: Path) -> Path:
    """Writes results.csv, table.md and one PNG per task; returns table.md."""
    root = Path(root)
    sweep_path = root / SWEEP_FILE
    if not sweep_path.is_file():
        raise FileNotFoundError(f"{root} is not a sweep directory (no {SWEEP_FILE}); run "
                                f"python -m experiments.reproduce --workdir={root} first.")
    sweep = json.loads(sweep_path.read_text())
    records = [{**record, "scale": sweep.get("scale")} for record in collect(root)]
    order = {arm: i for i, arm in enumerate([PRETRAIN, CONTROL, TREATMENT])}
    records.sort(key=lambda r: (r["task"], r["seed"], order.get(r["arm"], 99), r["arm"]))
    write_csv(records, root / RESULTS_FILE)
    (root / TABLE_FILE).write_text(table_markdown(records, sweep))
    tasks = list(dict.fromkeys([*sweep.get("tasks", []), *(r["task"] for r in records)]))
    for task in dict.fromkeys(r["task"] for r in records):
        plot_task(records, task, root / f"{task}.png", arm_labels(sweep))
    plot_summary(records, root / SUMMARY_FILE, tasks, arm_labels(sweep))
    return root / TABLE_FILE


def read_results_csv(path: Path) -> list[dict[str, Any]]:
    """A ``results.csv``'s rows as records (numbers parsed, empty cells None)."""
    def parse(key: str, text: str) -> Any:
        if text == "":
            return None
        if key in _INT_COLUMNS:
            return int(float(text))
        return float(text) if key in _FLOAT_COLUMNS else text
    with Path(path).open(newline="") as f:
        return [{key: parse(key, text or "") for key, text in row.items()}
                for row in csv.DictReader(f)]


def merge_results(sources: list[tuple[Path, list[str] | None]],
                  arms: Iterable[str]) -> tuple[list[dict[str, Any]], list[tuple[str, list[str]]]]:
    """The rows of several sweeps' ``results.csv`` files, for one table.

    ``sources``: (path, tasks or None for all of the file's tasks). Each task
    is taken whole from ONE file: the lift pairs a control with an MB2PO arm
    of the same pretraining, which another sweep (another machine, another
    commit) does not share. Only pretraining and ``arms`` are kept. Returns the
    records and, per file, the tasks taken from it.
    """
    keep = {PRETRAIN, *arms}
    records, owner, taken = [], {}, []
    for path, tasks in sources:
        rows = read_results_csv(path)
        present = list(dict.fromkeys(r["task"] for r in rows))
        missing = [t for t in tasks or [] if t not in present]
        if missing:
            raise ValueError(f"--from_csv={path}: no rows for {missing}; the file has {present}.")
        chosen = tasks or present
        for task in chosen:
            if task in owner:
                raise ValueError(
                    f"--from_csv: task {task} is in both {owner[task]} and {path}; a task's "
                    f"rows must come from one sweep (its arms share the pretraining). Choose "
                    f"one, e.g. --from_csv={path}:{','.join(t for t in chosen if t != task) or 'TASK'}.")
            owner[task] = path
            task_rows = [r for r in rows if r["task"] == task and r["arm"] in keep]
            fingerprints = {r["dataset_fingerprint"] for r in task_rows if r.get("dataset_fingerprint")}
            if len(fingerprints) > 1:
                raise ValueError(f"--from_csv={path}: task {task} has rows on "
                                 f"{len(fingerprints)} datasets ({sorted(f[:12] for f in fingerprints)}); "
                                 f"a table compares arms on one dataset.")
            records += task_rows
        taken.append((str(path), chosen))
    return records, taken


def write_merged_report(out: Path, sources: list[tuple[Path, list[str] | None]],
                        arms: list[str], scale: str) -> Path:
    """``results.csv`` and ``table.md`` in ``out`` from other sweeps' rows
    (:func:`merge_results`); the curves stay with each source sweep."""
    out = Path(out)
    if (out / SWEEP_FILE).is_file():
        raise ValueError(f"--workdir={out} is a sweep directory; write a merged report to a "
                         f"new directory, so the sweep's own report is not overwritten.")
    records, taken = merge_results(sources, arms)
    # Older results.csv files have no scale column: then --scale says it.
    scales = sorted({r["scale"] for r in records if r.get("scale")})
    if len(scales) > 1 or (scales and scales != [scale]):
        raise ValueError(f"--from_csv: the rows are at scale {scales}, --scale={scale}; one "
                         f"table holds one scale (pass --scale={scales[0]} if that is all).")
    out.mkdir(parents=True, exist_ok=True)
    order = {arm: i for i, arm in enumerate([PRETRAIN, CONTROL, TREATMENT])}
    tasks = [task for _, chosen in taken for task in chosen]
    records.sort(key=lambda r: (tasks.index(r["task"]), r["seed"], order.get(r["arm"], 99), r["arm"]))
    write_csv(records, out / RESULTS_FILE)
    sweep = {"scale": scale, "tasks": tasks, "arms": list(arms), "sources": taken}
    (out / TABLE_FILE).write_text(table_markdown(records, sweep))
    plot_summary(records, out / SUMMARY_FILE, tasks)
    return out / TABLE_FILE
