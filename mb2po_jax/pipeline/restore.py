"""A run's policy back from its checkpoints, without the config file or the
dataset: the abstract target is built from the config stored inside the
checkpoint. Of a fine-tuning checkpoint only the agent is read, never the
model buffer."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import ml_collections
import numpy as np

from mb2po_jax import seeds
from mb2po_jax.checkpoint import Checkpointer
from mb2po_jax.pipeline.builders import (abstract_policy_state, evaluate_policy, policy_act,
                                         policy_agent)
from mb2po_jax.pipeline.errors import UsageError
from mb2po_jax.pipeline.settings import AWAC, MB2PO, MOPO, Settings, with_defaults

POLICY_PHASES = (MB2PO, MOPO, AWAC)  # fine-tuned first


def restore_policy(workdir: str | Path, *, phase: str | None = None, step: int | None = None):
    """The agent and its state from a policy checkpoint of ``workdir``.

    Returns ``(agent, agent_state, config, meta, phase, step)`` (``config``:
    the run's stored ``ConfigDict``); ``phase``
    defaults to the last policy phase run, ``step`` to the latest checkpoint."""
    agent, agent_state, config, _, meta, phase, step = _restore(workdir, phase, step)
    return agent, agent_state, config, meta, phase, step


def _restore(workdir: str | Path, phase: str | None, step: int | None):
    """:func:`restore_policy`'s values, and the run's :class:`Settings`
    after ``config``."""
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
        # Fields a stored config lacks (an older workdir) take their defaults.
        config = ml_collections.ConfigDict(with_defaults(meta["config"]))
        settings = Settings.from_config(config)
        dataset = meta["dataset"]
        obs_dim, act_dim = dataset["obs_dim"], dataset["act_dim"]
        agent = policy_agent(settings, phase, obs_dim, act_dim)
        abstract = abstract_policy_state(settings, phase, obs_dim, act_dim)
        if phase == AWAC:
            agent_state, _ = checkpointer.restore(abstract, step)
        else:
            # Only the agent: a fine-tuning checkpoint also holds the model
            # buffer (11-17 GB at paper scale), which evaluation never reads.
            agent_state = checkpointer.restore_part({"agent": abstract.agent}, step)[0]["agent"]
    return agent, agent_state, config, settings, meta, phase, step


def evaluate_checkpoint(
    workdir: str | Path,
    *,
    phase: str | None = None,
    step: int | None = None,
    num_episodes: int | None = None,
    seed: int | None = None,
) -> dict[str, Any]:
    """Restores a policy checkpoint of ``workdir`` and evaluates it."""
    agent, agent_state, _, settings, meta, phase, step = _restore(workdir, phase, step)
    dataset = meta["dataset"]
    episodes = dataclasses.replace(
        settings.eval, **({} if num_episodes is None else {"num_episodes": num_episodes}),
        **({} if seed is None else {"seed": seed}))
    refs = None
    if dataset.get("ref_min_score") is not None and dataset.get("ref_max_score") is not None:
        refs = (dataset["ref_min_score"], dataset["ref_max_score"])
    result = evaluate_policy(policy_act(agent, settings.num_seeds),
                             agent.policy_params(agent_state), meta["env_id"], episodes, refs,
                             settings.num_seeds)
    head = {"workdir": str(workdir), "phase": phase, "step": step, "dataset": settings.data.name}
    # ``updates``: gradient updates the policy has had (pretraining included).
    if settings.num_seeds == 1:
        return {**head, "updates": int(agent_state.step), **result}
    # Every seed of a vmapped run, all in one vector env.
    per_seed = [{"seed": seed, "updates": int(updates), **one} for seed, updates, one in
                zip(settings.seeds, np.asarray(agent_state.step), result)]
    return {**head, "env_id": meta["env_id"], "num_episodes": episodes.num_episodes,
            **seeds.summarize(per_seed, ("normalized_score", "return_mean")),
            "seeds": list(settings.seeds), "per_seed": per_seed}
