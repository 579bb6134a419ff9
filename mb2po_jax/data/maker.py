"""Records a small Minari dataset by running a policy in a gymnasium env.

Remote datasets cannot be downloaded everywhere (CI, air-gapped clusters), so
tests and the quickstart make their own. Steps are collected in a plain loop
and written once by :func:`mb2po_jax.data.minari_io.write_minari_dataset`,
which keeps a few thousand steps to well under a second.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import gymnasium as gym
import numpy as np
from minari.data_collector import EpisodeBuffer

from mb2po_jax.data.minari_io import check_writable, write_minari_dataset

logger = logging.getLogger(__name__)

Policy = Callable[[np.ndarray], np.ndarray]


class MadeDataset(NamedTuple):
    """Where :func:`make_minari_dataset` wrote the dataset, and its size."""

    dataset_id: str
    path: Path
    num_steps: int
    num_episodes: int


def _check_env(env: gym.Env, env_id: str) -> None:
    """The library trains tanh policies on flat vectors; refuse anything else."""
    obs_space, act_space = env.observation_space, env.action_space
    if not isinstance(obs_space, gym.spaces.Box) or len(obs_space.shape) != 1:
        raise ValueError(f"{env_id}: observation space {obs_space} is not a flat Box.")
    if not isinstance(act_space, gym.spaces.Box) or len(act_space.shape) != 1:
        raise ValueError(f"{env_id}: action space {act_space} is not a flat Box.")
    if not (np.all(act_space.low == -1.0) and np.all(act_space.high == 1.0)):
        raise ValueError(
            f"{env_id}: action space bounds are [{act_space.low}, {act_space.high}], "
            f"but datasets must have actions in [-1, 1]; wrap the env with "
            f"gymnasium.wrappers.RescaleAction(env, -1, 1)."
        )


def _action_fn(env: gym.Env, policy: str | Policy, seed: int) -> Callable[[np.ndarray], np.ndarray]:
    """Returns obs -> action for one env, clipped to the action space."""
    space = env.action_space
    if policy == "random":
        space.seed(seed)
        return lambda obs: space.sample()
    if not callable(policy):
        raise ValueError(f"policy must be 'random' or a callable, got {policy!r}.")

    def act(obs: np.ndarray) -> np.ndarray:
        # The policy sees a batch of one; the stored action is the one executed.
        action = np.asarray(policy(obs[None]), dtype=space.dtype).reshape(space.shape)
        return np.clip(action, space.low, space.high)

    return act


def _episode_buffer(episode_id: int, seed: int | None, steps: dict[str, list]) -> EpisodeBuffer:
    return EpisodeBuffer(
        id=episode_id,
        seed=seed,
        observations=np.stack(steps["observations"]),
        actions=np.stack(steps["actions"]),
        rewards=np.asarray(steps["rewards"], dtype=np.float64),
        terminations=np.asarray(steps["terminations"], dtype=bool),
        truncations=np.asarray(steps["truncations"], dtype=bool),
    )


def _collect(env: gym.Env, act: Policy, num_steps: int, seed: int) -> list[EpisodeBuffer]:
    """Runs ``num_steps`` env steps, returning one buffer per episode."""
    buffers: list[EpisodeBuffer] = []
    obs, _ = env.reset(seed=seed)
    episode_seed: int | None = seed
    steps: dict[str, list] = _new_episode(obs)
    for t in range(num_steps):
        action = act(obs)
        obs, reward, terminated, truncated, _ = env.step(action)
        if t == num_steps - 1 and not (terminated or truncated):
            # The budget cut this episode short: a truncation, not a terminal.
            truncated = True
        for key, value in zip(
            ("observations", "actions", "rewards", "terminations", "truncations"),
            (obs, action, reward, terminated, truncated),
        ):
            steps[key].append(value)
        if terminated or truncated:
            buffers.append(_episode_buffer(len(buffers), episode_seed, steps))
            if t < num_steps - 1:
                # Later resets continue the env's seeded RNG, so the whole
                # dataset is reproducible from the first seed.
                obs, _ = env.reset()
                episode_seed = None
                steps = _new_episode(obs)
    return buffers


def _new_episode(first_obs: np.ndarray) -> dict[str, list]:
    return {
        "observations": [first_obs],
        "actions": [],
        "rewards": [],
        "terminations": [],
        "truncations": [],
    }


def make_minari_dataset(
    dataset_id: str,
    env_id: str,
    num_steps: int,
    *,
    seed: int = 0,
    policy: str | Policy = "random",
    max_episode_steps: int | None = None,
    overwrite: bool = False,
    ref_min_score: float | None = None,
    ref_max_score: float | None = None,
) -> MadeDataset:
    """Collects ``num_steps`` steps in ``env_id`` and writes a local Minari dataset.

    Episodes end on termination, on truncation by the time limit, or when the
    step budget runs out (recorded as a truncation); terminations and
    truncations are stored separately. The evaluation env spec recorded is the
    plain ``env_id`` (default time limit), while the collection spec keeps
    ``max_episode_steps`` if given.

    Args:
        dataset_id: Minari id, e.g. ``mb2po/hopper/mixed-v0``.
        env_id: gymnasium id, e.g. ``Hopper-v5``; actions must lie in [-1, 1].
        num_steps: total environment steps (= transitions) to record.
        seed: seeds the env and the random policy.
        policy: ``'random'`` (uniform actions) or ``f(obs[1, obs_dim]) -> [1, act_dim]``.
        max_episode_steps: time limit during collection (default: the env's).
        overwrite: replace an existing dataset with the same id.
        ref_min_score: random-policy return to record, if known.
        ref_max_score: expert return to record, if known.

    Returns:
        The dataset id, its directory in the local store and its size.
    """
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}.")
    # Before collecting: a bad id or an existing dataset fails at once.
    check_writable(dataset_id, overwrite)
    env = gym.make(env_id, max_episode_steps=max_episode_steps)
    try:
        _check_env(env, env_id)
        buffers = _collect(env, _action_fn(env, policy, seed), num_steps, seed)
    finally:
        env.close()
    policy_name = policy if isinstance(policy, str) else getattr(policy, "__name__", repr(policy))
    path = write_minari_dataset(
        dataset_id, buffers, env_id,
        algorithm_name=f"mb2po_jax.data.maker (policy={policy_name})",
        description=(
            f"{num_steps} steps of policy '{policy_name}' in {env_id} (seed {seed}), "
            f"recorded by mb2po_jax.data.maker.make_minari_dataset."
        ),
        max_episode_steps=max_episode_steps, ref_min_score=ref_min_score,
        ref_max_score=ref_max_score, overwrite=overwrite,
    )
    logger.info("Wrote %d steps (%d episodes) of %s to %s", num_steps, len(buffers), env_id, path)
    return MadeDataset(dataset_id, path, num_steps, len(buffers))
