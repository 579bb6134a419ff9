"""Records a small Minari dataset by running a given policy in a gymnasium env.

Remote datasets cannot be downloaded everywhere (CI, air-gapped clusters), so
tests and the quickstart make their own: no SAC, just ``num_steps`` steps of a
uniform-random or user-supplied policy through the shared stepping loop
(:func:`mb2po_jax.datagen.rollouts.run_policy`), written once by the shared
Minari writer (:func:`mb2po_jax.data.minari_io.write_minari_dataset`); a few
thousand steps take well under a second.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import gymnasium as gym
import numpy as np

from mb2po_jax.data.minari_io import check_writable, write_minari_dataset
from mb2po_jax.datagen.rollouts import empty_rows, run_policy, split_episodes
from mb2po_jax.envs import gym_dims

logger = logging.getLogger(__name__)

Policy = Callable[[np.ndarray], np.ndarray]


class MadeDataset(NamedTuple):
    """Where :func:`make_minari_dataset` wrote the dataset, and its size."""

    dataset_id: str
    path: Path
    num_steps: int
    num_episodes: int


def _action_fn(env: gym.Env, policy: str | Policy,
               seed: int) -> Callable[[np.ndarray, int], np.ndarray]:
    """Returns ``(obs [obs_dim], t) -> action [act_dim]`` for one env, clipped
    to the action space."""
    space = env.action_space
    if policy == "random":
        space.seed(seed)
        return lambda obs, t: space.sample()
    if not callable(policy):
        raise ValueError(f"policy must be 'random' or a callable, got {policy!r}.")

    def act(obs: np.ndarray, t: int) -> np.ndarray:
        # The policy sees a batch of one; the stored action is the one executed.
        action = np.asarray(policy(obs[None]), dtype=space.dtype).reshape(space.shape)
        return np.clip(action, space.low, space.high)

    return act


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
    truncations are stored separately, each as the env reported it. The
    evaluation env spec recorded is the plain ``env_id`` (default time limit),
    while the collection spec keeps ``max_episode_steps`` if given.

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

    Raises:
        ValueError: ``num_steps`` < 1, a malformed id, or an env whose spaces
            are not flat Boxes with actions in [-1, 1] (wrap it with
            ``gymnasium.wrappers.RescaleAction(env, -1, 1)``).
        FileExistsError: the dataset exists and ``overwrite`` is False.
    """
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}.")
    # Before collecting: a bad id or an existing dataset fails at once.
    check_writable(dataset_id, overwrite)
    obs_dim, act_dim = gym_dims(env_id)
    env = gym.make(env_id, max_episode_steps=max_episode_steps)
    try:
        # Rows in the env's own dtypes: the dataset holds what the env returned.
        rows = empty_rows(num_steps, obs_dim, act_dim, obs_dtype=env.observation_space.dtype,
                          act_dtype=env.action_space.dtype)
        act = _action_fn(env, policy, seed)
        obs, _ = env.reset(seed=seed)
        run_policy(env, obs, act, rows)
    finally:
        env.close()
    # Later resets continued the env's seeded RNG, so the whole dataset is
    # reproducible from the first seed, which the first episode records.
    episodes, _ = split_episodes(rows, first_seed=seed)
    policy_name = policy if isinstance(policy, str) else getattr(policy, "__name__", repr(policy))
    path = write_minari_dataset(
        dataset_id, episodes, env_id,
        algorithm_name=f"mb2po_jax.datagen.maker (policy={policy_name})",
        description=(
            f"{num_steps} steps of policy '{policy_name}' in {env_id} (seed {seed}), "
            f"recorded by mb2po_jax.datagen.make_minari_dataset."
        ),
        max_episode_steps=max_episode_steps, ref_min_score=ref_min_score,
        ref_max_score=ref_max_score, overwrite=overwrite,
    )
    logger.info("Wrote %d steps (%d episodes) of %s to %s", num_steps, len(episodes), env_id, path)
    return MadeDataset(dataset_id, path, num_steps, len(episodes))
