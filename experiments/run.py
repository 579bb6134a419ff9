"""Runs an experiment: ``python -m experiments.run --config=hopper_mixed.py --workdir=DIR``.

The command line of :func:`mb2po_jax.pipeline.run`: every phase of paper
Algorithm 1 (``awac``, ``dynamics``, ``mb2po``; or ``dynamics`` and ``mopo``
with ``--config.algorithm=mopo``), checkpointed under ``DIR/checkpoints/`` and
resumed exactly when the same command runs again, then ``DIR/results.json``
and ``DIR/learning_curve.png``. Bare config names resolve to
``experiments/configs/``; override any field with ``--config.<field>=<value>``.
``MB2PO_SCALE=smoke`` (or ``cpu``, ``paper``) applies that scale to the
loaded config before the command line's overrides.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from absl import app, flags
from ml_collections import config_flags

from mb2po_jax import pipeline
from mb2po_jax.checkpoint import RunMismatchError
from mb2po_jax.data import DatasetError, DatasetNotFoundError
from mb2po_jax.pipeline.config import SCALE_ENV, apply_scale
from mb2po_jax.runner import InterruptedRun, TrainingDivergedError, WorkdirBusyError
from mb2po_jax.stopping import StoppedAtLimit

from experiments.common import (TIME_LIMIT_HELP, install_stop_controls, resolve_config_argv,
                                setup_logging)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    config, workdir = flags.FLAGS.config, flags.FLAGS.workdir
    if config is None or not workdir:
        raise app.UsageError("Both --config and --workdir are required.")
    setup_logging()
    try:
        install_stop_controls(flags.FLAGS.time_limit)
        if os.environ.get(SCALE_ENV):
            config = apply_scale(config, os.environ[SCALE_ENV],
                                 config_flags.get_override_values(flags.FLAGS["config"]))
        results = pipeline.run(config, workdir, extend=flags.FLAGS.extend)
    except StoppedAtLimit as stopped:
        print(stopped)
        sys.exit(0)
    except InterruptedRun as interrupted:
        print(interrupted, file=sys.stderr)
        sys.exit(130)
    except (pipeline.UsageError, RunMismatchError, DatasetNotFoundError, DatasetError,
            TrainingDivergedError, WorkdirBusyError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    score = results["normalized_score"]
    if "per_seed" in results:
        spread = ("return", "return_mean") if score is None else ("normalized score",
                                                                  "normalized_score")
        summary = (f"{spread[0]} {results[spread[1]]:.1f} ± "
                   f"{results[spread[1] + '_over_seeds_std']:.1f} over seeds {results['seeds']} "
                   f"({', '.join(f'{v:.1f}' for v in results[spread[1] + '_per_seed'])})")
    else:
        summary = (f"return {results['return_mean']:.1f} ± {results['return_std']:.1f}"
                   + ("" if score is None else f", normalized score {score:.1f}"))
    print(
        f"done: {results['dataset']} in {results['env_id']}: {summary}"
        f" after {results['steps']} steps ({results['wall_seconds']:.0f} s). "
        f"Results: {Path(workdir) / pipeline.RESULTS_FILE}"
    )


def cli() -> None:
    # Flags are defined here, not at import, so that the module can be imported
    # (tests, notebooks) beside other absl programs.
    config_flags.DEFINE_config_file(
        "config", None, "Config file: a name in experiments/configs/ or a path.", lock_config=True
    )
    flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and results.")
    flags.DEFINE_string("time_limit", None, TIME_LIMIT_HELP)
    flags.DEFINE_bool("extend", False,
                      f"Continue a workdir to a longer run: only {list(pipeline.EXTENDABLE)} may "
                      f"be raised; any other difference is refused.")
    try:
        argv = resolve_config_argv(sys.argv)
    except pipeline.UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    app.run(main, argv=argv)


if __name__ == "__main__":
    cli()
