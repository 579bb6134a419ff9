"""Policy evaluation in gymnasium MuJoCo environments, with D4RL-normalised scores.

Offline-RL results are reported as D4RL normalised scores (0 = random policy,
100 = expert), so evaluation has to (a) run a fixed number of *complete*
episodes, (b) be reproducible from a seed, and (c) be fast enough to call
during training. We run a synchronous vector env for speed, but drive resets
ourselves (``AutoresetMode.DISABLED``) so that every episode gets its own
reset seed and no reward from gymnasium's implicit autoreset step can leak into
a return.

Seeding scheme: episode ``k`` (``k = 0 .. num_episodes - 1``) is always started
with ``env.reset(seed=seed + k)`` and is run in sub-env ``k % num_envs``. Hence
``returns[k]`` equals the return of a plain single-env loop that calls
``gymnasium.make(env_id).reset(seed=seed + k)`` and steps the same
deterministic policy, independent of ``num_envs``.

:func:`evaluate_policies` evaluates several policies (e.g. the seeds of a
vmapped run) in one vector env, one policy call per step for all of them,
each on the same episodes as it would get alone.
"""

from __future__ import annotations

from typing import Any, Callable

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

from mb2po_jax.envs import D4RL_REF_SCORES, lookup_ref_scores

ActFn = Callable[[np.ndarray], Any]


def normalized_score(
    env: str,
    returns: float | np.ndarray,
    *,
    ref_scores: tuple[float, float] | None = None,
) -> float | np.ndarray:
    """D4RL normalised score ``100 * (R - R_random) / (R_expert - R_random)``.

    Args:
        env: 'hopper', 'halfcheetah', 'walker2d' or a gymnasium id such as
            'Hopper-v5'. Ignored when ``ref_scores`` is given.
        returns: an undiscounted episode return or an array of them.
        ref_scores: explicit ``(min, max)`` reference returns, for environments
            D4RL has no references for.

    Returns:
        A float for scalar input, else an array of the same shape.
    """
    if ref_scores is None:
        ref_scores = lookup_ref_scores(env)
        if ref_scores is None:
            raise ValueError(
                f"No D4RL reference scores for env {env!r}; known envs: "
                f"{sorted(D4RL_REF_SCORES)}. Pass reference scores explicitly "
                "with ref_scores=(min, max)."
            )
    low, high = (float(s) for s in ref_scores)
    if high == low:
        raise ValueError(f"ref_scores must differ, got {ref_scores!r}")
    score = 100.0 * (np.asarray(returns, dtype=np.float64) - low) / (high - low)
    return float(score) if score.ndim == 0 else score


def _make_vec_env(
    env_id: str, num_envs: int, max_episode_steps: int | None
) -> gym.vector.VectorEnv:
    """Sync vector env with autoreset disabled: we reset finished envs ourselves."""
    kwargs: dict[str, Any] = {}
    if max_episode_steps is not None:
        # Forwarded by make_vec to gymnasium.make, which installs TimeLimit.
        kwargs["max_episode_steps"] = max_episode_steps
    return gym.make_vec(
        env_id,
        num_envs=num_envs,
        vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": AutoresetMode.DISABLED},
        **kwargs,
    )


def _clip_actions(actions: Any, space: gym.spaces.Box, num_envs: int) -> np.ndarray:
    """Converts policy output (possibly a jax array) to a clipped numpy batch."""
    actions = np.asarray(actions, dtype=space.dtype).reshape((num_envs,) + space.shape)
    return np.clip(actions, space.low, space.high)


def _run_episodes(
    envs: gym.vector.VectorEnv, act_fn: ActFn, num_episodes: int, seed: int, num_groups: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Runs episodes ``0..num_episodes-1`` of each of ``num_groups`` policies;
    returns (returns, lengths) ``[num_groups, num_episodes]`` by index.

    Sub-envs ``g * n .. g * n + n - 1`` belong to group ``g`` (``n`` per
    group). Sub-env ``i`` of a group runs that group's episodes
    ``i, i + n, i + 2n, ...`` (a fixed quota), so which episodes get counted
    never depends on which env finishes first, and every group's episode
    ``k`` starts from reset seed ``seed + k`` (common random numbers).
    """
    total = envs.num_envs
    n = total // num_groups
    space = envs.single_action_space
    group = np.repeat(np.arange(num_groups), n)
    returns = np.zeros((num_groups, num_episodes), dtype=np.float64)
    lengths = np.zeros((num_groups, num_episodes), dtype=np.int64)
    current = np.tile(np.arange(n), num_groups)  # episode index each sub-env is running
    active = current < num_episodes
    ep_return = np.zeros(total, dtype=np.float64)
    ep_length = np.zeros(total, dtype=np.int64)

    obs, _ = envs.reset(seed=[seed + int(k) for k in current])
    while active.any():
        actions = _clip_actions(act_fn(obs), space, total)
        obs, rewards, terminated, truncated, _ = envs.step(actions)
        # Envs whose quota is used up keep stepping (a vector env steps all
        # sub-envs together) but their rewards are discarded.
        ep_return[active] += rewards[active]
        ep_length[active] += 1

        done = np.logical_or(terminated, truncated)
        if not done.any():
            continue
        # Seed None for idle envs: their episodes are never counted.
        reset_seeds: list[int | None] = [None] * total
        for i in np.flatnonzero(done & active):
            k = current[i]
            returns[group[i], k], lengths[group[i], k] = ep_return[i], ep_length[i]
            ep_return[i], ep_length[i] = 0.0, 0
            current[i] = k + n
            if current[i] < num_episodes:
                reset_seeds[i] = seed + int(current[i])
            else:
                active[i] = False
        # With autoreset disabled, stepping a finished env is an error, so
        # every finished env (active or idle) is reset here.
        obs, _ = envs.reset(seed=reset_seeds, options={"reset_mask": done})
    return returns, lengths


def evaluate(
    act_fn: ActFn,
    env_id: str,
    num_episodes: int,
    *,
    seed: int = 0,
    num_envs: int | None = None,
    ref_scores: tuple[float, float] | None = None,
    max_episode_steps: int | None = None,
) -> dict[str, Any]:
    """Runs exactly ``num_episodes`` complete episodes of ``act_fn`` in ``env_id``.

    Args:
        act_fn: maps a batch of observations ``[n, obs_dim]`` to actions
            ``[n, act_dim]`` (numpy or jax); actions are clipped to the action
            space. Should be deterministic for reproducible results.
        env_id: gymnasium id, e.g. 'Hopper-v5'.
        num_episodes: number of episodes to run (>= 1).
        seed: episode ``k`` is reset with seed ``seed + k`` (see module doc).
        num_envs: parallel sub-envs; default ``min(num_episodes, 10)``, and
            capped at ``num_episodes`` since extra envs would only idle.
        ref_scores: ``(min, max)`` returns for normalisation; defaults to the
            D4RL references when ``env_id`` is known, else no normalisation.
        max_episode_steps: overrides the env's registered time limit.

    Returns:
        dict with 'return_mean', 'return_std', 'normalized_score',
        'normalized_score_std' (None without reference scores),
        'episode_length_mean', 'returns' (list, ordered by episode index),
        'episode_lengths' (list, same order), 'num_episodes' and 'env_id'.
    """
    return evaluate_policies(
        lambda obs: np.asarray(act_fn(obs[0]))[None], env_id, num_episodes, num_policies=1, seed=seed,
        num_envs=num_envs, ref_scores=ref_scores, max_episode_steps=max_episode_steps)[0]


def evaluate_policies(
    act_fn: ActFn,
    env_id: str,
    num_episodes: int,
    *,
    num_policies: int,
    seed: int = 0,
    num_envs: int | None = None,
    ref_scores: tuple[float, float] | None = None,
    max_episode_steps: int | None = None,
) -> list[dict[str, Any]]:
    """:func:`evaluate` for ``num_policies`` policies in ONE vector env.

    Args:
        act_fn: maps observations ``[num_policies, n, obs_dim]`` to actions
            ``[num_policies, n, act_dim]`` (row ``p`` is policy ``p``'s), e.g.
            a ``jax.vmap`` of one policy over stacked parameters (one call
            per env step for all policies, not one per policy).
        num_envs: sub-envs per policy (``n``); the vector env holds
            ``num_policies * n``.
        Other arguments as for :func:`evaluate`.

    Returns:
        One :func:`evaluate` result per policy; policy ``p``'s equals
        ``evaluate`` of that policy alone (same episodes, same reset seeds).
    """
    if num_episodes < 1:
        raise ValueError(f"num_episodes must be >= 1, got {num_episodes}")
    if num_policies < 1:
        raise ValueError(f"num_policies must be >= 1, got {num_policies}")
    num_envs = min(num_episodes, 10) if num_envs is None else min(num_envs, num_episodes)
    if num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs}")

    envs = _make_vec_env(env_id, num_policies * num_envs, max_episode_steps)
    obs_shape = envs.single_observation_space.shape

    def grouped(obs: np.ndarray) -> Any:
        actions = act_fn(obs.reshape((num_policies, num_envs) + obs_shape))
        return np.asarray(actions).reshape((num_policies * num_envs, -1))

    try:
        returns, lengths = _run_episodes(envs, grouped, num_episodes, seed, num_policies)
    finally:
        envs.close()

    if ref_scores is None:
        ref_scores = lookup_ref_scores(env_id)
    return [_summary(env_id, returns[p], lengths[p], ref_scores) for p in range(num_policies)]


def _summary(env_id: str, returns: np.ndarray, lengths: np.ndarray,
             ref_scores: tuple[float, float] | None) -> dict[str, Any]:
    norm_mean = norm_std = None
    if ref_scores is not None:
        scores = normalized_score(env_id, returns, ref_scores=ref_scores)
        norm_mean, norm_std = float(np.mean(scores)), float(np.std(scores))
    return {
        "return_mean": float(np.mean(returns)),
        "return_std": float(np.std(returns)),
        "normalized_score": norm_mean,
        "normalized_score_std": norm_std,
        "episode_length_mean": float(np.mean(lengths)),
        "returns": [float(r) for r in returns],
        "episode_lengths": [int(n) for n in lengths],
        "num_episodes": int(len(returns)),
        "env_id": env_id,
    }
