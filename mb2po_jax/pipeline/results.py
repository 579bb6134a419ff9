"""``results.json`` and the learning curve of a finished run: per seed, what
its own single-seed run would report; with several seeds, the mean and the
spread over seeds of every score on top."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from mb2po_jax import seeds
from mb2po_jax.metrics_logger import plot_learning_curve, read_series
from mb2po_jax.pipeline.dataset import PreparedData
from mb2po_jax.pipeline.seed_axis import counts
from mb2po_jax.pipeline.settings import AWAC, DYNAMICS, MB2PO, MOPO, Settings

RESULTS_FILE = "results.json"


def _approximations(outcomes: dict[str, Any], index: int | None) -> dict[str, Any]:
    """``buffer_refills``: how often a fine-tuning restore refilled the model
    buffer from the current policy (``buffer_checkpoint='refill'``, a named
    approximation); absent in the exact modes."""
    for name in (MB2PO, MOPO):
        refills = getattr(outcomes[name].state, "refills", None) if name in outcomes else None
        if refills is not None:
            refills = np.asarray(refills)
            return {"buffer_refills": int(refills if index is None else refills[index])}
    return {}


def _eval_summary(result: dict[str, Any]) -> dict[str, Any]:
    keys = ("normalized_score", "normalized_score_std", "return_mean", "return_std", "returns")
    return {key: result[key] for key in keys}


def seed_outcome(outcome, index: int | None):
    """One seed's view of a phase outcome (the outcome itself without seeds)."""
    if index is None:
        return outcome
    # Its own count (a seed whose dynamics stopped early has fewer steps).
    return dataclasses.replace(outcome, final_eval=outcome.final_eval[index],
                               steps=int(counts(outcome.state)[index]))


# Scores averaged over seeds in a vmapped run's results.json; the per-episode
# fields stay per seed (results["per_seed"]).
_SCORES = ("normalized_score", "return_mean", "awac_normalized_score", "mb2po_normalized_score",
           "mopo_normalized_score")
_SEED_SPECIFIC = ("normalized_score_std", "return_std", "returns", "phases", "seed",
                  "buffer_refills")


def run_results(settings: Settings, data: PreparedData, outcomes: dict[str, Any]) -> dict[str, Any]:
    """results.json of a run: one seed's, or every seed's with the mean and
    the spread over seeds of every score on top."""
    last = settings.last_phase
    if not settings.seeds:
        return seed_results(settings, data, outcomes, last, settings.seed)
    per_seed = [seed_results(settings, data, {name: seed_outcome(outcome, i)
                                              for name, outcome in outcomes.items()}, last, seed,
                             index=i)
                for i, seed in enumerate(settings.seeds)]
    results = {key: value for key, value in per_seed[0].items() if key not in _SEED_SPECIFIC}
    results.update(seeds.summarize(per_seed, _SCORES), seeds=list(settings.seeds),
                   num_seeds=len(settings.seeds), per_seed=per_seed)
    return results


def seed_results(settings: Settings, data: PreparedData, outcomes: dict[str, Any], last: str,
                 seed: int, index: int | None = None) -> dict[str, Any]:
    """results.json of one seed (``index``: its place on the seed axis)."""
    mopo = last == MOPO
    final = outcomes[last].final_eval
    awac = outcomes.get(AWAC)
    return {
        **_eval_summary(final),
        "env_id": data.env_id,
        "dataset": settings.data.name,
        "dataset_source": data.info.source,
        "dataset_fingerprint": data.info.fingerprint,
        "num_transitions": data.info.num_transitions,
        "algorithm": settings.algorithm,
        "steps": outcomes[last].steps if mopo else awac.steps,
        "eval_episodes": final["num_episodes"],
        "wall_seconds": sum(outcome.wall_seconds for outcome in outcomes.values()),
        "awac_normalized_score": awac.final_eval["normalized_score"] if awac else None,
        "mb2po_normalized_score": final["normalized_score"] if last == MB2PO else None,
        "mopo_normalized_score": final["normalized_score"] if mopo else None,
        "phases": {
            name: {"steps": outcome.steps, "wall_seconds": outcome.wall_seconds,
                   **(_eval_summary(outcome.final_eval) if name != DYNAMICS
                      else outcome.final_eval)}
            for name, outcome in outcomes.items()
        },
        "seed": seed,
        **_approximations(outcomes, index),
    }


def plot(workdir: Path, settings: Settings) -> None:
    """The policy's evaluations against gradient steps: AWAC's, then MB2PO's
    continuing the axis (one iteration = mb2po.updates_per_iteration steps);
    or MOPO's alone. With several seeds, one line per seed and phase (the
    first seed's AWAC line solid)."""
    last = settings.last_phase
    where = [(f"seed_{s}", f"seed {s} ") for s in settings.seeds] or [("", "")]
    out = workdir / "learning_curve.png"
    if last == MOPO:
        per = settings.fine_tuning.loop.updates_per_iteration
        extra = {f"{name}MOPO": read_series(workdir / MOPO / sub / "metrics_eval.csv",
                                            "normalized_score") for sub, name in where[1:]}
        plot_learning_curve(workdir / MOPO / where[0][0], prefix="eval", out=out,
                            extra_lines=extra, label=f"{where[0][1]}MOPO (SAC in the model MDP)",
                            title=f"{_short_dataset(settings.data.name)}: MOPO evaluations",
                            xlabel=f"iteration ({per} updates each)")
        return
    extra = {}
    for i, (sub, name) in enumerate(where):
        if i:
            extra[f"{name}AWAC"] = read_series(
                workdir / AWAC / sub / "metrics_eval.csv", "normalized_score")
        mb2po_csv = workdir / MB2PO / sub / "metrics_eval.csv"
        if last == MB2PO and mb2po_csv.exists():
            iterations, scores = read_series(mb2po_csv, "normalized_score")
            if iterations:
                offset = settings.awac_steps
                per = settings.fine_tuning.loop.updates_per_iteration
                extra[f"{name}MB2PO fine-tuning"] = ([offset + i * per for i in iterations],
                                                     scores)
    plot_learning_curve(workdir / AWAC / where[0][0], prefix="eval", out=out,
                        extra_lines=extra, label=f"{where[0][1]}AWAC pretraining",
                        title=f"{_short_dataset(settings.data.name)}: evaluations",
                        xlabel="gradient steps")


def _short_dataset(dataset: str) -> str:
    """The dataset as a plot title names it: a file by its name, not its path."""
    scheme, _, rest = dataset.partition(":")
    return f"{scheme}:{Path(rest).name}" if scheme == "hdf5" and rest else dataset
