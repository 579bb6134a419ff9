"""The loop every training phase shares: chunks, checks, evaluation, checkpoints.

A phase advances its state in chunks (a chunk is one jitted call: K scanned
AWAC or dynamics updates, or one MB2PO iteration). After each chunk its
metrics cross to the host once, are checked by the divergence guard, and are
logged; at its intervals the phase evaluates and checkpoints. The key of chunk
``c`` is a function of the phase's key and ``c`` alone, so a phase resumed
from a checkpoint computes exactly what the uninterrupted run would have.

Ctrl-C saves a checkpoint of the last finished chunk before exiting; so does
a stop at a time limit or on SIGTERM / SIGUSR1 (:mod:`mb2po_jax.stopping`),
at the next chunk boundary; a diverged chunk stops the run before it is
saved, so the last checkpoint is the last good state.

A phase of several vmapped seeds (``Phase.seeds``, :mod:`mb2po_jax.seeds`)
is one state with a leading seed axis: its metrics carry that axis, each
seed's are checked by the guard and logged under ``<phase>/seed_<s>/``, and
its evaluation returns one result per seed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import jax
import numpy as np

from mb2po_jax.checkpoint import Checkpointer
from mb2po_jax.stopping import STOP, StoppedAtLimit
from mb2po_jax.metrics_logger import MetricsLogger

logger = logging.getLogger(__name__)


# A chunk metric a seed-stacked phase may add: 0 for a seed that no longer
# trains (e.g. stopped early while the others go on); its chunk is neither
# logged nor guarded.
ACTIVE = "active"


class TrainingDivergedError(RuntimeError):
    """Training statistics went non-finite or ran away; the last good checkpoint is kept."""


class WorkdirBusyError(RuntimeError):
    """Another process holds the workdir (see :func:`workdir_lock`)."""


@contextlib.contextmanager
def workdir_lock(workdir: Path, name: str = ".lock") -> Iterator[None]:
    """Holds ``workdir/<name>`` (an exclusive ``flock``) while a run trains there.

    Two processes training into one workdir would interleave checkpoints and
    logs; the second is refused at once, naming the holder. The OS releases
    the lock when its holder exits, however it exits (``kill -9`` included),
    so a stale lock file never blocks a later run.
    """
    handle = open(Path(workdir) / name, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "pid unknown"
        handle.close()
        raise WorkdirBusyError(
            f"Workdir {workdir} is in use by another process ({holder}): two processes "
            f"training into one workdir would overwrite each other's checkpoints. Wait for "
            f"it to finish or stop it (it resumes from its last checkpoint), or pass "
            f"another --workdir.") from None
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


class InterruptedRun(Exception):
    """Ctrl-C during training; a checkpoint of the last finished chunk was saved."""

    def __init__(self, phase: str, step: int) -> None:
        super().__init__(
            f"Interrupted during phase '{phase}'; saved a checkpoint at step {step}. "
            f"Run the same command again to resume from there."
        )


@dataclasses.dataclass
class Phase:
    """What a phase is; the runner does the rest.

    Attributes:
        name: directory and log name (``checkpoints/<name>``, ``<name>/metrics_*.csv``).
        total: progress units to reach (gradient steps, iterations).
        chunk: units advanced per ``advance`` call; divides ``total``.
        eval_every, checkpoint_every: intervals in units (multiples of ``chunk``).
        init: builds the initial state.
        abstract: the state's abstract structure, for restoring.
        progress: units done in a state.
        advance: ``(state, chunk_index) -> (state, metrics)``, jitted inside;
            metrics may stay on device (the runner fetches them).
        evaluate: ``state -> dict`` of an evaluation (scalars are logged).
        guard: ``(metrics, step) -> None``; raises TrainingDivergedError.
        finalize: applied to the state after the last chunk, before the final
            save (e.g. elite selection). Idempotent: a run stopped during its
            final evaluation applies it again when resumed.
        stopped: ``state -> bool``; True ends the phase before ``total``
            (early stopping). Checked after every chunk and on resume.
        postfix: metric names shown on the progress bar.
        unit: progress-bar unit name.
        keep_checkpoints: checkpoints kept.
        to_checkpoint, from_checkpoint: what a checkpoint holds of a state,
            and ``(saved, finished) -> state`` back from it (both the
            identity by default; MB2PO can leave its model buffer out and
            rebuild it). ``finished`` is True when the checkpoint is of the
            phase's last step and holds its final evaluation: the state is
            then only reported (progress, evaluation), never advanced, so a
            costly rebuild may be skipped. ``abstract`` describes the
            checkpoint's form.
        seeds: the seeds of a seed-stacked state (``()``: one seed, no seed
            axis). Then ``advance``'s metrics are ``[N]`` arrays, ``evaluate``
            returns a list of N results and ``guard`` sees one seed's metrics.
    """

    name: str
    total: int
    chunk: int
    eval_every: int
    checkpoint_every: int
    init: Callable[[], Any]
    abstract: Callable[[], Any]
    progress: Callable[[Any], int]
    advance: Callable[[Any, int], tuple[Any, dict]]
    evaluate: Callable[[Any], dict[str, Any]]
    guard: Callable[[dict[str, float], int], None]
    finalize: Callable[[Any], Any] = lambda state: state
    stopped: Callable[[Any], bool] = lambda state: False
    postfix: tuple[str, ...] = ()
    unit: str = "step"
    keep_checkpoints: int = 3
    seeds: tuple[int, ...] = ()
    to_checkpoint: Callable[[Any], Any] = lambda state: state
    from_checkpoint: Callable[[Any, bool], Any] = lambda saved, finished: saved


@dataclasses.dataclass
class PhaseOutcome:
    state: Any
    steps: int
    wall_seconds: float  # this phase's, summed over every process that ran it (resumes)
    final_eval: Any  # the evaluation at the last step (a list, one per seed, for seeds)


def check_finite(phase: str, metrics: dict[str, float], step: int,
                 remedy: str = "lower the learning rates or check the dataset's rewards") -> None:
    bad = [name for name, value in metrics.items() if not np.isfinite(value)]
    if bad:
        raise TrainingDivergedError(
            f"Phase '{phase}' diverged in the chunk ending at step {step}: non-finite "
            f"{', '.join(f'{name}={metrics[name]}' for name in bad)}. The last good "
            f"checkpoint is kept; {remedy}."
        )


def scalars(result: dict[str, Any]) -> dict[str, float]:
    """The loggable entries of an evaluation result."""
    return {k: v for k, v in result.items()
            if isinstance(v, (int, float, np.floating, np.integer)) and not isinstance(v, bool)}


def run_phase(
    phase: Phase,
    workdir: Path,
    *,
    meta: dict[str, Any],
    progress_bar: bool,
    tensorboard: bool,
    initial_state: Callable[[Checkpointer], Any] | None = None,
) -> PhaseOutcome:
    """Runs (or resumes, or skips if finished) one phase in ``workdir``.

    Args:
        meta: JSON stored with every checkpoint (config, dataset).
        initial_state: optional ``checkpointer -> state`` used instead of
            ``phase.init`` when this workdir has no checkpoint of the phase
            (starting from another run's checkpoint).
    """
    start_time = time.time()
    with Checkpointer(workdir / "checkpoints" / phase.name, phase.keep_checkpoints) as checkpointer:
        wall_before, last_eval, last_eval_step = 0.0, None, None
        if checkpointer.latest_step() is not None:
            restored, saved = checkpointer.restore_newest_readable(phase.abstract())
            wall_before, last_eval = float(saved.get("wall_seconds", 0.0)), saved.get("last_eval")
            # A run stopped during its final evaluation saved its last step with
            # an earlier evaluation: that one is not the final one, so it is made
            # again. (Checkpoints from before this field: the step's own.)
            last_eval_step = saved.get("last_eval_step", saved["step"])
            if last_eval_step != saved["step"]:
                last_eval, last_eval_step = None, None
            state = phase.from_checkpoint(
                restored, last_eval is not None and saved["step"] >= phase.total)
            logger.info("Resuming %s from step %d.", phase.name, phase.progress(state))
        else:
            state = initial_state(checkpointer) if initial_state else phase.init()
        step = phase.progress(state)
        done = lambda: step >= phase.total or phase.stopped(state)  # noqa: E731
        if done() and last_eval is not None:
            # Finished: report the time the phase took, not this no-op.
            return PhaseOutcome(state, step, wall_before, last_eval)

        def save(step: int) -> float:
            seconds = wall_before + time.time() - start_time
            checkpointer.save(step, phase.to_checkpoint(state), {
                **meta, "phase": phase.name, "step": step, "wall_seconds": seconds,
                "last_eval": last_eval, "last_eval_step": last_eval_step})
            return seconds

        wall_seconds = wall_before
        # Rows logged after the checkpoint we resume from are dropped (they are
        # logged again), so curves never hold a step twice.
        with _loggers(workdir / phase.name, phase.seeds, step, tensorboard) as loggers, \
                _progress(progress_bar, phase, step) as bar:
            try:
                while not done() or last_eval is None:
                    reason = None if done() else STOP.reason()
                    if reason:
                        save(step)
                        raise StoppedAtLimit(phase.name, step, reason)
                    chunk_start = time.monotonic()
                    if not done():
                        # Dispatch is asynchronous: the new state is bound before
                        # the host waits for the metrics, so a Ctrl-C during the
                        # wait saves the new state (the old one may have been
                        # donated to the computation).
                        state, chunk_metrics = phase.advance(state, step // phase.chunk)
                        step += phase.chunk
                        per_seed = _split_seeds(jax.device_get(chunk_metrics), phase.seeds)
                        active = [m.pop(ACTIVE, 1.0) > 0 for m in per_seed]
                        for seed, seed_metrics, on in zip(phase.seeds or (None,), per_seed, active):
                            if on:
                                _guard(phase, seed_metrics, step, seed)
                        for logger_, seed_metrics, on in zip(loggers, per_seed, active):
                            if on:
                                logger_.write(step, seed_metrics, "train")
                        bar.update(phase.chunk)
                        bar.set_postfix({k: f"{np.mean([m[k] for m in per_seed]):.3g}"
                                         for k in phase.postfix if k in per_seed[0]})
                    final = done()
                    if final:
                        state = phase.finalize(state)
                    if step % phase.eval_every == 0 or final:
                        last_eval, last_eval_step = phase.evaluate(state), step
                        results = last_eval if phase.seeds else [last_eval]
                        for logger_, seed, result in zip(loggers, phase.seeds or (None,), results):
                            logger_.write(step, scalars(result), "eval")
                            where = "" if seed is None else f" seed {seed}"
                            bar.write(f"{phase.name}{where} @ {step}: {_summary(result)}")
                    if step % phase.checkpoint_every == 0 or final:
                        # The final save's time is the phase's: a re-run of the
                        # finished run reads back the same number.
                        wall_seconds = save(step)
                    for logger_ in loggers:
                        logger_.flush()
                    STOP.chunk_took(time.monotonic() - chunk_start)
            except KeyboardInterrupt:
                save(step)
                raise InterruptedRun(phase.name, step) from None
        return PhaseOutcome(state, step, wall_seconds, last_eval)


def _split_seeds(metrics: dict[str, Any], seeds: tuple[int, ...]) -> list[dict[str, float]]:
    """Host metrics -> one ``{name: float}`` per seed (one dict without seeds)."""
    if not seeds:
        return [{k: float(v) for k, v in metrics.items()}]
    return [{k: float(np.asarray(v)[i]) for k, v in metrics.items()} for i in range(len(seeds))]


def _guard(phase: Phase, metrics: dict[str, float], step: int, seed: int | None) -> None:
    try:
        phase.guard(metrics, step)
    except TrainingDivergedError as error:
        if seed is None:
            raise
        raise TrainingDivergedError(
            f"Seed {seed} of {list(phase.seeds)}: {error} (the seeds train as one program, "
            f"so the run stops for all of them; rerun without this seed by changing seed/"
            f"num_seeds in a new workdir).") from None


@contextlib.contextmanager
def _loggers(directory: Path, seeds: tuple[int, ...], step: int,
             tensorboard: bool) -> Iterator[list[MetricsLogger]]:
    """One metrics logger per seed (``<phase>/seed_<s>/``), or one in ``<phase>/``."""
    directories = [directory / f"seed_{seed}" for seed in seeds] if seeds else [directory]
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(MetricsLogger(d, resume_step=step, use_tensorboard=tensorboard))
               for d in directories]


def _summary(result: dict[str, Any]) -> str:
    if "return_mean" in result:
        score = result.get("normalized_score")
        return (f"return {result['return_mean']:.1f} ± {result['return_std']:.1f}"
                + ("" if score is None else f", normalized score {score:.1f}"))
    return ", ".join(f"{k} {v:.4g}" for k, v in scalars(result).items() if k.endswith("_mean"))


def _progress(enabled: bool, phase: Phase, initial: int):
    """A tqdm bar with ETA; disabled, its calls are no-ops and ``write`` still prints."""
    from tqdm.auto import tqdm

    return tqdm(total=phase.total, initial=initial, desc=phase.name, unit=phase.unit,
                dynamic_ncols=True, disable=not enabled)
