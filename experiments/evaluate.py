"""Evaluates a run's checkpoint: ``python -m experiments.evaluate --workdir=DIR``.

Restores the latest (or ``--step``) AWAC checkpoint of ``DIR`` into an
abstract target built from the config stored inside the checkpoint, so it
needs neither the config file nor the dataset, runs ``--num_episodes``
deterministic episodes and prints the D4RL-normalised score (and, last, one
JSON line with everything).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import ml_collections
from absl import app, flags

from mb2po_jax.checkpoint import Checkpointer

from experiments.awac_phase import PHASE, abstract_state, build_agent, evaluate_policy
from experiments.common import UsageError, setup_logging


def evaluate_checkpoint(
    workdir: str | Path,
    *,
    step: int | None = None,
    num_episodes: int | None = None,
    seed: int | None = None,
) -> dict[str, Any]:
    """Restores a checkpoint of ``workdir`` and evaluates its policy."""
    directory = Path(workdir).expanduser() / "checkpoints" / PHASE
    if not directory.is_dir():
        raise UsageError(
            f"No checkpoints in {directory}: is {workdir} a workdir made by "
            f"`python -m experiments.run --workdir=...`?"
        )
    with Checkpointer(directory) as checkpointer:
        steps = checkpointer.all_steps()
        if not steps:
            raise UsageError(f"{directory} holds no complete checkpoint yet.")
        if step is not None and step not in steps:
            raise UsageError(f"No checkpoint at --step={step} in {directory}; available: {steps}.")
        step = steps[-1] if step is None else step
        meta = checkpointer.restore_meta(step)
        config = ml_collections.ConfigDict(meta["config"])
        dataset = meta["dataset"]
        agent = build_agent(config, dataset["obs_dim"], dataset["act_dim"])
        state, _ = checkpointer.restore(abstract_state(agent), step)
    if num_episodes is not None:
        config.eval.num_episodes = num_episodes
    if seed is not None:
        config.eval.seed = seed
    refs = None
    if dataset.get("ref_min_score") is not None and dataset.get("ref_max_score") is not None:
        refs = (dataset["ref_min_score"], dataset["ref_max_score"])
    result = evaluate_policy(agent, state.policy_params, meta["env_id"], config.eval, refs)
    return {"workdir": str(workdir), "step": step, "dataset": config.dataset, **result}


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    values = flags.FLAGS
    if not values.workdir:
        raise app.UsageError("--workdir is required.")
    setup_logging()
    try:
        result = evaluate_checkpoint(
            values.workdir, step=values.step, num_episodes=values.num_episodes, seed=values.seed
        )
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    score = result["normalized_score"]
    print(
        f"{result['dataset']} @ step {result['step']} in {result['env_id']}: return "
        f"{result['return_mean']:.1f} ± {result['return_std']:.1f} over "
        f"{result['num_episodes']} episodes"
        + ("" if score is None else f"; normalized score {score:.1f} ± "
           f"{result['normalized_score_std']:.1f}")
    )
    print(json.dumps(result))


def cli() -> None:
    # Defined here, not at import, so the module imports beside other absl programs.
    flags.DEFINE_string("workdir", None, "A run directory made by experiments.run.")
    flags.DEFINE_integer("step", None, "Checkpoint step to evaluate (default: latest).")
    flags.DEFINE_integer("num_episodes", None, "Episodes (default: the run's config).")
    flags.DEFINE_integer("seed", None, "Evaluation seed (default: the run's config).")
    app.run(main)


if __name__ == "__main__":
    cli()
