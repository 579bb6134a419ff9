"""Evaluates a run's checkpoint: ``python -m experiments.evaluate --workdir=DIR``.

Restores the latest (or ``--step``) checkpoint of the policy's last phase in
``DIR`` (``mb2po`` or ``mopo`` if the run has one, else ``awac``;
``--phase`` picks one) into an abstract target built from the config stored inside the
checkpoint, so it needs neither the config file nor the dataset. Of a
fine-tuning checkpoint only the agent is read, never the model buffer. Runs
``--num_episodes`` deterministic episodes and prints the D4RL-normalised score
(and, last, one JSON line with everything).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import ml_collections
import numpy as np
from absl import app, flags

from mb2po_jax import seeds
from mb2po_jax.checkpoint import Checkpointer

from experiments.common import UsageError, setup_logging
from experiments.phases import (AWAC, MB2PO, MOPO, abstract_policy_state, evaluate_policy,
                                policy_act, policy_agent, seeds_of)

POLICY_PHASES = (MB2PO, MOPO, AWAC)  # fine-tuned first


def restore_policy(workdir: str | Path, *, phase: str | None = None, step: int | None = None):
    """The agent and its state from a policy checkpoint of ``workdir``.

    Returns ``(agent, agent_state, config, meta, phase, step)``; ``phase``
    defaults to the last policy phase run, ``step`` to the latest checkpoint."""
    root = Path(workdir).expanduser() / "checkpoints"
    if phase is not None and phase not in POLICY_PHASES:
        raise UsageError(f"--phase={phase!r}: valid phases: {list(POLICY_PHASES)}.")
    candidates = [phase] if phase else [p for p in POLICY_PHASES if (root / p).is_dir()]
    if not candidates or not (root / candidates[0]).is_dir():
        raise UsageError(
            f"No {phase or 'policy'} checkpoints in {root}: is {workdir} a workdir made by "
            f"`python -m experiments.run --workdir=...`?"
        )
    phase = candidates[0]
    directory = root / phase
    with Checkpointer(directory) as checkpointer:
        steps = checkpointer.all_steps()
        if not steps:
            raise UsageError(f"{directory} holds no complete checkpoint yet.")
        if step is not None and step not in steps:
            raise UsageError(f"No checkpoint at --step={step} in {directory}; available: {steps}.")
        step = steps[-1] if step is None else step
        meta = checkpointer.restore_meta(step)
        config = ml_collections.ConfigDict(meta["config"])
        if "num_seeds" not in config:  # a workdir from before vmapped seeds
            config.num_seeds, config.seed_batching = 1, "auto"
        dataset = meta["dataset"]
        obs_dim, act_dim = dataset["obs_dim"], dataset["act_dim"]
        agent = policy_agent(config, phase, obs_dim, act_dim)
        abstract = abstract_policy_state(config, phase, obs_dim, act_dim)
        if phase == AWAC:
            agent_state, _ = checkpointer.restore(abstract, step)
        else:
            # Only the agent: a fine-tuning checkpoint also holds the model
            # buffer (11-17 GB at paper scale), which evaluation never reads.
            agent_state = checkpointer.restore_part({"agent": abstract.agent}, step)[0]["agent"]
    return agent, agent_state, config, meta, phase, step


def evaluate_checkpoint(
    workdir: str | Path,
    *,
    phase: str | None = None,
    step: int | None = None,
    num_episodes: int | None = None,
    seed: int | None = None,
) -> dict[str, Any]:
    """Restores a policy checkpoint of ``workdir`` and evaluates it."""
    agent, agent_state, config, meta, phase, step = restore_policy(workdir, phase=phase, step=step)
    dataset = meta["dataset"]
    if num_episodes is not None:
        config.eval.num_episodes = num_episodes
    if seed is not None:
        config.eval.seed = seed
    refs = None
    if dataset.get("ref_min_score") is not None and dataset.get("ref_max_score") is not None:
        refs = (dataset["ref_min_score"], dataset["ref_max_score"])
    result = evaluate_policy(policy_act(agent, config.num_seeds), agent.policy_params(agent_state),
                             meta["env_id"], config.eval, refs, config.num_seeds)
    head = {"workdir": str(workdir), "phase": phase, "step": step, "dataset": config.dataset}
    # ``updates``: gradient updates the policy has had (pretraining included).
    if config.num_seeds == 1:
        return {**head, "updates": int(agent_state.step), **result}
    # Every seed of a vmapped run, all in one vector env.
    per_seed = [{"seed": seed, "updates": int(updates), **one} for seed, updates, one in
                zip(seeds_of(config), np.asarray(agent_state.step), result)]
    return {**head, "env_id": meta["env_id"], "num_episodes": config.eval.num_episodes,
            **seeds.summarize(per_seed, ("normalized_score", "return_mean")),
            "seeds": list(seeds_of(config)), "per_seed": per_seed}


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    values = flags.FLAGS
    if not values.workdir:
        raise app.UsageError("--workdir is required.")
    setup_logging()
    try:
        result = evaluate_checkpoint(
            values.workdir, phase=values.phase, step=values.step,
            num_episodes=values.num_episodes, seed=values.seed,
        )
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    score = result.get("normalized_score")
    if "per_seed" in result:
        for one in result["per_seed"]:
            print(f"seed {one['seed']}: return {one['return_mean']:.1f} ± "
                  f"{one['return_std']:.1f}" + ("" if one["normalized_score"] is None else
                                               f", normalized score {one['normalized_score']:.1f}"))
        value = "return_mean" if score is None else "normalized_score"
        print(f"{result['dataset']} @ {result['phase']} step {result['step']}: {value} "
              f"{result[value]:.1f} ± {result[value + '_over_seeds_std']:.1f} over seeds "
              f"{result['seeds']} ({result['num_episodes']} episodes each)")
        print(json.dumps(result))
        return
    print(
        f"{result['dataset']} @ {result['phase']} step {result['step']} in {result['env_id']}: return "
        f"{result['return_mean']:.1f} ± {result['return_std']:.1f} over "
        f"{result['num_episodes']} episodes"
        + ("" if score is None else f"; normalized score {score:.1f} ± "
           f"{result['normalized_score_std']:.1f}")
    )
    print(json.dumps(result))


def cli() -> None:
    # Defined here, not at import, so the module imports beside other absl programs.
    flags.DEFINE_string("workdir", None, "A run directory made by experiments.run.")
    flags.DEFINE_string("phase", None, f"One of {list(POLICY_PHASES)} (default: the last run).")
    flags.DEFINE_integer("step", None, "Checkpoint step to evaluate (default: latest).")
    flags.DEFINE_integer("num_episodes", None, "Episodes (default: the run's config).")
    flags.DEFINE_integer("seed", None, "Evaluation seed (default: the run's config).")
    app.run(main)


if __name__ == "__main__":
    cli()
