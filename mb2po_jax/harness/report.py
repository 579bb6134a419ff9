"""A sweep's report: ``results.csv``, ``table.md``, ``<task>.png``, ``summary.png``.

``results.csv`` has a row per task, seed and arm; ``table.md`` the mean +- std
over seeds, the lift over the control with a paired bootstrap 95 % interval
and the paper's Table 1 beside; ``<task>.png`` the arms' evaluation curves
against gradient updates (mean and band over seeds); ``summary.png`` the
final scores of every task.

Everything is rebuilt from the sweep directory alone (each cell's
``cell.json``, ``run.json`` and ``<phase>/metrics_eval.csv``), so shards,
re-runs and machines that share a directory merge by simply writing the
report again (:func:`write_report`). :func:`write_merged_report` makes one
table from several finished sweeps' ``results.csv``.

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

import json
import math
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from mb2po_jax.harness.figures import plot_summary, plot_task
from mb2po_jax.harness.names import (CONTROL, MOPO, PRETRAIN, RESULTS_FILE, SUMMARY_FILE,
                                     SWEEP_FILE, TABLE_FILE, TREATMENT, arm_labels)
from mb2po_jax.harness.paper_scores import PAPER_MOPO, PAPER_TABLE_1
from mb2po_jax.harness.records import (collect_records, finished_scores, read_results_csv,
                                       write_csv)
from mb2po_jax.pipeline.config import PAPER_MB2PO_TABLE
from mb2po_jax.pipeline.errors import UsageError


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


def lift(records: list[dict[str, Any]], task: str, key: str = "final_score",
         arm: str = TREATMENT):
    """(mean paired difference ``arm`` (MB2PO) - control, interval, seeds paired)."""
    control = finished_scores(records, task, CONTROL, key)
    treatment = finished_scores(records, task, arm, key)
    seeds = sorted(set(control) & set(treatment))
    diffs = [treatment[s] - control[s] for s in seeds]
    mean = float(np.mean(diffs)) if diffs else math.nan
    return mean, bootstrap_interval(diffs), seeds


def _lift_cells(records, task: str, arm: str) -> tuple[str, str, str, str]:
    """A lift row's cells for ``arm`` - control: seeds paired, mean, interval,
    per-seed differences."""
    mean, (low, high), seeds = lift(records, task, arm=arm)
    control = finished_scores(records, task, CONTROL)
    treatment = finished_scores(records, task, arm)
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
        ("Merged from other sweeps' `results.csv` (each task's rows from one file, so "
         "every pair shares its pretraining): "
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
            final = finished_scores(records, task, arm)
            best = finished_scores(records, task, arm, "best_periodic_score")
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
    refilled = sorted(f"{r['task']} seed {r['seed']} {labels.get(r['arm'], r['arm'])}"
                      for r in records if r.get("buffer_refills"))
    if refilled:
        lines += ["", "Approximated (a resume refilled the model buffer from the current "
                  "policy, buffer_checkpoint='refill'; results.csv's buffer_refills): "
                  + "; ".join(refilled) + "."]
    return "\n".join(lines) + "\n"


def write_report(root: Path) -> Path:
    """Writes results.csv, table.md and one PNG per task; returns table.md."""
    root = Path(root)
    sweep_path = root / SWEEP_FILE
    if not sweep_path.is_file():
        raise FileNotFoundError(f"{root} is not a sweep directory (no {SWEEP_FILE}); run "
                                f"the sweep with --workdir={root} first.")
    sweep = json.loads(sweep_path.read_text())
    records = [{**record, "scale": sweep.get("scale")} for record in collect_records(root)]
    order = {arm: i for i, arm in enumerate([PRETRAIN, CONTROL, TREATMENT])}
    records.sort(key=lambda r: (r["task"], r["seed"], order.get(r["arm"], 99), r["arm"]))
    write_csv(records, root / RESULTS_FILE)
    (root / TABLE_FILE).write_text(table_markdown(records, sweep))
    tasks = list(dict.fromkeys([*sweep.get("tasks", []), *(r["task"] for r in records)]))
    for task in dict.fromkeys(r["task"] for r in records):
        plot_task(records, task, root / f"{task}.png", arm_labels(sweep))
    plot_summary(records, root / SUMMARY_FILE, tasks, arm_labels(sweep))
    return root / TABLE_FILE


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


def parse_csv_source(text: str) -> tuple[Path, list[str] | None]:
    """``PATH[:TASK,TASK...]`` (``--from_csv``) -> (path, tasks or None for
    all of the file's)."""
    path, _, tasks = text.partition(":")
    if not Path(path).expanduser().is_file():
        raise UsageError(f"--from_csv={text}: no file {path} (a sweep's results.csv).")
    chosen = [task for task in tasks.split(",") if task] or None
    unknown = [task for task in chosen or [] if task not in PAPER_MB2PO_TABLE]
    if unknown:
        raise UsageError(f"--from_csv={text}: unknown task {unknown}; valid: "
                         f"{sorted(PAPER_MB2PO_TABLE)}.")
    return Path(path).expanduser(), chosen
