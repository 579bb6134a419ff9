"""A sweep's records: the cells' outcomes as rows, and ``results.csv``.

Everything is read from the sweep directory alone (each cell's
``cell.json`` and ``<phase>/metrics_eval.csv``), so shards, re-runs and
machines that share a directory merge by reading it again.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Iterable

from mb2po_jax.harness.names import CELL_FILE
from mb2po_jax.metrics_logger import read_series

COLUMNS = (
    "task", "seed", "arm", "scale", "status", "final_score", "final_score_std", "final_episodes",
    "best_periodic_score", "best_periodic_updates", "periodic_episodes", "pretrain_updates",
    "finetune_updates", "total_updates", "batch_size", "wall_seconds", "dataset", "dataset_fingerprint",
    "num_transitions", "commit", "message", "seeds_in_program", "dataset_episode_score",
    "behaviour_score", "buffer_refills",
)
# How results.csv's columns read back (merging CSVs from several sweeps).
_INT_COLUMNS = {"seed", "final_episodes", "best_periodic_updates", "periodic_episodes",
                "pretrain_updates", "finetune_updates", "total_updates", "batch_size",
                "num_transitions", "seeds_in_program", "buffer_refills"}
_FLOAT_COLUMNS = {"final_score", "final_score_std", "best_periodic_score", "wall_seconds",
                  "dataset_episode_score", "behaviour_score"}


def collect_records(root: Path) -> list[dict[str, Any]]:
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


def finished_scores(records: list[dict[str, Any]], task: str, arm: str,
                    key: str = "final_score") -> dict[int, float]:
    """Seed -> ``key`` of the ``arm`` cells of ``task`` that finished."""
    return {r["seed"]: r[key] for r in records if r["task"] == task and r["arm"] == arm
            and r["status"] == "done" and r.get(key) is not None}
