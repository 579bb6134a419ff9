"""Runs an experiment: ``python -m experiments.run --config=hopper_mixed.py --workdir=DIR``.

Phases (paper Algorithm 1), each checkpointed with Orbax under
``DIR/checkpoints/<phase>/`` and resumed exactly when the same command runs
again:

1. ``awac``: offline AWAC pretraining, with periodic evaluation;
2. ``dynamics``: the probabilistic dynamics ensemble, with held-out validation;
3. ``mb2po``: MB2PO fine-tuning iterations in the conservative model MDP;
4. the final evaluation: ``DIR/results.json`` (AWAC-only and AWAC+MB2PO
   scores side by side) and ``DIR/learning_curve.png``.

``MB2PO_SCALE=smoke`` (or ``cpu``, ``paper``) in the environment applies that
scale of ``experiments.configs.base.SCALES`` to whatever config is loaded,
after the config file and before the command line's overrides, and says so
in the log: the documentation's tests run its commands this way, in seconds.

``mb2po.num_iterations=0`` stops after AWAC. ``algorithm=mopo`` runs MOPO
instead: phases ``dynamics`` and ``mopo`` (SAC from scratch in the same
conservative MDP, ``config.mopo``). ``init.awac_workdir`` /
``init.dynamics_workdir`` start those phases from another run's checkpoints.
Bare config names resolve to ``experiments/configs/``; override any field
with ``--config.<field>=<value>``. A workdir remembers its config and dataset
(``DIR/run.json``) and refuses to resume a different experiment.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import ml_collections
from absl import app, flags
from ml_collections import config_flags

from mb2po_jax.agents.awac import AWACConfig
from mb2po_jax.agents.sac import SACConfig
from mb2po_jax.checkpoint import RunMismatchError, check_same_run, flatten_config
from mb2po_jax.data import DatasetError, DatasetNotFoundError
from mb2po_jax.envs import get_termination_fn
from mb2po_jax.mb2po import BUFFER_CHECKPOINTS
from mb2po_jax.metrics_logger import plot_learning_curve, read_series
from mb2po_jax.model.dynamics import DynamicsConfig
from mb2po_jax.model.penalties import PENALTIES
from mb2po_jax.model.rollout import NEXT_STATE_CHOICES
from mb2po_jax import seeds
from mb2po_jax.transitions import to_device

from experiments import phases
from experiments.configs.base import get_base_config
from experiments.common import (SCALE_ENV, TIME_LIMIT_HELP, ResourceError, UsageError,
                                apply_scale, install_stop_controls, prepare_dataset,
                                resolve_config_argv, setup_logging)
from mb2po_jax.stopping import StoppedAtLimit
from mb2po_jax.runner import (InterruptedRun, TrainingDivergedError, WorkdirBusyError, run_phase,
                              workdir_lock)

logger = logging.getLogger(__name__)

RUN_FILE, RESULTS_FILE = "run.json", "results.json"
# Lengths --extend may raise, and the phases that would have to be redone if
# they already ran (so raising the length is refused there).
EXTENDABLE = ("awac.num_steps", "mb2po.num_iterations", "mopo.num_iterations")
LATER_PHASES = {"awac.num_steps": ("dynamics", "mb2po")}
# A field added to the code after a workdir was made resumes at its default.
DEFAULTS = json.loads(get_base_config().to_json())


def _fail(field: str, value: Any, why: str) -> UsageError:
    return UsageError(f"--config.{field}={value!r}: {why}")


def validate_config(config: ml_collections.ConfigDict) -> None:
    """Fails fast on settings that would only break hours into a run."""
    unknown = sorted(set(flatten_config(_config_json(config))) - set(flatten_config(DEFAULTS)))
    if unknown:
        raise UsageError(
            f"Config field(s) {unknown} are not read by anything (a typo, or a setting "
            f"from another version); every field a run reads is in "
            f"experiments/configs/base.py. Remove or rename them.")
    if config.seed_batching not in seeds.BATCHINGS:
        raise _fail("seed_batching", config.seed_batching, f"valid: {list(seeds.BATCHINGS)}.")
    if config.algorithm not in phases.ALGORITHMS:
        raise _fail("algorithm", config.algorithm, f"valid: {list(phases.ALGORITHMS)}.")
    for section, cls in (("awac", AWACConfig), ("dynamics", DynamicsConfig),
                         ("mopo.sac", SACConfig)):
        try:
            cls.from_dict(config[section] if "." not in section else config.mopo.sac)
        except (TypeError, ValueError) as error:
            raise UsageError(f"--config.{section}: {error}") from None
    chunk = config.train.steps_per_chunk
    mopo = config.algorithm == phases.MOPO
    name = phases.MOPO if mopo else phases.MB2PO
    mb = config[name]
    fine_tune = mb.num_iterations > 0
    positive = {
        "num_seeds": config.num_seeds,
        "train.steps_per_chunk": chunk,
        "train.eval_every": config.train.eval_every,
        "train.checkpoint_every": config.train.checkpoint_every,
        "train.keep_checkpoints": config.train.keep_checkpoints,
        "eval.num_episodes": config.eval.num_episodes,
        "eval.num_envs": config.eval.num_envs,
    }
    if not mopo:  # MOPO trains SAC from scratch: no AWAC phase
        positive.update({"awac.num_steps": config.awac.num_steps,
                         "awac.batch_size": config.awac.batch_size})
    if fine_tune:
        positive.update({
            "dynamics.num_steps": config.dynamics.num_steps,
            "dynamics.batch_size": config.dynamics.batch_size,
            f"{name}.horizon": mb.horizon,
            f"{name}.rollout_samples": mb.rollout_samples,
            f"{name}.updates_per_iteration": mb.updates_per_iteration,
            f"{name}.buffer_iterations": mb.buffer_iterations,
            f"{name}.block_size": mb.block_size,
            f"{name}.eval_every": mb.eval_every,
            f"{name}.checkpoint_every": mb.checkpoint_every,
            f"{name}.keep_checkpoints": mb.keep_checkpoints,
        })
        if mopo:
            positive["mopo.batch_size"] = mb.batch_size
    for field, value in positive.items():
        if value < 1:
            raise _fail(field, value, "must be >= 1.")
    if fine_tune:
        if mb.next_state not in NEXT_STATE_CHOICES:
            raise _fail(f"{name}.next_state", mb.next_state,
                        f"valid: {list(NEXT_STATE_CHOICES)}.")
        if mb.buffer_checkpoint not in BUFFER_CHECKPOINTS:
            raise _fail(f"{name}.buffer_checkpoint", mb.buffer_checkpoint,
                        f"valid: {list(BUFFER_CHECKPOINTS)}.")
        problem = phases.model_choice_problem(name, mb.model, mb.start_states, mb.horizon)
        if problem:
            raise _fail(*problem)
    if mopo and mb.num_iterations < 1:
        raise _fail("mopo.num_iterations", mb.num_iterations, "must be >= 1 (MOPO is the whole run).")
    if mb.num_iterations < 0:
        raise _fail("mb2po.num_iterations", mb.num_iterations, "must be >= 0 (0 runs AWAC only).")
    multiples = ["train.eval_every", "train.checkpoint_every"]
    multiples += [] if mopo else ["awac.num_steps"]
    multiples += ["dynamics.num_steps"] if fine_tune else []
    for field in multiples:
        value = positive[field]
        if value % chunk:
            raise _fail(field, value,
                        f"not a multiple of train.steps_per_chunk={chunk}: training runs in whole "
                        f"chunks. Use a multiple of {chunk} (e.g. {max(chunk, value // chunk * chunk)}) "
                        f"or change the chunk size.")
    if not fine_tune:
        return
    if mb.rollout_samples % mb.horizon:
        raise _fail(f"{name}.rollout_samples", mb.rollout_samples,
                    f"must be a multiple of {name}.horizon={mb.horizon} (samples / h start states).")
    fraction, field = (mb.real_ratio, "mopo.real_ratio") if mopo else (mb.omega, "mb2po.omega")
    if not 0.0 <= fraction <= 1.0:
        raise _fail(field, fraction, "the real-data fraction must lie in [0, 1].")
    if mb.uncertainty not in PENALTIES:
        raise _fail(f"{name}.uncertainty", mb.uncertainty,
                    f"valid penalties: {sorted(PENALTIES)} (register more in "
                    f"mb2po_jax/model/penalties.py).")
    if not 1 <= config.dynamics.num_elites <= config.dynamics.num_members:
        raise _fail("dynamics.num_elites", config.dynamics.num_elites,
                    f"must lie in [1, dynamics.num_members={config.dynamics.num_members}].")


def _config_json(config: ml_collections.ConfigDict) -> dict[str, Any]:
    # Through JSON so tuples become lists, as they will read back from disk.
    return json.loads(config.to_json())


def _eval_summary(result: dict[str, Any]) -> dict[str, Any]:
    keys = ("normalized_score", "normalized_score_std", "return_mean", "return_std", "returns")
    return {key: result[key] for key in keys}


def _seed_outcome(outcome, index: int | None):
    """One seed's view of a phase outcome (the outcome itself without seeds)."""
    if index is None:
        return outcome
    # Its own count (a seed whose dynamics stopped early has fewer steps).
    return dataclasses.replace(outcome, final_eval=outcome.final_eval[index],
                               steps=int(phases.counts(outcome.state)[index]))


def run(config: ml_collections.ConfigDict, workdir: str | Path, *,
        extend: bool = False) -> dict[str, Any]:
    """Runs (or resumes) every phase and returns the results dict it writes.

    ``extend``: the config may raise the run's length (:data:`EXTENDABLE`)
    over the workdir's; the run continues from its checkpoints to the new
    length (the same numbers as a run made that long from the start).

    Raises:
        WorkdirBusyError: another process is running in ``workdir``.
    """
    validate_config(config)
    workdir = Path(workdir).expanduser().absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    with workdir_lock(workdir):
        return _run_locked(config, workdir, extend)


def _unused_sections(config_json: dict[str, Any]) -> tuple[str, ...]:
    """Config sections the run's algorithm never reads. A difference there is
    not a different experiment: e.g. a scale that gives MOPO other lengths
    leaves an MB2PO workdir resumable."""
    return ("awac", "mb2po") if config_json.get("algorithm") == phases.MOPO else (phases.MOPO,)


def _check_same_run(saved: dict[str, Any], current: dict[str, Any], workdir: Path,
                    **fingerprints) -> None:
    """:func:`check_same_run` over the sections the current run reads (its
    ``algorithm`` field is compared too, so switching algorithms is refused)."""
    unused = _unused_sections(current)
    used = lambda config: {k: v for k, v in config.items() if k not in unused}  # noqa: E731
    check_same_run(used(saved), used(current), workdir, defaults=DEFAULTS, **fingerprints)


def _extension(saved: dict[str, Any], current: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """The config ``saved`` with the lengths ``current`` extends; anything else
    that differs is left for :func:`check_same_run` to refuse."""
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


def _run_locked(config: ml_collections.ConfigDict, workdir: Path, extend: bool) -> dict[str, Any]:
    config_json = _config_json(config)
    run_path = workdir / RUN_FILE
    saved = json.loads(run_path.read_text()) if run_path.exists() else None
    if saved is not None:
        if extend:
            extended = _extension(saved["config"], config_json, workdir)
            if extended != saved["config"]:
                # What is left must be the same run; then the longer length
                # becomes the workdir's.
                _check_same_run(extended, config_json, workdir)
                saved = {**saved, "config": extended,
                         "extended": saved.get("extended", []) + [
                             {f: flatten_config(config_json)[f] for f in EXTENDABLE}]}
                run_path.write_text(json.dumps(saved, indent=2))
        # Config first: it needs no dataset, so a wrong command fails at once.
        _check_same_run(saved["config"], config_json, workdir)

    data = prepare_dataset(config)
    mopo = config.algorithm == phases.MOPO
    fine_tune = mopo or config.mb2po.num_iterations > 0
    if fine_tune:
        try:
            get_termination_fn(data.env_id)
        except ValueError as error:
            raise UsageError(f"Model rollouts need a termination function: {error}") from None
        # Before any training, and before run.json binds the workdir to this
        # config (the fix the message names must be accepted on a re-run): a
        # checkpoint that cannot be written would only fail hours in, at
        # fine-tuning's first save.
        section = config.algorithm if mopo else phases.MB2PO
        problem = phases.checkpoint_disk_problem(
            config, section, data.info.obs_dim, data.info.act_dim, workdir)
        if problem:
            raise ResourceError(problem)
        memory = phases.buffer_memory_problem(config, section, data.info.obs_dim,
                                              data.info.act_dim)
        if memory and memory[1]:
            raise ResourceError(memory[0])
        if memory:
            logger.warning(memory[0])

    if saved is not None:
        _check_same_run(saved["config"], config_json, workdir,
                        saved_fingerprint=saved["dataset"]["fingerprint"],
                        current_fingerprint=data.info.fingerprint)
    else:
        run_path.write_text(json.dumps(
            {"config": config_json, "dataset": data.info.to_dict(), "env_id": data.env_id},
            indent=2))
    meta = {"config": config_json, "dataset": data.info.to_dict(), "env_id": data.env_id}
    common = dict(meta=meta, progress_bar=config.train.progress_bar,
                  tensorboard=config.train.tensorboard)
    # One copy on device, replicated over the devices the seeds are split on.
    dataset = phases.shared(config, to_device(data.transitions))

    def initial(source: str | None, phase):
        return phases.restore_from_workdir(source, phase, data) if source else None

    outcomes = {}
    if not mopo:
        awac_phase = phases.awac_phase(config, data, dataset)
        outcomes[phases.AWAC] = run_phase(
            awac_phase, workdir, initial_state=initial(config.init.awac_workdir, awac_phase),
            **common)
    if fine_tune:
        dyn_phase = phases.dynamics_phase(config, data, dataset)
        dyn = run_phase(dyn_phase, workdir,
                        initial_state=initial(config.init.dynamics_workdir, dyn_phase), **common)
        outcomes[phases.DYNAMICS] = dyn
        if mopo:
            outcomes[phases.MOPO] = run_phase(
                phases.mopo_phase(config, data, dataset, dyn.state), workdir, **common)
        else:
            mb_phase = phases.mb2po_phase(config, data, dataset, outcomes[phases.AWAC].state,
                                          dyn.state)
            outcomes[phases.MB2PO] = run_phase(mb_phase, workdir, **common)

    last = phases.MOPO if mopo else phases.MB2PO if fine_tune else phases.AWAC
    run_seeds = phases.seeds_of(config)
    if not run_seeds:
        results = _results(config, data, outcomes, last, config.seed)
    else:
        # Per seed, what its own single-seed run would report; on top, the
        # mean and the spread over seeds of every score.
        per_seed = [_results(config, data, {name: _seed_outcome(outcome, i)
                                            for name, outcome in outcomes.items()}, last, seed)
                    for i, seed in enumerate(run_seeds)]
        results = {key: value for key, value in per_seed[0].items()
                   if key not in _SEED_SPECIFIC}
        results.update(seeds.summarize(per_seed, _SCORES), seeds=list(run_seeds),
                       num_seeds=len(run_seeds), per_seed=per_seed)
    (workdir / RESULTS_FILE).write_text(json.dumps(results, indent=2))
    _plot(workdir, config, last)
    return results


# Scores averaged over seeds in a vmapped run's results.json; the per-episode
# fields stay per seed (results["per_seed"]).
_SCORES = ("normalized_score", "return_mean", "awac_normalized_score", "mb2po_normalized_score",
           "mopo_normalized_score")
_SEED_SPECIFIC = ("normalized_score_std", "return_std", "returns", "phases", "seed")


def _results(config: ml_collections.ConfigDict, data, outcomes: dict[str, Any], last: str,
             seed: int) -> dict[str, Any]:
    """results.json of one seed."""
    mopo = last == phases.MOPO
    final = outcomes[last].final_eval
    awac = outcomes.get(phases.AWAC)
    return {
        **_eval_summary(final),
        "env_id": data.env_id,
        "dataset": config.dataset,
        "dataset_source": data.info.source,
        "dataset_fingerprint": data.info.fingerprint,
        "num_transitions": data.info.num_transitions,
        "algorithm": config.algorithm,
        "steps": outcomes[last].steps if mopo else awac.steps,
        "eval_episodes": final["num_episodes"],
        "wall_seconds": sum(outcome.wall_seconds for outcome in outcomes.values()),
        "awac_normalized_score": awac.final_eval["normalized_score"] if awac else None,
        "mb2po_normalized_score": final["normalized_score"] if last == phases.MB2PO else None,
        "mopo_normalized_score": final["normalized_score"] if mopo else None,
        "phases": {
            name: {"steps": outcome.steps, "wall_seconds": outcome.wall_seconds,
                   **(_eval_summary(outcome.final_eval) if name != phases.DYNAMICS
                      else outcome.final_eval)}
            for name, outcome in outcomes.items()
        },
        "seed": seed,
    }


def _plot(workdir: Path, config: ml_collections.ConfigDict, last: str) -> None:
    """The policy's evaluations against gradient steps: AWAC's, then MB2PO's
    continuing the axis (one iteration = mb2po.updates_per_iteration steps);
    or MOPO's alone. With several seeds, one line per seed and phase (the
    first seed's AWAC line solid)."""
    where = [(f"seed_{s}", f"seed {s} ") for s in phases.seeds_of(config)] or [("", "")]
    out = workdir / "learning_curve.png"
    if last == phases.MOPO:
        per = config.mopo.updates_per_iteration
        extra = {f"{name}MOPO": read_series(workdir / phases.MOPO / sub / "metrics_eval.csv",
                                            "normalized_score") for sub, name in where[1:]}
        plot_learning_curve(workdir / phases.MOPO / where[0][0], prefix="eval", out=out,
                            extra_lines=extra, label=f"{where[0][1]}MOPO (SAC in the model MDP)",
                            title=f"{_short_dataset(config.dataset)}: MOPO evaluations",
                            xlabel=f"iteration ({per} updates each)")
        return
    extra = {}
    for i, (sub, name) in enumerate(where):
        if i:
            extra[f"{name}AWAC"] = read_series(
                workdir / phases.AWAC / sub / "metrics_eval.csv", "normalized_score")
        mb2po_csv = workdir / phases.MB2PO / sub / "metrics_eval.csv"
        if last == phases.MB2PO and mb2po_csv.exists():
            iterations, scores = read_series(mb2po_csv, "normalized_score")
            if iterations:
                offset, per = config.awac.num_steps, config.mb2po.updates_per_iteration
                extra[f"{name}MB2PO fine-tuning"] = ([offset + i * per for i in iterations],
                                                     scores)
    plot_learning_curve(workdir / phases.AWAC / where[0][0], prefix="eval", out=out,
                        extra_lines=extra, label=f"{where[0][1]}AWAC pretraining",
                        title=f"{_short_dataset(config.dataset)}: evaluations",
                        xlabel="gradient steps")


def _short_dataset(dataset: str) -> str:
    """The dataset as a plot title names it: a file by its name, not its path."""
    scheme, _, rest = dataset.partition(":")
    return f"{scheme}:{Path(rest).name}" if scheme == "hdf5" and rest else dataset


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
        results = run(config, workdir, extend=flags.FLAGS.extend)
    except StoppedAtLimit as stopped:
        print(stopped)
        sys.exit(0)
    except InterruptedRun as interrupted:
        print(interrupted, file=sys.stderr)
        sys.exit(130)
    except (UsageError, RunMismatchError, DatasetNotFoundError, DatasetError,
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
        f"Results: {Path(workdir) / RESULTS_FILE}"
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
                      f"Continue a workdir to a longer run: only {list(EXTENDABLE)} may be "
                      f"raised; any other difference is refused.")
    try:
        argv = resolve_config_argv(sys.argv)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    app.run(main, argv=argv)


if __name__ == "__main__":
    cli()
