"""Running a policy in a gymnasium env, and cutting the steps into episodes.

:func:`run_policy` is the one env-stepping loop of dataset making: the SAC
run's chunks, the behaviour policies' rollouts (:func:`collect_rollouts`) and
the small recorder (:func:`mb2po_jax.datagen.maker.make_minari_dataset`) all
step through it, so they agree on what a row is. :func:`split_episodes` turns
rows into the Minari episodes :func:`mb2po_jax.data.minari_io.write_minari_dataset`
writes.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import gymnasium as gym
import jax
import numpy as np
from minari.data_collector import EpisodeBuffer

from mb2po_jax.agents import sac as sac_lib
from mb2po_jax.datagen.behaviour import sampler
from mb2po_jax.evaluation import normalized_score

ROW_FIELDS = ("observations", "actions", "rewards", "next_observations", "terminals", "timeouts")


def empty_rows(num_steps: int, obs_dim: int, act_dim: int, *, obs_dtype=np.float32,
               act_dtype=np.float32, reward_dtype=np.float64,
               flag_dtype=bool) -> dict[str, np.ndarray]:
    """Zeroed host arrays for ``num_steps`` rows: observations and
    next_observations ``[num_steps, obs_dim]``, actions ``[num_steps, act_dim]``,
    rewards, terminals and timeouts ``[num_steps]``."""
    return {
        "observations": np.zeros((num_steps, obs_dim), obs_dtype),
        "actions": np.zeros((num_steps, act_dim), act_dtype),
        "rewards": np.zeros((num_steps,), reward_dtype),
        "next_observations": np.zeros((num_steps, obs_dim), obs_dtype),
        "terminals": np.zeros((num_steps,), flag_dtype),
        "timeouts": np.zeros((num_steps,), flag_dtype),
    }


def run_policy(env: gym.Env, obs: np.ndarray, act: Callable[[np.ndarray, int], np.ndarray],
               rows: dict[str, np.ndarray], *, t0: int = 0) -> np.ndarray:
    """Steps ``env`` from ``obs`` once per row of ``rows``, filling them in place.

    Row ``j`` is step ``t = t0 + j``: ``(s, a = act(s, t), r, s', terminated,
    truncated)``, written into ``rows`` (values cast to each array's dtype;
    ``timeouts`` is the env's own ``truncated``, which a time-limit step may
    raise together with ``terminated``: callers that want a timeout to mean
    "truncated, not terminated" clear it, see :func:`exclusive_timeouts`).
    After an episode end the env is reset (its RNG continues, so everything
    follows from the first seeded reset).

    Args:
        obs: the current observation ``[obs_dim]`` (the env's dtype).
        act: ``(obs [obs_dim], t) -> action [act_dim]``, the executed action.
        rows: per-step arrays (:func:`empty_rows`), all of the same length.

    Returns:
        The observation after the last step (after its reset, if it ended an
        episode), to continue from.
    """
    observations, actions, rewards = rows["observations"], rows["actions"], rows["rewards"]
    next_observations, terminals, timeouts = (
        rows["next_observations"], rows["terminals"], rows["timeouts"])
    for j in range(len(rewards)):
        # Stored before stepping: an env may reuse its observation buffer.
        observations[j] = obs
        action = act(obs, t0 + j)
        next_obs, reward, terminated, truncated, _ = env.step(action)
        actions[j] = action
        rewards[j] = reward
        next_observations[j] = next_obs
        terminals[j] = terminated
        timeouts[j] = truncated
        if terminated or truncated:
            next_obs, _ = env.reset()
        obs = next_obs
    return obs


def exclusive_timeouts(rows: dict[str, np.ndarray]) -> None:
    """Clears, in place, the timeouts of rows that also terminated: a true
    terminal does not bootstrap, whatever the time limit says."""
    rows["timeouts"][rows["terminals"] != 0] = 0


def collect_rollouts(
    agent: sac_lib.SAC, actor_params, env_id: str, num_steps: int, *, env_seed: int,
    key: jax.Array, desc: str = "rollouts", progress: bool = True,
) -> dict[str, np.ndarray]:
    """``num_steps`` env steps of a SAC actor with sampled actions a ~ pi(.|s).

    The env is reset with ``env_seed`` once; later resets continue its RNG.
    The step-t action uses ``fold_in(key, t)``. The last episode, cut by the
    budget, is left open (:func:`split_episodes` stores it as a truncation).

    Returns:
        Per-step arrays (:data:`ROW_FIELDS`): observations, next_observations
        ``[num_steps, obs_dim]`` and actions ``[num_steps, act_dim]`` float32,
        rewards float64, terminals and timeouts bool ``[num_steps]`` (a
        timeout never on a terminal row).
    """
    sample_fn = sampler(agent)
    env = gym.make(env_id)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    out = empty_rows(num_steps, obs_dim, act_dim)

    def act(obs: np.ndarray, t: int) -> np.ndarray:
        # The actor sees float32, the dtype stored.
        return np.asarray(sample_fn(actor_params, obs.astype(np.float32), key, t))

    try:
        obs, _ = env.reset(seed=env_seed)
        block = 1000  # progress-bar granularity; the data does not depend on it
        with progress_bar(progress, num_steps, 0, desc) as bar:
            for start in range(0, num_steps, block):
                stop = min(start + block, num_steps)
                obs = run_policy(env, obs, act, {k: v[start:stop] for k, v in out.items()},
                                 t0=start)
                bar.update(stop - start)
    finally:
        env.close()
    exclusive_timeouts(out)
    return out


def split_episodes(
    rows: dict[str, np.ndarray], first_seed: int | None = None
) -> tuple[list[EpisodeBuffer], bool]:
    """Per-step rows -> Minari episodes (T + 1 observations for T steps).

    Episodes end at a terminal or a timeout; if the last row ends neither,
    the data stops mid-episode and that row is stored as a truncation (its s'
    is known and bootstraps). Returns ``(episodes, last_episode_was_cut)``;
    the first episode records ``first_seed``, its reset seed.
    """
    terminals = np.asarray(rows["terminals"]).astype(bool)
    timeouts = np.asarray(rows["timeouts"]).astype(bool).copy()
    n = len(terminals)
    cut = n > 0 and not (terminals[-1] or timeouts[-1])
    if cut:
        timeouts[-1] = True
    ends = np.flatnonzero(terminals | timeouts)
    obs, next_obs = rows["observations"], rows["next_observations"]
    episodes, start = [], 0
    for i, end in enumerate(ends):
        stop = int(end) + 1
        episodes.append(EpisodeBuffer(
            id=i,
            seed=first_seed if i == 0 else None,
            observations=np.concatenate([obs[start:stop], next_obs[stop - 1:stop]]),
            actions=np.asarray(rows["actions"][start:stop]),
            rewards=np.asarray(rows["rewards"][start:stop], dtype=np.float64),
            terminations=terminals[start:stop].copy(),
            truncations=timeouts[start:stop].copy(),
        ))
        start = stop
    return episodes, bool(cut)


def episode_stats(episodes: Sequence[EpisodeBuffer], cut_last: bool,
                  env_id: str, refs: tuple[float, float] | None) -> dict[str, Any]:
    """Episode counts, lengths and returns (raw and normalised) for a data card.
    Returns are over complete episodes: a budget-cut last one is left out."""
    returns = np.array([float(np.sum(e.rewards)) for e in episodes])
    lengths = np.array([len(e.rewards) for e in episodes])
    complete = returns[:-1] if cut_last and len(returns) > 1 else returns
    stats = {
        "episodes": int(len(episodes)),
        "terminated_episodes": int(sum(bool(e.terminations[-1]) for e in episodes)),
        "truncated_episodes": int(sum(bool(e.truncations[-1]) for e in episodes)),
        "last_episode_cut_by_size": bool(cut_last),
        "episode_length_mean": float(np.mean(lengths)) if len(lengths) else None,
        "return_mean": float(np.mean(complete)) if len(complete) else None,
        "return_std": float(np.std(complete)) if len(complete) else None,
        "return_min": float(np.min(complete)) if len(complete) else None,
        "return_max": float(np.max(complete)) if len(complete) else None,
        "returns_over": ("complete episodes (the budget-cut last one left out)"
                         if cut_last and len(returns) > 1 else "all episodes"),
    }
    if refs is not None and len(complete):
        norm = normalized_score(env_id, complete, ref_scores=refs)
        stats["normalized_return_mean"] = float(np.mean(norm))
        stats["normalized_return_min"] = float(np.min(norm))
        stats["normalized_return_max"] = float(np.max(norm))
    else:
        stats["normalized_return_mean"] = None
    return stats


def progress_bar(enabled: bool, total: int, initial: int, desc: str, unit: str = "step"):
    """A tqdm bar with ETA; disabled, its calls are no-ops and ``write`` still prints."""
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True,
                smoothing=0.05, disable=not enabled)
