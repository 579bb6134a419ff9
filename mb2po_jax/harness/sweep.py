"""A sweep: tasks x seeds x arms in one directory, run cell by cell.

Per (task, seed) unit the sweep runs the AWAC pretraining, then each arm
(:mod:`~mb2po_jax.harness.arms`), each a cell
(:mod:`~mb2po_jax.harness.cells`) skipped once finished, so a killed sweep
resumes where it stopped. The report (:mod:`~mb2po_jax.harness.report`) is
remade after every cell.

A cell this machine cannot hold (its memory or disk pre-flight refuses it),
or of a task whose dataset is missing, is left pending, so a re-run on a
larger machine or with the named fix takes it up; the other cells run, and
the sweep then raises with every refusal's message.

Sharing: ``shard=(I, N)`` runs every N-th unit, so N processes or machines
can share one directory (each unit's cells are written by one shard only);
``shard=None`` plans every unit, and processes sharing the directory take
the cells no other process is running.

Seed programs: ``one`` trains a unit's seeds side by side as ONE vmapped
program (``num_seeds``, :mod:`mb2po_jax.seeds`): the unit is then
``<task>/seeds<a>-<b>`` and each cell a run of all its seeds (one
compilation, one dataset copy, the seed axis sharded over the devices); the
rows, table and curves stay per seed. ``each`` runs a program per seed
(``<task>/seed<k>``); ``auto`` takes ``one`` for a new sweep of consecutive
seeds and keeps an existing sweep's choice.
"""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path
from typing import Any

from mb2po_jax.checkpoint import RESUME_SAFE_FIELDS
from mb2po_jax.data import DatasetNotFoundError
from mb2po_jax.harness.arms import (arm_table, parse_datasets, parse_overrides, parse_variant,
                                    task_config)
from mb2po_jax.harness.cells import (consecutive_seeds, plan, read_cell, run_cell,
                                     skip_cell)
from mb2po_jax.harness.names import PRETRAIN, SWEEP_FILE
from mb2po_jax.harness.report import write_report
from mb2po_jax.pipeline import ResourceError, UsageError, validate_config
from mb2po_jax.pipeline.config import PAPER_MB2PO_TABLE, paper_config
from mb2po_jax.runner import WorkdirBusyError
from mb2po_jax.stopping import StoppedAtLimit

logger = logging.getLogger(__name__)

DEFAULT_TASKS = ("hopper-mixed", "walker2d-mixed", "halfcheetah-mixed")
# Final-evaluation episodes per scale when final_episodes is not given.
FINAL_EPISODES = {"paper": 50, "cpu": 50, "smoke": 2}
SEED_PROGRAMS = ("auto", "one", "each")


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
    path = root / SWEEP_FILE
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
                record = skip_cell(cell, "pretraining diverged")
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
                        write_report(root)
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
                write_report(root)
        records.append(record)
    if report:
        write_report(root)
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


def resolve_seed_programs(root: Path, choice: str, seeds: list[int]) -> str:
    """'one' or 'each' for this sweep: ``choice``, or for 'auto' the sweep's
    recorded choice ('each' for sweeps made before it was recorded), else
    'one' where the seeds are consecutive."""
    if choice not in SEED_PROGRAMS:
        raise UsageError(f"--seed_programs={choice!r}: valid: {list(SEED_PROGRAMS)}.")
    path = root / SWEEP_FILE
    sweep = json.loads(path.read_text()) if path.is_file() else None
    recorded = None if sweep is None else sweep.get("seed_programs", "each")
    if choice == "auto":
        return recorded or ("one" if consecutive_seeds(seeds) and len(seeds) > 1 else "each")
    if recorded and recorded != choice:
        raise UsageError(f"--seed_programs={choice}: {root} is a sweep of seed_programs="
                         f"{recorded} (its cells are laid out so); use that, 'auto', or "
                         f"another --workdir.")
    return choice


def _write_sweep_file(root: Path, tasks, seeds, arms, scale, overrides, datasets,
                      seed_programs: str = "each", variants: dict | None = None) -> None:
    """What the sweep is, for the report (merged over shards and re-runs)."""
    path = root / SWEEP_FILE
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


def parse_shard(text: str) -> tuple[int, int] | None:
    """``"I/N"`` (``--shard``) -> (I, N); ``"any"`` -> None (every unit)."""
    if text == "any":
        return None
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise UsageError(f"--shard={text!r}: expected I/N, e.g. --shard=0/2.") from None
    if count < 1 or not 0 <= index < count:
        raise UsageError(f"--shard={text!r}: need 0 <= I < N.")
    return index, count


def run_sweep_from_flags(root: Path, tasks: list[str], seeds: list[str], arms: list[str],
                         scale: str, *, settings: list[str], variants: list[str],
                         datasets: list[str], final_episodes: int | None, shard: str,
                         seed_programs: str) -> list[dict[str, Any]]:
    """:func:`run_sweep` from the command line's texts: ``settings``
    (``--set`` FIELD=VALUE), ``variants`` (``--variant``), ``datasets``
    (``--dataset`` TASK=DATASET), ``shard`` (``--shard``), each checked first.
    Every variant given runs, after ``arms``."""
    unknown = [task for task in tasks if task not in PAPER_MB2PO_TABLE]
    if unknown:
        raise UsageError(f"--tasks: unknown {unknown}; valid: {sorted(PAPER_MB2PO_TABLE)}.")
    numbers = [int(seed) for seed in seeds]
    overrides = parse_overrides(settings, paper_config(tasks[0]))
    defined = dict(parse_variant(text, paper_config(tasks[0])) for text in variants)
    arms = list(dict.fromkeys([*arms, *defined]))
    return run_sweep(root, list(tasks), numbers, arms, scale,
                     overrides=overrides, datasets=parse_datasets(datasets),
                     final_episodes=final_episodes, shard=parse_shard(shard),
                     seed_programs=seed_programs, variants=defined)
