"""Runs an experiment: ``python -m experiments.run --config=hopper_mixed.py --workdir=DIR``.

Phases (each checkpointed with Orbax under ``DIR/checkpoints/<phase>/`` and
resumed exactly when the same command is run again):

1. ``awac``: offline AWAC pretraining on the dataset, with periodic evaluation.
2. final evaluation: ``DIR/results.json`` and ``DIR/learning_curve.png``.

(Dynamics training and MB2PO fine-tuning are the next phases; see the README.)

Bare config names resolve to ``experiments/configs/``; override any field with
``--config.<field>=<value>``. A workdir remembers its config and dataset
(``DIR/run.json``) and refuses to resume a different experiment.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import ml_collections
from absl import app, flags
from ml_collections import config_flags

from mb2po_jax.checkpoint import RunMismatchError, check_same_run
from mb2po_jax.data import DatasetError, DatasetNotFoundError
from mb2po_jax.metrics_logger import plot_learning_curve

from experiments.awac_phase import InterruptedRun, TrainingDivergedError, run_awac_phase
from experiments.common import UsageError, prepare_dataset, resolve_config_argv, setup_logging

RUN_FILE, RESULTS_FILE = "run.json", "results.json"


def validate_config(config: ml_collections.ConfigDict) -> None:
    """Fails fast on settings that would only break hours into a run."""
    chunk = config.train.steps_per_chunk
    positive = {
        "awac.num_steps": config.awac.num_steps,
        "awac.batch_size": config.awac.batch_size,
        "train.steps_per_chunk": chunk,
        "train.eval_every": config.train.eval_every,
        "train.checkpoint_every": config.train.checkpoint_every,
        "train.keep_checkpoints": config.train.keep_checkpoints,
        "eval.num_episodes": config.eval.num_episodes,
        "eval.num_envs": config.eval.num_envs,
    }
    for name, value in positive.items():
        if value < 1:
            raise UsageError(f"--config.{name}={value}: must be >= 1.")
    for name in ("awac.num_steps", "train.eval_every", "train.checkpoint_every"):
        value = positive[name]
        if value % chunk:
            raise UsageError(
                f"--config.{name}={value} is not a multiple of train.steps_per_chunk={chunk}: "
                f"training runs in whole chunks. Use a multiple of {chunk} "
                f"(e.g. {max(chunk, value // chunk * chunk)}) or change the chunk size."
            )


def _config_json(config: ml_collections.ConfigDict) -> dict[str, Any]:
    # Through JSON so tuples become lists, as they will read back from disk.
    return json.loads(config.to_json())


def run(config: ml_collections.ConfigDict, workdir: str | Path) -> dict[str, Any]:
    """Runs (or resumes) every phase and returns the results dict it writes."""
    session_start = time.time()
    validate_config(config)
    workdir = Path(workdir).expanduser().absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    config_json = _config_json(config)
    run_path = workdir / RUN_FILE
    saved = json.loads(run_path.read_text()) if run_path.exists() else None
    if saved is not None:
        # Config first: it needs no dataset, so a wrong command fails at once.
        check_same_run(saved["config"], config_json, workdir)

    data = prepare_dataset(config)
    if saved is not None:
        check_same_run(saved["config"], config_json, workdir,
                       saved_fingerprint=saved["dataset"]["fingerprint"],
                       current_fingerprint=data.info.fingerprint)
    else:
        run_path.write_text(json.dumps(
            {"config": config_json, "dataset": data.info.to_dict(), "env_id": data.env_id},
            indent=2))
    meta = {"config": config_json, "dataset": data.info.to_dict(), "env_id": data.env_id}

    awac = run_awac_phase(config, workdir, data, meta=meta, session_start=session_start)

    final = awac.final_eval
    results = {
        "normalized_score": final["normalized_score"],
        "normalized_score_std": final["normalized_score_std"],
        "return_mean": final["return_mean"],
        "return_std": final["return_std"],
        "returns": final["returns"],
        "env_id": data.env_id,
        "dataset": config.dataset,
        "dataset_source": data.info.source,
        "dataset_fingerprint": data.info.fingerprint,
        "num_transitions": data.info.num_transitions,
        "steps": awac.steps,
        "eval_episodes": final["num_episodes"],
        "wall_seconds": awac.wall_seconds,
        "phases": {"awac": {"steps": awac.steps, "normalized_score": final["normalized_score"],
                            "return_mean": final["return_mean"]}},
        "seed": config.seed,
    }
    (workdir / RESULTS_FILE).write_text(json.dumps(results, indent=2))
    plot_learning_curve(workdir / "awac", prefix="eval", out=workdir / "learning_curve.png")
    return results


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    config, workdir = flags.FLAGS.config, flags.FLAGS.workdir
    if config is None or not workdir:
        raise app.UsageError("Both --config and --workdir are required.")
    setup_logging()
    try:
        results = run(config, workdir)
    except InterruptedRun as interrupted:
        print(interrupted, file=sys.stderr)
        sys.exit(130)
    except (UsageError, RunMismatchError, DatasetNotFoundError, DatasetError,
            TrainingDivergedError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    score = results["normalized_score"]
    print(
        f"done: {results['dataset']} in {results['env_id']}: return "
        f"{results['return_mean']:.1f} ± {results['return_std']:.1f}"
        + ("" if score is None else f", normalized score {score:.1f}")
        + f" after {results['steps']} steps ({results['wall_seconds']:.0f} s). "
        f"Results: {Path(workdir) / RESULTS_FILE}"
    )


def cli() -> None:
    # Flags are defined here, not at import, so that the module can be imported
    # (tests, notebooks) beside other absl programs.
    config_flags.DEFINE_config_file(
        "config", None, "Config file: a name in experiments/configs/ or a path.", lock_config=True
    )
    flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and results.")
    try:
        argv = resolve_config_argv(sys.argv)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    app.run(main, argv=argv)


if __name__ == "__main__":
    cli()
