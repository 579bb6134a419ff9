"""Starting a phase from another workdir's checkpoints (``init.awac_workdir``,
``init.dynamics_workdir``): same dataset, same seeds, or refused."""

from __future__ import annotations

from pathlib import Path

from mb2po_jax.checkpoint import Checkpointer, RunMismatchError
from mb2po_jax.pipeline.dataset import PreparedData
from mb2po_jax.runner import Phase


def restore_from_workdir(source: str, phase: Phase, data: PreparedData):
    """``checkpointer -> state``: the latest ``phase`` checkpoint of another
    workdir, after checking it was trained on the same dataset."""

    def initial_state(_: Checkpointer):
        directory = Path(source).expanduser() / "checkpoints" / phase.name
        if not directory.is_dir():
            raise RunMismatchError(
                f"init.{phase.name}_workdir={source}: no '{phase.name}' checkpoints in "
                f"{directory}; point it at a workdir that ran that phase.")
        with Checkpointer(directory) as other:
            meta = other.restore_meta()
            their_seeds = int(meta["config"].get("num_seeds", 1))
            if their_seeds != max(1, len(phase.seeds)):
                raise RunMismatchError(
                    f"init.{phase.name}_workdir={source} trained num_seeds={their_seeds}, this "
                    f"run num_seeds={max(1, len(phase.seeds))}: its {phase.name} state has "
                    f"another seed axis. Use the same num_seeds (and seed) as that run.")
            their_first = int(meta["config"].get("seed", 0))
            if their_seeds > 1 and their_first != phase.seeds[0]:
                # Seeds are matched by position on the axis: seed k here would
                # start from another seed's state and be reported under k.
                raise RunMismatchError(
                    f"init.{phase.name}_workdir={source} trained seeds {their_first}.."
                    f"{their_first + their_seeds - 1}, this run seeds {phase.seeds[0]}.."
                    f"{phase.seeds[-1]}: each seed must start from its own {phase.name} state. "
                    f"Use --config.seed={their_first}.")
            theirs = meta["dataset"]["fingerprint"]
            if theirs != data.info.fingerprint:
                raise RunMismatchError(
                    f"init.{phase.name}_workdir={source} was trained on a different dataset "
                    f"(fingerprint {theirs[:12]}..., this run's {data.info.fingerprint[:12]}...); "
                    f"its {phase.name} state cannot be reused here.")
            state, _ = other.restore(phase.abstract())
        return state

    return initial_state
