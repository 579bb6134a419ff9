"""The cells of a sweep: one run each, resumable, with its outcome on disk.

A cell is one arm (or the pretraining) of one (task, seed) unit, in
``<root>/<task>/seed<k>/<arm>`` (``seeds<a>-<b>`` when the unit's seeds train
as one vmapped program). Each cell is an ordinary pipeline workdir
(:func:`mb2po_jax.pipeline.run`: resumable, checkpointed, refused if the
config changed); when it finishes, its policy is evaluated with
``final_episodes`` episodes and ``cell.json`` records the outcome, so a
finished cell is never run again. A cell stopped by the divergence guard is
recorded as ``diverged``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import ml_collections
import numpy as np

from mb2po_jax.evaluation import normalized_score
from mb2po_jax.harness.arms import ARMS, Arm, finetune_updates, prepare_dataset
from mb2po_jax.harness.names import CELL_FILE, MOPO, PRETRAIN
from mb2po_jax.pipeline import (UsageError, evaluate_checkpoint, run as run_experiment,
                                validate_config)
from mb2po_jax.runner import TrainingDivergedError, workdir_lock
from mb2po_jax.seeds import seed_list

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Cell:
    """One run of a sweep: ``arm`` (or the pretraining) of ``task`` from
    ``seed``, in ``workdir``."""

    task: str
    seed: int  # the first seed
    arm: str  # PRETRAIN or an ARMS key
    workdir: Path
    num_seeds: int = 1  # seeds seed .. seed + num_seeds - 1, one vmapped program

    @property
    def seeds(self) -> list[int]:
        return list(seed_list(self.seed, self.num_seeds))

    def identity(self) -> dict[str, Any]:
        """The fields every record of the cell starts with (a multi-seed
        cell's ``per_seed`` rows, filled in when it finishes)."""
        record = {"task": self.task, "seed": self.seed, "arm": self.arm,
                  "seeds_in_program": self.num_seeds}
        if self.num_seeds > 1:
            record["per_seed"] = [{"seed": seed} for seed in self.seeds]
        return record

    @property
    def label(self) -> str:
        who = f"seed {self.seed}" if self.num_seeds == 1 else f"seeds {self.seeds}"
        return f"{self.task} {who} {self.arm}"


def unit_dir(root: Path, task: str, seed: int, num_seeds: int = 1) -> Path:
    if num_seeds == 1:
        return root / task / f"seed{seed}"
    return root / task / f"seeds{seed}-{seed + num_seeds - 1}"


def plan(root: Path, tasks: list[str], seeds: list[int], arms: list[str],
         shard: tuple[int, int] | None = (0, 1), vmap_seeds: bool = False,
         pretrain: bool = True) -> list[Cell]:
    """The cells of this shard, in run order: per (task, seed) unit the
    pretraining (unless ``pretrain`` is False: no arm starts from it), then
    each arm. Units are dealt round-robin to shards; with
    ``shard=None`` every unit is planned, and processes sharing the workdir
    divide the work as they go (a cell another process runs is locked).
    With ``vmap_seeds`` a unit is (task, all the seeds), one program."""
    if vmap_seeds:
        if not consecutive_seeds(seeds):
            raise UsageError(f"--seeds={','.join(map(str, seeds))}: one vmapped program runs "
                             f"consecutive seeds (seed .. seed + num_seeds - 1); pass e.g. "
                             f"--seeds=0,1,2, or --seed_programs=each.")
        units = [(task, seeds[0], len(seeds)) for task in tasks]
        for task in tasks:
            _check_no_overlap(root, task, seeds)
    else:
        units = [(task, seed, 1) for task in tasks for seed in seeds]
    if shard is not None:
        index, count = shard
        units = units[index::count]
    cells = []
    for task, seed, num_seeds in units:
        base = unit_dir(root, task, seed, num_seeds)
        cells += [Cell(task, seed, arm, base / arm, num_seeds)
                  for arm in ([PRETRAIN] if pretrain else []) + list(arms)]
    return cells


def _check_no_overlap(root: Path, task: str, seeds: list[int]) -> None:
    """A seed group that shares seeds with another of the task's groups would
    train those seeds twice and report them twice: refused."""
    for other in sorted((root / task).glob("seeds*-*")):
        match = re.fullmatch(r"seeds(\d+)-(\d+)", other.name)
        if not match:
            continue
        low, high = int(match[1]), int(match[2])
        if (low, high) != (seeds[0], seeds[-1]) and low <= seeds[-1] and seeds[0] <= high:
            raise UsageError(
                f"--seeds={','.join(map(str, seeds))}: {other} already holds seeds "
                f"{low}..{high} of {task}, so seeds {max(low, seeds[0])}..{min(high, seeds[-1])} "
                f"would run twice. Run seeds outside {low}..{high} (e.g. --seeds="
                f"{high + 1},{high + 2}) or exactly --seeds={','.join(map(str, range(low, high + 1)))}.")


def consecutive_seeds(seeds: list[int]) -> bool:
    """Seeds one program can run: ``first .. first + N - 1``."""
    return seeds == list(seed_list(seeds[0], len(seeds)))


def read_cell(cell_dir: Path) -> dict[str, Any] | None:
    path = cell_dir / CELL_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def _write_cell(cell_dir: Path, record: dict[str, Any]) -> None:
    tmp = cell_dir / (CELL_FILE + ".tmp")
    tmp.write_text(json.dumps(record, indent=2))
    tmp.replace(cell_dir / CELL_FILE)  # atomic: a kill never leaves half a record


def skip_cell(cell: Cell, reason: str) -> dict[str, Any]:
    """Records ``cell`` as ``skipped`` (it will not run) and returns the record."""
    record = {**cell.identity(), "status": "skipped", "message": reason}
    cell.workdir.mkdir(parents=True, exist_ok=True)
    _write_cell(cell.workdir, record)
    return record


def git_commit() -> str:
    """The code's commit, '+dirty' when the library or the launchers differ from it."""
    repo = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=repo,
                                capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "mb2po_jax", "experiments"],
                               cwd=repo).returncode
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def cell_config(cell: Cell, config: ml_collections.ConfigDict,
                arms: dict[str, Arm] = ARMS) -> ml_collections.ConfigDict:
    """The run config of a cell, from its task's config (``arms``: the
    sweep's arm table, :func:`arm_table`)."""
    config = copy.deepcopy(config)
    config.seed, config.num_seeds = cell.seed, cell.num_seeds
    if cell.arm == PRETRAIN:
        config.mb2po.num_iterations = 0
        return config
    return arms[cell.arm].build(config, cell.workdir.parent / PRETRAIN)


def run_cell(cell: Cell, config: ml_collections.ConfigDict, final_episodes: int,
             arms: dict[str, Arm] = ARMS) -> dict[str, Any]:
    """Runs (or resumes) a cell, evaluates its final policy, writes cell.json.

    Raises:
        WorkdirBusyError: another process holds the cell (training or
            evaluating it); its own lock, beside the run's, covers both.
    """
    cell.workdir.mkdir(parents=True, exist_ok=True)
    with workdir_lock(cell.workdir, name=".cell-lock"):
        if read_cell(cell.workdir) is not None:  # finished while we waited to look
            return read_cell(cell.workdir)
        return _run_cell_locked(cell, config, final_episodes, arms)


def _run_cell_locked(cell: Cell, config: ml_collections.ConfigDict,
                     final_episodes: int, arms: dict[str, Arm]) -> dict[str, Any]:
    run_config = cell_config(cell, config, arms)
    validate_config(run_config)
    started = time.time()
    record: dict[str, Any] = {
        **cell.identity(), "dataset": run_config.dataset,
        "commit": git_commit(),
        "pretrain_updates": config.awac.num_steps,
        "finetune_updates": 0 if cell.arm == PRETRAIN else finetune_updates(config),
        "batch_size": config.awac.batch_size,
    }
    if run_config.algorithm == MOPO:  # its whole run, none of it pretraining
        record.update(pretrain_updates=0, finetune_updates=finetune_updates(run_config, "mopo"),
                      batch_size=run_config.mopo.batch_size)
    try:
        results = run_experiment(run_config, cell.workdir)
    except TrainingDivergedError as error:
        record.update(status="diverged", message=str(error),
                      wall_seconds=time.time() - started)
        _write_cell(cell.workdir, record)
        logger.warning("%s: diverged, recorded; the sweep goes on. %s", cell.label, error)
        return record
    phase = "awac" if cell.arm == PRETRAIN else arms[cell.arm].policy_phase
    final = evaluate_checkpoint(cell.workdir, phase=phase, num_episodes=final_episodes)
    # How the report puts the cell's periodic evaluations on one axis of
    # gradient updates: AWAC logs updates; other phases log iterations.
    record["curve_phase"] = phase
    if phase != "awac":
        record["updates_per_unit"] = run_config[phase].updates_per_iteration
        record["curve_offset"] = record["pretrain_updates"]  # where the phase's updates start
    if cell.arm == PRETRAIN:
        record.update(dataset_scores(run_config))
    record.update(status="done", periodic_episodes=run_config.eval.num_episodes)
    if cell.num_seeds > 1:
        # One row per seed in the report (records.collect_records); its curve
        # is under <phase>/seed_<s>/. The wall time is the program's, all seeds.
        record["per_seed"] = [{"seed": one["seed"], "curve_subdir": f"seed_{one['seed']}",
                               **_final_fields(one), **_refills(mine)}
                              for one, mine in zip(final["per_seed"], results["per_seed"])]
    else:
        record.update(_final_fields(final), **_refills(results))
    record.update(
        wall_seconds=results["wall_seconds"],
        dataset_fingerprint=results["dataset_fingerprint"],
        dataset_source=results["dataset_source"],
        num_transitions=results["num_transitions"],
        env_id=results["env_id"],
    )
    _write_cell(cell.workdir, record)
    return record


def _refills(results: dict[str, Any]) -> dict[str, Any]:
    """``buffer_refills`` where the run used that approximation (else nothing)."""
    return {"buffer_refills": results["buffer_refills"]} if "buffer_refills" in results else {}


def _final_fields(final: dict[str, Any]) -> dict[str, Any]:
    """A cell record's fields from one seed's final evaluation."""
    return {"final_score": final["normalized_score"],
            "final_score_std": final["normalized_score_std"],
            "final_return": final["return_mean"], "final_episodes": final["num_episodes"],
            "total_updates": final["updates"], "final_returns": final["returns"]}


def dataset_scores(config: ml_collections.ConfigDict) -> dict[str, float | None]:
    """What the issue's "outperform the demonstrated behaviour" compares with:
    the normalised mean return of the dataset's episodes (an episode ends at a
    terminal or a time-out; a cut last episode counts as one) and, for the
    project's own datasets, the behaviour policy's score from the data card."""
    data = prepare_dataset(config)
    t = data.transitions
    ends = np.flatnonzero(np.logical_or(np.asarray(t.terminals) > 0, np.asarray(t.timeouts) > 0))
    bounds = np.concatenate([[-1], ends, [] if ends.size and ends[-1] == len(t.rewards) - 1
                             else [len(t.rewards) - 1]]).astype(int)
    rewards = np.cumsum(np.asarray(t.rewards, dtype=np.float64))
    returns = np.diff(np.concatenate([[0.0], rewards[bounds[1:]]]))
    scores = None
    if data.ref_scores is not None:
        scores = float(np.mean(normalized_score(data.env_id, returns, ref_scores=data.ref_scores)))
    behaviour = None
    match = re.match(r"minari:(\S+)", data.info.source)
    if match:
        from mb2po_jax.datagen import read_card

        card = read_card(match.group(1)) or {}
        behaviour = (card.get("behaviour_policy") or {}).get("eval_normalized_score")
    return {"dataset_episode_score": scores, "dataset_episodes": int(returns.size),
            "behaviour_score": behaviour if isinstance(behaviour, (int, float)) else None}

