"""A workdir's identity: ``run.json`` binds it to one config and dataset; a
different experiment is refused, and ``--extend`` may only raise the run's
lengths (:data:`EXTENDABLE`)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from mb2po_jax.checkpoint import check_same_run, flatten_config
from mb2po_jax.pipeline.errors import UsageError
# A field added to the code after a workdir was made resumes at its default.
from mb2po_jax.pipeline.settings import DEFAULTS, MOPO

RUN_FILE = "run.json"
# Lengths --extend may raise, and the phases that would have to be redone if
# they already ran (so raising the length is refused there).
EXTENDABLE = ("awac.num_steps", "mb2po.num_iterations", "mopo.num_iterations")
LATER_PHASES = {"awac.num_steps": ("dynamics", "mb2po")}
# Other workdirs a run starts phases from (mb2po_jax.pipeline.warm_start).
INIT_FIELDS = ("awac_workdir", "dynamics_workdir")


def _unused_sections(config_json: dict[str, Any]) -> tuple[str, ...]:
    """Config sections the run's algorithm never reads. A difference there is
    not a different experiment: e.g. a scale that gives MOPO other lengths
    leaves an MB2PO workdir resumable."""
    return ("awac", "mb2po") if config_json.get("algorithm") == MOPO else (MOPO,)


def check_same_run_in(saved: dict[str, Any], current: dict[str, Any], workdir: Path,
                      saved_workdir: str | None = None, **fingerprints) -> None:
    """:func:`check_same_run` over the sections the current run reads (its
    ``algorithm`` field is compared too, so switching algorithms is refused).

    ``saved_workdir``: where the workdir was when ``saved`` was written
    (``run.json``'s ``workdir``). Given, the ``init.*_workdir`` paths are
    compared relative to their own workdir, so a tree of runs moved together
    (a harness sweep exported and imported elsewhere) still resumes."""
    unused = _unused_sections(current)
    used = lambda config: {k: v for k, v in config.items() if k not in unused}  # noqa: E731
    if saved_workdir is not None:
        saved, current = _relative_init(saved, saved_workdir), _relative_init(current, workdir)
    check_same_run(used(saved), used(current), workdir, defaults=DEFAULTS, **fingerprints)


def _relative_init(config: dict[str, Any], workdir: str | Path) -> dict[str, Any]:
    """``config`` with its ``init.*_workdir`` paths relative to ``workdir``."""
    init = dict(config.get("init") or {})
    for field in INIT_FIELDS:
        if init.get(field):
            init[field] = os.path.relpath(Path(init[field]).expanduser().absolute(), workdir)
    return {**config, "init": init}


def extension(saved: dict[str, Any], current: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """The config ``saved`` with the lengths ``current`` extends; anything else
    that differs is left for :func:`check_same_run_in` to refuse."""
    old, new = flatten_config(saved), flatten_config(current)
    out = json.loads(json.dumps(saved))
    unused = _unused_sections(current)
    for field in EXTENDABLE:
        if field.split(".")[0] in unused:
            continue  # not this run's length
        if field not in old or old[field] == new.get(field):
            continue
        if new[field] < old[field]:
            raise UsageError(
                f"--extend: --config.{field}={new[field]} is below the workdir's {old[field]}; "
                f"a run can only be made longer. Use a new --workdir for a shorter run.")
        later = [p for p in LATER_PHASES.get(field, ()) if (workdir / "checkpoints" / p).is_dir()]
        if later:
            raise UsageError(
                f"--extend: cannot raise {field} ({old[field]} -> {new[field]}) in {workdir}: "
                f"its {later} phase(s) already started from the shorter run's result and would "
                f"not be redone. Extend a run before it fine-tunes, or start the longer run "
                f"in a new --workdir (init.awac_workdir can reuse this run's checkpoints).")
        section, name = field.split(".")
        out[section][name] = new[field]
    return out
