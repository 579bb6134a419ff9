"""Saving and restoring a gymnasium MuJoCo env mid-episode, for exact resume.

A SAC checkpoint holds, besides the arrays, the state of the env the SAC run
steps: MuJoCo's full integration state (``mj_getState``), the TimeLimit's
step count, the env's RNG and (kept by the caller) the current observation.
Restored into a fresh env, the resumed run continues the interrupted episode
and produces exactly the data an uninterrupted run would. All of it is JSON
(lists and dicts), so it travels in the checkpoint's metadata.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from mb2po_jax.datagen.config import GenerationError


def _time_limit(env: gym.Env) -> gym.wrappers.TimeLimit | None:
    while isinstance(env, gym.Wrapper):
        if isinstance(env, gym.wrappers.TimeLimit):
            return env
        env = env.env
    return None


def has_mujoco_state(env: gym.Env) -> bool:
    """Whether the env is MuJoCo-based (its state can be saved exactly)."""
    raw = env.unwrapped
    return hasattr(raw, "model") and hasattr(raw, "data") and "mujoco" in type(raw.model).__module__


def save_env_state(env: gym.Env) -> dict[str, Any] | None:
    """MuJoCo's full integration state, the TimeLimit count and the env RNG, as
    JSON; None for envs without MuJoCo state."""
    if not has_mujoco_state(env):
        return None
    import mujoco

    raw = env.unwrapped
    spec = mujoco.mjtState.mjSTATE_INTEGRATION
    state = np.empty(mujoco.mj_stateSize(raw.model, spec))
    mujoco.mj_getState(raw.model, raw.data, state, spec)
    limit = _time_limit(env)
    return {
        "mujoco_integration_state": state.tolist(),
        "elapsed_steps": None if limit is None else int(limit._elapsed_steps),
        "np_random": raw.np_random.bit_generator.state,
    }


def restore_env_state(env: gym.Env, saved: dict[str, Any]) -> None:
    """Puts a state from :func:`save_env_state` into ``env`` (reset first).

    Raises:
        GenerationError: the saved state does not fit this env (another env or
            MuJoCo version).
    """
    import mujoco

    raw = env.unwrapped
    spec = mujoco.mjtState.mjSTATE_INTEGRATION
    state = np.asarray(saved["mujoco_integration_state"], dtype=np.float64)
    if state.size != mujoco.mj_stateSize(raw.model, spec):
        raise GenerationError(
            f"The checkpoint's MuJoCo state has {state.size} numbers but this "
            f"{env.spec.id if env.spec else 'env'} has {mujoco.mj_stateSize(raw.model, spec)}: "
            f"the env or MuJoCo version changed. Use a new --workdir."
        )
    mujoco.mj_setState(raw.model, raw.data, state, spec)
    # Recompute derived quantities (positions of bodies, ...) from the state.
    mujoco.mj_forward(raw.model, raw.data)
    limit = _time_limit(env)
    if limit is not None and saved.get("elapsed_steps") is not None:
        limit._elapsed_steps = int(saved["elapsed_steps"])
    rng = np.random.Generator(np.random.PCG64())
    rng.bit_generator.state = saved["np_random"]
    raw.np_random = rng
