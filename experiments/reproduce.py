"""The reproduction harness: tasks x seeds x arms, with a fair control.

    python -m experiments.reproduce --tasks=hopper-mixed,walker2d-mixed,halfcheetah-mixed \\
        --seeds=0,1,2 --scale=cpu --workdir=runs/repro

For every task and seed, AWAC is pretrained once (``<task>/seed<k>/pretrain``)
and every arm starts from that checkpoint:

* ``awac``: the fair control. AWAC pretraining *continued* for exactly as
  many further updates (same batch size) as the MB2PO arm makes
  (``mb2po.num_iterations x mb2po.updates_per_iteration``), so a gain of
  MB2PO over it cannot be just more training;
* ``mb2po``: AWAC+MB2PO (dynamics ensemble, then the fine-tuning iterations);
* ``mopo`` (opt-in, ``--arms=awac,mb2po,mopo``): MOPO, the paper's main
  comparison, from scratch on the same dataset with the same dynamics and
  rollout code (``algorithm=mopo``: SAC in the conservative MDP). It reads no
  pretrained checkpoint; at CPU scale it makes as many updates as
  pretraining and the control together, and the report gives its lift over
  the control beside the variants'.

More arms plug into :data:`ARMS` (a name, a label, and how the arm's config is
derived from the task's). ``--variant=NAME:FIELD=VALUE[,FIELD=VALUE...]`` adds
an arm without code: MB2PO with ``mb2po.*`` / ``dynamics.*`` overrides (an
ablation), started from the same pretrained checkpoints, so a variant added to
an existing sweep reuses its pretraining; the report gives each variant's lift
over the control beside MB2PO's. Each cell is an ordinary ``experiments.run`` workdir
(resumable, checkpointed, refused if the config changed); when it finishes,
its policy is evaluated with ``--final_episodes`` episodes (default 50) and
``cell.json`` records the outcome, so a killed sweep resumes where it stopped
and finished cells are skipped. A cell stopped by the divergence guard is
recorded as ``diverged`` and the sweep goes on. A cell this machine cannot
hold (its memory or disk pre-flight refuses it) is left pending, so a re-run
on a larger machine or with the named fix takes it up; the other cells run,
and the sweep then exits with every refusal's message.

Outputs in ``--workdir`` (remade after every cell, or alone with
``--report_only``): ``results.csv`` (a row per task, seed and arm),
``table.md`` (mean +- std over seeds, the lift MB2PO - control with a paired
bootstrap 95 % interval, the paper's Table 1 beside) and ``<task>.png`` (the
arms' evaluation curves against gradient updates, mean and band over seeds).
See :mod:`experiments.repro_report`.

``MB2PO_SCALE=<scale>`` in the environment replaces ``--scale`` (as
``experiments.run`` honours it; the documentation's tests use ``smoke``).

``--shard=I/N`` runs every N-th (task, seed) unit, so N processes or machines
can share one workdir (each unit's cells are written by one shard only);
``--report_only`` merges whatever has finished.

``--seed_programs=one`` trains a unit's seeds side by side as ONE vmapped
program (``num_seeds``, :mod:`mb2po_jax.seeds`): the unit is then
``<task>/seeds<a>-<b>`` and each cell a run of all its seeds (one
compilation, one dataset copy, the seed axis sharded over the devices); the
rows, table and curves stay per seed. ``each`` runs a program per seed
(``<task>/seed<k>``); ``auto`` (the default) takes ``one`` for a new sweep of
consecutive seeds and keeps an existing sweep's choice.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import fcntl
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import ml_collections
import numpy as np
from absl import app, flags

from experiments import repro_report
from experiments.common import (SCALE_ENV, TIME_LIMIT_HELP, ResourceError, UsageError,
                                _check_override, install_stop_controls, prepare_dataset,
                                setup_logging)
from experiments.configs.base import PAPER_MB2PO_TABLE, SCALES, paper_config
from experiments.evaluate import evaluate_checkpoint
from mb2po_jax.runner import InterruptedRun, TrainingDivergedError
from mb2po_jax.stopping import StoppedAtLimit
from experiments.run import run as run_experiment, validate_config
from mb2po_jax.runner import WorkdirBusyError, workdir_lock
from mb2po_jax.checkpoint import RESUME_SAFE_FIELDS, RunMismatchError
from mb2po_jax.data import (DatasetError, DatasetNotFoundError, parse_task_name,
                            resolve_dataset)
from mb2po_jax.envs import ENV_IDS
from mb2po_jax.evaluation import normalized_score
from mb2po_jax.seeds import seed_list

logger = logging.getLogger(__name__)

CELL_FILE, PRETRAIN = repro_report.CELL_FILE, repro_report.PRETRAIN
DEFAULT_TASKS = ("hopper-mixed", "walker2d-mixed", "halfcheetah-mixed")


# ------------------------------------------------------------------ scales


# Final-evaluation episodes per scale when --final_episodes is not given.
FINAL_EPISODES = {"paper": 50, "cpu": 50, "smoke": 2}


def _smoke_dataset(config: ml_collections.ConfigDict, task: str) -> None:
    """At smoke scale a missing task dataset is replaced by a tiny random-policy
    one recorded on first use (as the quickstart does); other scales fail."""
    try:
        resolve_dataset(config.dataset, d4rl_dir=config.d4rl_dir)
        return
    except DatasetNotFoundError:
        pass
    env, _ = parse_task_name(task)
    env_id = ENV_IDS[env]
    config.dataset = f"minari:mb2po/{env}/smoke-random-v0"
    config.make_dataset.enabled = True
    config.make_dataset.env_id = env_id
    config.make_dataset.num_steps = 400
    # Recorded now, under a lock, so shards started together do not race to
    # write the same dataset.
    with open(Path(tempfile.gettempdir()) / "mb2po-smoke-dataset.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        prepare_dataset(config)


# -------------------------------------------------------------------- arms


def finetune_updates(config: ml_collections.ConfigDict, section: str = "mb2po") -> int:
    """Gradient updates MB2PO makes after pretraining (the control matches
    it); with ``section="mopo"``, a MOPO run's (its whole training)."""
    return config[section].num_iterations * config[section].updates_per_iteration


def control_config(task_config: ml_collections.ConfigDict, pretrain_dir: Path):
    config = copy.deepcopy(task_config)
    extra = finetune_updates(task_config)
    config.awac.num_steps = task_config.awac.num_steps + extra
    config.mb2po.num_iterations = 0
    config.init.awac_workdir = str(pretrain_dir)
    return config


def mb2po_config(task_config: ml_collections.ConfigDict, pretrain_dir: Path):
    config = copy.deepcopy(task_config)
    config.init.awac_workdir = str(pretrain_dir)
    return config


def mopo_config(task_config: ml_collections.ConfigDict, pretrain_dir: Path):
    """MOPO from scratch on the task's dataset (its own ``config.mopo``): a
    peer on the same data, dynamics and rollout code, not a continuation."""
    del pretrain_dir  # MOPO trains SAC from scratch
    config = copy.deepcopy(task_config)
    config.algorithm = repro_report.MOPO
    return config


@dataclasses.dataclass(frozen=True)
class Arm:
    """A way to continue from the pretrained AWAC checkpoint.

    Attributes:
        name: the cell directory and the ``arm`` column.
        label: the legend and table label.
        build: ``(task config, pretrain workdir) -> the cell's run config``.
        policy_phase: the checkpoint phase holding the arm's final policy.
        from_pretrained: whether the arm starts from the unit's pretrained
            AWAC checkpoint (then it waits for it, and is skipped if
            pretraining diverged); MOPO does not.
    """

    name: str
    label: str
    build: Callable[[ml_collections.ConfigDict, Path], ml_collections.ConfigDict]
    policy_phase: str
    from_pretrained: bool = True


ARMS: dict[str, Arm] = {
    "awac": Arm("awac", repro_report.LABELS["awac"], control_config, "awac"),
    "mb2po": Arm("mb2po", repro_report.LABELS["mb2po"], mb2po_config, "mb2po"),
    "mopo": Arm("mopo", repro_report.LABELS["mopo"], mopo_config, "mopo", from_pretrained=False),
}
# What a sweep runs unless --arms says otherwise (MOPO is opt-in: it is a
# whole training run of its own, not a continuation).
DEFAULT_ARMS = ("awac", "mb2po")

# A variant is MB2PO with overrides of its own phases' fields; the pretrained
# checkpoint is shared, so fields of pretraining cannot vary, and the control's
# update count must stay the MB2PO arm's.
VARIANT_PREFIXES = ("mb2po.", "dynamics.")
# AWAC fields fine-tuning reads as its update rule (mb2po.alpha replaces
# awac.alpha there). They leave the networks' shapes and outputs alone, so the
# shared pretrained checkpoint restores unchanged; e.g. awac.critic_lr=0.0
# freezes the pretrained critic during MB2PO (the frozen-critic ablation, docs/results.md).
FINE_TUNING_AWAC_FIELDS = ("awac.critic_lr", "awac.policy_lr", "awac.tau", "awac.discount",
                           "awac.target_selection", "awac.max_weight",
                           "awac.num_advantage_samples", "awac.policy_weight_decay",
                           "awac.advantage_space")
MATCHED_FIELDS = ("mb2po.num_iterations", "mb2po.updates_per_iteration")
_VARIANT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


def parse_variant(text: str, base: ml_collections.ConfigDict) -> tuple[str, dict[str, Any]]:
    """``"lam0.25:mb2po.penalty_coef=0.25"`` -> ``("lam0.25", {"mb2po.penalty_coef": 0.25})``."""
    name, sep, items = text.partition(":")
    example = "e.g. --variant=nll_mean:dynamics.nll_reduction=mean"
    if not sep or not name or not items:
        raise UsageError(f"--variant={text!r}: expected NAME:FIELD=VALUE[,FIELD=VALUE...], "
                         f"{example}.")
    if not _VARIANT_NAME.match(name) or name in (PRETRAIN, *ARMS):
        raise UsageError(f"--variant={text!r}: the name {name!r} must be letters, digits and "
                         f"_.+- (it names the cell directory) and not one of "
                         f"{[PRETRAIN, *ARMS]}.")
    # Split only before the next FIELD=, so a tuple value like (64,64) stays whole.
    try:
        overrides = parse_overrides(re.split(r",(?=[A-Za-z_][\w.]*=)", items), base)
    except UsageError as error:
        raise UsageError(f"--variant={text!r}: {error}") from None
    for field in overrides:
        if not field.startswith(VARIANT_PREFIXES) and field not in FINE_TUNING_AWAC_FIELDS:
            raise UsageError(f"--variant={text!r}: {field} is not a field of the MB2PO arm's "
                             f"own phases ({', '.join(p + '*' for p in VARIANT_PREFIXES)}, or "
                             f"the AWAC update rule fine-tuning uses: "
                             f"{', '.join(FINE_TUNING_AWAC_FIELDS)}); the pretrained "
                             f"checkpoint is shared by every arm, so vary pretraining with "
                             f"--set on another --workdir.")
        if field in MATCHED_FIELDS:
            raise UsageError(f"--variant={text!r}: {field} sets how many updates fine-tuning "
                             f"makes, which the control arm matches for the whole sweep; "
                             f"change it with --set on another --workdir.")
    return name, overrides


def variant_arm(name: str, overrides: dict[str, Any]) -> Arm:
    def build(task_config: ml_collections.ConfigDict, pretrain_dir: Path):
        config = mb2po_config(task_config, pretrain_dir)
        for field, value in overrides.items():
            _assign(config, field, value)
        return config

    return Arm(name, repro_report.variant_label(name, overrides), build, "mb2po")


def arm_table(variants: dict[str, dict[str, Any]] | None) -> dict[str, Arm]:
    """The built-in arms and the sweep's variants, by name."""
    return {**ARMS, **{name: variant_arm(name, o) for name, o in (variants or {}).items()}}


# ------------------------------------------------------------------- cells


def parse_overrides(items: list[str], base: ml_collections.ConfigDict) -> dict[str, Any]:
    """``["awac.num_steps=1000", ...]`` -> ``{"awac.num_steps": 1000}``, every
    field checked against ``base`` (an unknown one fails naming it)."""
    out = {}
    for item in items:
        field, sep, text = item.partition("=")
        if not sep or not field:
            raise UsageError(f"--set={item!r}: expected FIELD=VALUE, e.g. --set=awac.num_steps=1000.")
        if field in ("seed", "num_seeds"):
            raise UsageError(f"--set={item!r}: the harness sets each cell's seeds itself; choose "
                             f"them with --seeds (and --seed_programs).")
        _check_override(base, field)
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text  # a bare string such as max_std_norm
        out[field] = value
    return out


def _assign(config: ml_collections.ConfigDict, dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = config
    for part in parents:
        node = node[part]
    if isinstance(value, list):
        value = tuple(value)
    node[leaf] = value


def task_config(task: str, scale: str, overrides: dict[str, Any],
                datasets: dict[str, str]) -> ml_collections.ConfigDict:
    """The task's paper config at ``scale``, its dataset and the overrides."""
    config = SCALES[scale](paper_config(task))
    if task in datasets:
        config.dataset = datasets[task]
    for field, value in overrides.items():
        _assign(config, field, value)
    if scale == "smoke" and task not in datasets:
        _smoke_dataset(config, task)
    if finetune_updates(config) < 1:
        raise UsageError(f"{task}: mb2po.num_iterations x mb2po.updates_per_iteration must be "
                         f">= 1: the arms compare fine-tuning updates.")
    return config


@dataclasses.dataclass(frozen=True)
class Cell:
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
        if not _consecutive(seeds):
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


def read_cell(cell_dir: Path) -> dict[str, Any] | None:
    path = cell_dir / CELL_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def _write_cell(cell_dir: Path, record: dict[str, Any]) -> None:
    tmp = cell_dir / (CELL_FILE + ".tmp")
    tmp.write_text(json.dumps(record, indent=2))
    tmp.replace(cell_dir / CELL_FILE)  # atomic: a kill never leaves half a record


def git_commit() -> str:
    """The code's commit, '+dirty' when the library or the launchers differ from it."""
    repo = Path(__file__).resolve().parents[1]
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
    if run_config.algorithm == repro_report.MOPO:  # its whole run, none of it pretraining
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
        # One row per seed in the report (repro_report.collect); its curve is
        # under <phase>/seed_<s>/. The wall time is the program's, all seeds.
        record["per_seed"] = [{"seed": one["seed"], "curve_subdir": f"seed_{one['seed']}",
                               **_final_fields(one)} for one in final["per_seed"]]
    else:
        record.update(_final_fields(final))
    record.update(
        wall_seconds=results["wall_seconds"],
        dataset_fingerprint=results["dataset_fingerprint"],
        dataset_source=results["dataset_source"],
        num_transitions=results["num_transitions"],
        env_id=results["env_id"],
    )
    _write_cell(cell.workdir, record)
    return record


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


def run_sweep(root: Path, tasks: list[str], seeds: list[int], arms: list[str], scale: str, *,
              overrides: dict[str, Any] | None = None, datasets: dict[str, str] | None = None,
              final_episodes: int | None = None, shard: tuple[int, int] | None = (0, 1),
              report: bool = True, seed_programs: str = "auto",
              variants: dict[str, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Runs this shard's unfinished cells in order; returns every cell record.

    A cell whose pretraining diverged leaves its unit's arms recorded as
    ``skipped``. A cell refused by a pre-flight (:class:`ResourceError`) or
    whose task's dataset is missing stays pending; the other cells run, then
    the error names them all. The report is remade after every cell. ``seed_programs``:
    'one' (the seeds as one vmapped program), 'each' or 'auto' (see the
    module docstring). ``variants``: name -> overrides of MB2PO arms
    (:func:`parse_variant`); ``arms`` may name them.
    """
    path = root / repro_report.SWEEP_FILE
    recorded = json.loads(path.read_text()).get("variants", {}) if path.is_file() else {}
    table = arm_table({**recorded, **(variants or {})})  # a recorded variant resumes by name
    unknown = [arm for arm in arms if arm not in table]
    if unknown or not arms:
        raise UsageError(f"--arms: unknown {unknown}; valid: {list(table)} (a variant is "
                         f"defined with --variant=NAME:FIELD=VALUE).")
    root.mkdir(parents=True, exist_ok=True)
    final_episodes = final_episodes or FINAL_EPISODES[scale]
    configs = {task: task_config(task, scale, overrides or {}, datasets or {}) for task in tasks}
    for name in variants or {}:  # a bad value fails now, not when its first cell is reached
        for task, config in configs.items():
            try:
                validate_config(table[name].build(config, root / PRETRAIN))
            except ValueError as error:
                raise UsageError(f"--variant={name}:... on {task}: {error}") from None
    mode = resolve_seed_programs(root, seed_programs, seeds)
    _write_sweep_file(root, tasks, seeds, arms, scale, overrides or {}, datasets or {}, mode,
                      variants or {})
    # MOPO alone (from scratch) needs no AWAC pretraining.
    cells = plan(root, tasks, seeds, arms, shard, vmap_seeds=mode == "one",
                 pretrain=any(table[arm].from_pretrained for arm in arms))
    records, missing, refused = [], {}, {}
    for number, cell in enumerate(cells, 1):
        record = read_cell(cell.workdir)
        pending = {"task": cell.task, "seed": cell.seed, "arm": cell.arm, "status": "pending"}
        if record is not None:
            logger.info("[%d/%d] %s: %s, skipped.", number, len(cells), cell.label, record["status"])
        elif cell.task in missing:
            record = pending  # its dataset is missing (logged once)
        else:
            pretrain = read_cell(cell.workdir.parent / PRETRAIN)
            waits = cell.arm != PRETRAIN and table[cell.arm].from_pretrained
            if waits and pretrain and pretrain["status"] != "done":
                record = {**cell.identity(), "status": "skipped",
                          "message": "pretraining diverged"}
                cell.workdir.mkdir(parents=True, exist_ok=True)
                _write_cell(cell.workdir, record)
            elif waits and pretrain is None:
                # Pretraining is unfinished (another process runs it): an arm
                # must never start from a half-trained checkpoint.
                logger.info("[%d/%d] %s: pretraining not finished (another process?), "
                            "left for later.", number, len(cells), cell.label)
                record = pending
            else:
                logger.info("[%d/%d] %s: running in %s", number, len(cells), cell.label,
                            cell.workdir)
                try:
                    record = run_cell(cell, configs[cell.task], final_episodes, table)
                except StoppedAtLimit:
                    # Checkpointed and unfinished (no cell.json): the same
                    # command continues it; the report keeps what is done.
                    logger.info("[%d/%d] %s: stopped, unfinished; the same command continues it.",
                                number, len(cells), cell.label)
                    if report:
                        repro_report.write_report(root)
                    raise
                except WorkdirBusyError:
                    logger.info("[%d/%d] %s: another process is running it, left to it.",
                                number, len(cells), cell.label)
                    record = pending
                except DatasetNotFoundError as error:
                    # One task's missing data must not stop the other tasks.
                    logger.error("%s: dataset missing, its cells are left for later: %s",
                                 cell.task, error)
                    missing[cell.task] = str(error)
                    record = pending
                except ResourceError as error:
                    # Refused before training or binding the workdir to its
                    # config: another machine, or the message's fix, can run
                    # it, so it is not recorded as an outcome.
                    logger.error("%s: refused on this machine, left pending: %s",
                                 cell.label, error)
                    refused[cell.label] = str(error)
                    record = pending
                logger.info("[%d/%d] %s: %s%s", number, len(cells), cell.label, record["status"],
                            f", final score {record['final_score']:.1f} over "
                            f"{record['final_episodes']} episodes"
                            if record["status"] == "done" and record.get("final_score") is not None
                            else "")
            if report:
                repro_report.write_report(root)
        records.append(record)
    if report:
        repro_report.write_report(root)
    problems = []
    if refused:
        problems.append(
            "this machine refused these cells (they stay pending: apply the fix and run the "
            "same command again, or run them on a larger machine):\n" + "\n".join(
                f"  {label}: {message}" for label, message in refused.items()))
    if missing:
        problems.append(
            "these tasks' datasets are missing (make them, e.g. "
            "`python -m experiments.make_dataset --env=<env> --kind=<kind> --scale=0.1`, "
            "then run the same command again):\n" + "\n".join(
                f"  {task}: {message}" for task, message in missing.items()))
    if problems:
        error = ResourceError if refused else DatasetNotFoundError
        raise error("The other cells ran, but " + "\nAnd ".join(problems))
    return records


SEED_PROGRAMS = ("auto", "one", "each")


def resolve_seed_programs(root: Path, choice: str, seeds: list[int]) -> str:
    """'one' or 'each' for this sweep: ``choice``, or for 'auto' the sweep's
    recorded choice ('each' for sweeps made before it was recorded), else
    'one' where the seeds are consecutive."""
    if choice not in SEED_PROGRAMS:
        raise UsageError(f"--seed_programs={choice!r}: valid: {list(SEED_PROGRAMS)}.")
    path = root / repro_report.SWEEP_FILE
    sweep = json.loads(path.read_text()) if path.is_file() else None
    recorded = None if sweep is None else sweep.get("seed_programs", "each")
    if choice == "auto":
        return recorded or ("one" if _consecutive(seeds) and len(seeds) > 1 else "each")
    if recorded and recorded != choice:
        raise UsageError(f"--seed_programs={choice}: {root} is a sweep of seed_programs="
                         f"{recorded} (its cells are laid out so); use that, 'auto', or "
                         f"another --workdir.")
    return choice


def _consecutive(seeds: list[int]) -> bool:
    """Seeds one program can run: ``first .. first + N - 1``."""
    return seeds == list(seed_list(seeds[0], len(seeds)))


def _write_sweep_file(root: Path, tasks, seeds, arms, scale, overrides, datasets,
                      seed_programs: str = "each", variants: dict | None = None) -> None:
    """What the sweep is, for the report (merged over shards and re-runs)."""
    path = root / repro_report.SWEEP_FILE
    sweep = json.loads(path.read_text()) if path.is_file() else {}
    # Display-only fields (progress bars, ...) may differ between shards.
    identity = lambda o: {k: v for k, v in o.items() if k not in RESUME_SAFE_FIELDS}  # noqa: E731
    if sweep and (sweep.get("scale") != scale
                  or identity(sweep.get("overrides", {})) != identity(overrides)
                  or sweep.get("datasets", {}) != datasets):
        raise UsageError(
            f"{root} holds a sweep with scale={sweep.get('scale')!r}, overrides "
            f"{sweep.get('overrides')} and datasets {sweep.get('datasets', {})}; this command "
            f"asks for scale={scale!r}, overrides {overrides} and datasets {datasets}. Use "
            f"another --workdir for a different sweep.")
    known = sweep.get("variants", {})
    variants = json.loads(json.dumps(variants or {}))  # as recorded: tuples become lists
    for name, fields in variants.items():
        if name in known and known[name] != fields:
            raise UsageError(f"--variant={name}:...: {root} already has a variant {name!r} with "
                             f"{known[name]}, not {fields}; its cells were made so. Give the new "
                             f"one another name.")
    merged = lambda key, new: list(dict.fromkeys([*sweep.get(key, []), *new]))  # noqa: E731
    sweep = {"scale": scale, "overrides": sweep.get("overrides", overrides), "datasets": datasets,
             "tasks": merged("tasks", tasks), "seeds": merged("seeds", seeds),
             "arms": merged("arms", arms), "seed_programs": seed_programs,
             "variants": {**known, **variants}}
    # Atomic: processes sharing the sweep read it at start and in every report.
    tmp = path.with_suffix(f".{uuid.uuid4().hex}.tmp")
    tmp.write_text(json.dumps(sweep, indent=2))
    tmp.replace(path)


# --------------------------------------------------------------------- CLI


def _parse_shard(text: str) -> tuple[int, int] | None:
    if text == "any":
        return None
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise UsageError(f"--shard={text!r}: expected I/N, e.g. --shard=0/2.") from None
    if count < 1 or not 0 <= index < count:
        raise UsageError(f"--shard={text!r}: need 0 <= I < N.")
    return index, count


def _parse_datasets(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        task, sep, spec = item.partition("=")
        if not sep or task not in PAPER_MB2PO_TABLE:
            raise UsageError(f"--dataset={item!r}: expected TASK=DATASET with TASK one of "
                             f"{sorted(PAPER_MB2PO_TABLE)}, e.g. "
                             f"--dataset=hopper-mixed=hdf5:/data/hopper_medium_replay-v2.hdf5.")
        out[task] = spec
    return out


def _parse_csv_source(text: str) -> tuple[Path, list[str] | None]:
    """``PATH[:TASK,TASK...]`` -> (path, tasks or None for all of the file's)."""
    path, _, tasks = text.partition(":")
    if not Path(path).expanduser().is_file():
        raise UsageError(f"--from_csv={text}: no file {path} (a sweep's results.csv).")
    chosen = [task for task in tasks.split(",") if task] or None
    unknown = [task for task in chosen or [] if task not in PAPER_MB2PO_TABLE]
    if unknown:
        raise UsageError(f"--from_csv={text}: unknown task {unknown}; valid: "
                         f"{sorted(PAPER_MB2PO_TABLE)}.")
    return Path(path).expanduser(), chosen


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    f = flags.FLAGS
    setup_logging()
    root = Path(f.workdir).expanduser()
    scale = f.scale
    try:
        install_stop_controls(f.time_limit)
        if os.environ.get(SCALE_ENV):
            # As experiments.run honours it: the sweep at that scale instead.
            scale = os.environ[SCALE_ENV]
            if scale not in SCALES:
                raise UsageError(f"{SCALE_ENV}={scale!r}: valid scales are {sorted(SCALES)}.")
            logger.warning("%s=%s: the sweep runs at scale %s instead of --scale=%s.",
                           SCALE_ENV, scale, scale, f.scale)
        if f.from_csv and not f.report_only:
            raise UsageError("--from_csv merges finished sweeps' results.csv into a table; it "
                             "runs nothing, so it needs --report_only.")
        if f.from_csv:
            out = repro_report.write_merged_report(
                root, [_parse_csv_source(text) for text in f.from_csv], list(f.arms), scale)
            print(f"report: {out}")
            return
        if f.report_only:
            out = repro_report.write_report(root)
            print(f"report: {out}")
            return
        unknown = [task for task in f.tasks if task not in PAPER_MB2PO_TABLE]
        if unknown:
            raise UsageError(f"--tasks: unknown {unknown}; valid: {sorted(PAPER_MB2PO_TABLE)}.")
        seeds = [int(seed) for seed in f.seeds]
        overrides = parse_overrides(f.set or [], paper_config(f.tasks[0]))
        variants = dict(parse_variant(text, paper_config(f.tasks[0])) for text in f.variant or [])
        # Every variant defined on this command line runs, after the --arms.
        arms = list(dict.fromkeys([*f.arms, *variants]))
        records = run_sweep(root, list(f.tasks), seeds, arms, scale,
                            overrides=overrides, datasets=_parse_datasets(f.dataset or []),
                            final_episodes=f.final_episodes, shard=_parse_shard(f.shard),
                            seed_programs=f.seed_programs, variants=variants)
    except StoppedAtLimit as stopped:
        print(f"sweep {stopped}")
        sys.exit(0)
    except InterruptedRun as interrupted:
        print(interrupted, file=sys.stderr)
        sys.exit(130)
    except ValueError as error:  # UsageError, DatasetError and config errors
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    except (RunMismatchError, DatasetNotFoundError, DatasetError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    counts = {}
    for record in records:
        counts[record["status"]] = counts.get(record["status"], 0) + 1
    print(f"sweep: {counts}; report: {root / repro_report.TABLE_FILE}")


def cli() -> None:
    flags.DEFINE_list("tasks", list(DEFAULT_TASKS), "Paper task names.")
    flags.DEFINE_list("seeds", ["0", "1", "2"], "Training seeds (evaluation seeds are fixed).")
    flags.DEFINE_list("arms", list(DEFAULT_ARMS), f"Arms besides pretraining: {list(ARMS)} "
                      f"(mopo: MOPO from scratch, opt-in) or a --variant's name.")
    flags.DEFINE_enum("scale", "cpu", list(SCALES), "paper, cpu (about 3 hours of a 2-core CPU "
                      "per task and seed, all its cells) or smoke (seconds; records tiny data "
                      "when a task's is missing).")
    flags.DEFINE_string("workdir", "runs/repro", "Sweep directory (cells, results, report).")
    flags.DEFINE_string("time_limit", None, TIME_LIMIT_HELP + " The stopped cell stays "
                        "unfinished (not failed).")
    flags.DEFINE_multi_string("set", None, "FIELD=VALUE config override for every cell, "
                              "e.g. --set=dynamics.early_stopping=True (repeatable).")
    flags.DEFINE_multi_string("variant", None, "NAME:FIELD=VALUE[,FIELD=VALUE...]: an extra "
                              "arm, MB2PO with these mb2po.*/dynamics.* overrides, from the same "
                              "pretrained checkpoints (an ablation; repeatable), e.g. "
                              "--variant=nll_mean:dynamics.nll_reduction=mean.")
    flags.DEFINE_multi_string("dataset", None, "TASK=DATASET: any dataset the run accepts "
                              "(hdf5:<path>, minari:<id>) for that task (repeatable).")
    flags.DEFINE_integer("final_episodes", None, "Episodes of each cell's final evaluation "
                         "(default 50; 2 at smoke scale).")
    flags.DEFINE_string("shard", "0/1", "I/N: run every N-th (task, seed) unit from the I-th; "
                        "'any': every unit, processes sharing the workdir taking the cells no "
                        "other process is running (balances uneven cells).")
    flags.DEFINE_enum("seed_programs", "auto", list(SEED_PROGRAMS),
                      "one: a unit's seeds train side by side as one vmapped program "
                      "(num_seeds); each: a program per seed; auto: 'one' for a new sweep of "
                      "consecutive seeds, an existing sweep's own choice otherwise.")
    flags.DEFINE_bool("report_only", False, "Only (re)write results.csv, table.md and the "
                      "PNGs from the finished cells.")
    flags.DEFINE_multi_string("from_csv", None, "PATH[:TASK,TASK...]: with --report_only, "
                              "write one table into --workdir (a new directory) from finished "
                              "sweeps' results.csv files, each task from one file; only "
                              "pretraining and --arms are kept (repeatable).")
    app.run(main)


if __name__ == "__main__":
    cli()
