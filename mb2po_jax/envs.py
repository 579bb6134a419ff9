"""Everything the project knows about an environment, in one entry per env.

A new environment is one :class:`EnvSpec` in :data:`ENVS` plus its pure-JAX
termination function in :mod:`mb2po_jax.termination` (tested against the real
env's ``terminated`` flag in ``tests/test_termination.py``). Everything else
(dataset names, evaluation, normalised scores, model rollouts, dataset making)
reads from here.

Names: an env is known by its short name (``'hopper'``, used in dataset names
like ``hopper-mixed``) or its gymnasium id (``'Hopper-v5'``, the env that
evaluates it); :func:`env_key` maps either, case-insensitively, to the short
name.
"""

from __future__ import annotations

import dataclasses
import functools
import re

from mb2po_jax import termination
from mb2po_jax.termination import TerminationFn


@dataclasses.dataclass(frozen=True)
class EnvSpec:
    """One environment.

    Attributes:
        name: short lower-case name, the first token of dataset names.
        gym_id: the gymnasium id evaluation and dataset making run.
        obs_dim, act_dim: flat observation / action sizes (actions in [-1, 1]).
        termination_fn: ``fn(s, a, s') -> done`` for model rollouts.
        ref_scores: D4RL's (random, expert) returns for normalised scores
            (``d4rl/infos.py`` REF_MIN_SCORE / REF_MAX_SCORE).
    """

    name: str
    gym_id: str
    obs_dim: int
    act_dim: int
    termination_fn: TerminationFn
    ref_scores: tuple[float, float]


ENVS: dict[str, EnvSpec] = {
    spec.name: spec
    for spec in (
        EnvSpec("hopper", "Hopper-v5", termination.HOPPER_OBS_DIM, 3,
                termination.hopper_termination_fn, (-20.272305, 3234.3)),
        EnvSpec("halfcheetah", "HalfCheetah-v5", termination.HALFCHEETAH_OBS_DIM, 6,
                termination.halfcheetah_termination_fn, (-280.178953, 12135.0)),
        EnvSpec("walker2d", "Walker2d-v5", termination.WALKER2D_OBS_DIM, 6,
                termination.walker2d_termination_fn, (1.629008, 4592.3)),
    )
}

# Views of ENVS for the places that only need one field.
ENV_IDS: dict[str, str] = {name: spec.gym_id for name, spec in ENVS.items()}
D4RL_REF_SCORES: dict[str, tuple[float, float]] = {
    name: spec.ref_scores for name, spec in ENVS.items()}

# Gymnasium's MuJoCo v5 envs whose actions lie in [-1, 1] (gymnasium 1.4): the
# ones dataset making accepts beyond ENVS (no D4RL references, no termination
# function, so no MB2PO fine-tuning in them until they get an entry).
UNIT_ACTION_GYM_IDS = ("Ant-v5", "HalfCheetah-v5", "Hopper-v5", "InvertedDoublePendulum-v5",
                       "Reacher-v5", "Swimmer-v5", "Walker2d-v5")


def env_key(env: str) -> str:
    """``'Hopper-v5'`` / ``' hopper '`` -> ``'hopper'`` (lower case, no ``-v<N>``)."""
    return re.sub(r"-v\d+$", "", env.strip()).lower()


def find_env(env: str) -> EnvSpec | None:
    """The entry for a short name or gymnasium id, or None."""
    return ENVS.get(env_key(env))


def get_env(env: str) -> EnvSpec:
    """Like :func:`find_env`, but an unknown env is an error listing the known ones."""
    spec = find_env(env)
    if spec is None:
        raise ValueError(
            f"Unknown environment {env!r} (looked up as {env_key(env)!r}); known: "
            f"{sorted(ENVS)} (or their gymnasium ids {sorted(ENV_IDS.values())}). To add "
            f"one, add an EnvSpec to ENVS in mb2po_jax/envs.py.")
    return spec


def lookup_ref_scores(env: str) -> tuple[float, float] | None:
    """D4RL (random, expert) returns for ``env``, or None if unknown.

    Also reads D4RL dataset names (``'hopper-medium-v2'``): the dataset's
    flavour does not change the references, so the first token is tried too.
    """
    spec = find_env(env) or ENVS.get(env_key(env).split("-")[0])
    return None if spec is None else spec.ref_scores


def get_termination_fn(env: str) -> TerminationFn:
    """The termination function of ``env`` (a short name or gymnasium id).

    Returns:
        ``fn(observations [..., obs_dim], actions [..., act_dim],
        next_observations [..., obs_dim]) -> done bool [...]``.

    Raises:
        ValueError: ``env`` has no entry. There is no silent "never done"
            fallback: a missing termination function would let model rollouts
            run through states the real env ends the episode in.
    """
    spec = find_env(env)
    if spec is None:
        raise ValueError(
            f"No termination function for env {env!r} (looked up as {env_key(env)!r}); "
            f"supported envs: {sorted(ENVS)} (also as gymnasium ids such as "
            f"'Hopper-v5'). To add one, write a pure-JAX "
            f"fn(observations, actions, next_observations) -> bool[...] in "
            f"mb2po_jax/termination.py that reproduces the gymnasium env's "
            f"is_healthy/terminated on the observation, add an EnvSpec for it to ENVS "
            f"in mb2po_jax/envs.py, and add a test in tests/test_termination.py that "
            f"checks it against the real env's `terminated` flag. If the env truly never "
            f"terminates, use a never-done function explicitly, like "
            f"halfcheetah_termination_fn."
        )
    return spec.termination_fn


@functools.lru_cache(maxsize=32)
def gym_dims(gym_id: str) -> tuple[int, int]:
    """(obs_dim, act_dim) of a gymnasium env; raises ValueError unless both
    spaces are flat Boxes and actions lie in [-1, 1] (the tanh policies' range)."""
    import gymnasium as gym
    import numpy as np

    env = gym.make(gym_id)
    try:
        obs_space, act_space = env.observation_space, env.action_space
        if not isinstance(obs_space, gym.spaces.Box) or len(obs_space.shape) != 1:
            raise ValueError(
                f"{gym_id}: observation space {obs_space} is not a flat Box; "
                f"choose an env with vector observations.")
        if not isinstance(act_space, gym.spaces.Box) or len(act_space.shape) != 1:
            raise ValueError(
                f"{gym_id}: action space {act_space} is not a flat Box; the "
                f"policies here need continuous vector actions.")
        if not (np.all(act_space.low == -1.0) and np.all(act_space.high == 1.0)):
            raise ValueError(
                f"{gym_id}: actions span [{act_space.low.min()}, "
                f"{act_space.high.max()}], but datasets must have actions in [-1, 1] (the "
                f"tanh policy's range, and what evaluation runs); choose an env with "
                f"[-1, 1] actions: {', '.join(UNIT_ACTION_GYM_IDS)}.")
        return int(obs_space.shape[0]), int(act_space.shape[0])
    finally:
        env.close()
