"""Termination functions for model rollouts (MOPO-style), in pure JAX.

A termination function has the signature::

    done = fn(observations, actions, next_observations)

    observations:      float [..., obs_dim]   s   (unused by the MuJoCo envs here)
    actions:           float [..., act_dim]   a   (unused by the MuJoCo envs here)
    next_observations: float [..., obs_dim]   s'  (the conditions test this)
    done:              bool  [...]            True where s' is a terminal state

Every function is pure ``jax.numpy``: it can be ``jax.jit``-ed, ``jax.vmap``-ed
and takes any number of leading batch dimensions (an unbatched ``[obs_dim]``
input gives a scalar ``[]`` output). ``obs_dim`` is checked statically, so using
observations that include the x position (``exclude_current_positions_from_
observation=False``) fails loudly instead of testing the wrong indices.

Look one up by env name with :func:`mb2po_jax.envs.get_termination_fn`.

Source of truth: the gymnasium v5 envs we evaluate in
------------------------------------------------------
The conditions follow ``is_healthy`` / ``terminated`` of gymnasium 1.x
``hopper_v5.py``, ``walker2d_v5.py`` and ``half_cheetah_v5.py`` (defaults:
``terminate_when_unhealthy=True``, ``exclude_current_positions_from_observation
=True``), translated from MuJoCo state to observation indices:

* observation = ``concat(qpos[1:], clip(qvel, -10, 10))``, so ``obs[0] = qpos[1]``
  is the torso height z and ``obs[1] = qpos[2]`` the torso angle.
* Hopper (obs_dim 11): healthy iff all of
  ``-100 < obs[1:] < 100`` (v5 checks ``state_vector()[2:] = concat(qpos[2:],
  qvel)``, which is ``obs[1:]`` up to the velocity clip), ``0.7 < obs[0] < inf``
  and ``-0.2 < obs[1] < 0.2``. ``done = not healthy``.
* Walker2d (obs_dim 17): healthy iff ``0.8 < obs[0] < 2.0`` and
  ``-1 < obs[1] < 1``. ``done = not healthy``.
* HalfCheetah (obs_dim 17): never terminates (``terminated`` is always False).

All comparisons are strict, as in the v5 code (the v5 docstrings say "closed
interval", but the code uses ``<``).

Differences from the v2-era MOPO / OfflineRL-Kit / Unifloral constants
----------------------------------------------------------------------
The thresholds themselves are identical (hopper: |state| 100, height 0.7,
|angle| 0.2; walker2d: height (0.8, 2.0), angle (-1, 1)); the differences are:

1. Hopper state bound: MOPO writes ``np.abs(next_obs[:, 1:] < 100)``, i.e. the
   abs of a boolean, which only checks the upper bound, so e.g. ``s'[3] = -150``
   counts as healthy there. v5 checks ``-100 < state < 100``; we implement the
   two-sided bound (``|s'[1:]| < 100``).
2. Hopper height upper bound: v5's ``healthy_z_range`` is ``(0.7, inf)`` (strict),
   so ``z = +inf`` is unhealthy; v2/MOPO say ``height > 0.7`` plus an explicit
   ``isfinite`` check, which gives the same answer. v5 has no explicit
   ``isfinite``; its strict comparisons reject NaN/inf in every element of
   ``obs`` for hopper, so our explicit ``isfinite`` is a no-op there.
3. Hopper finiteness scope: v2 gym checks ``isfinite(state_vector())`` which also
   covers the x position (not in the observation); this is unobservable from
   observations and irrelevant for v5, which does not check x at all.
4. Walker2d finiteness: the v5 docstring lists "any of the state space values is
   no longer finite" as a termination condition, but the v5 code does not check
   it (only z and angle, whose strict comparisons reject NaN/inf in those two
   elements). MOPO's walker2d function has no finiteness check either. We ADD
   ``all(isfinite(s'))`` deliberately: a real MuJoCo env never emits a non-finite
   observation, so this cannot disagree with the env on real data, and a learned
   model that produces NaN/inf must stop its rollout. (The v5 walker2d docstring
   also swaps the angle index: it is ``obs[1]`` with the default
   ``exclude_current_positions_from_observation=True``, as in the code.)

Known limitation (same in MOPO and every observation-based implementation): v5
hopper applies the +-100 bound to the *unclipped* ``qvel``, while the
observation holds ``clip(qvel, -10, 10)``. So on real env data the velocity part
of the bound can never fire from observations, and the rare real state with
``|qvel| >= 100`` terminates in the env but not here. D4RL/Minari hopper
observations are clipped the same way, so a model trained on them cannot
represent it either; the bound still catches a model's velocity predictions
that diverge past +-100.

Precision: comparisons run in the input dtype (float32 under JAX's default), so
a float64 value within ~1e-7 of a threshold can round to the other side.
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp

__all__ = [
    "TerminationFn",
    "HOPPER_OBS_DIM",
    "HOPPER_HEALTHY_STATE_RANGE",
    "HOPPER_HEALTHY_Z_RANGE",
    "HOPPER_HEALTHY_ANGLE_RANGE",
    "WALKER2D_OBS_DIM",
    "WALKER2D_HEALTHY_Z_RANGE",
    "WALKER2D_HEALTHY_ANGLE_RANGE",
    "HALFCHEETAH_OBS_DIM",
    "hopper_termination_fn",
    "walker2d_termination_fn",
    "halfcheetah_termination_fn",
]

TerminationFn = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]
"""``fn(observations [..., obs_dim], actions [..., act_dim],
next_observations [..., obs_dim]) -> done bool [...]``."""

# gymnasium hopper_v5 defaults (observation without the x position).
HOPPER_OBS_DIM = 11
HOPPER_HEALTHY_STATE_RANGE = (-100.0, 100.0)  # applies to obs[1:]
HOPPER_HEALTHY_Z_RANGE = (0.7, math.inf)  # obs[0]
HOPPER_HEALTHY_ANGLE_RANGE = (-0.2, 0.2)  # obs[1]

# gymnasium walker2d_v5 defaults.
WALKER2D_OBS_DIM = 17
WALKER2D_HEALTHY_Z_RANGE = (0.8, 2.0)  # obs[0]
WALKER2D_HEALTHY_ANGLE_RANGE = (-1.0, 1.0)  # obs[1]

# gymnasium half_cheetah_v5 (never terminates).
HALFCHEETAH_OBS_DIM = 17


def _check_obs_dim(next_observations: jax.Array, obs_dim: int, env: str) -> jax.Array:
    next_observations = jnp.asarray(next_observations)
    if next_observations.ndim < 1 or next_observations.shape[-1] != obs_dim:
        raise ValueError(
            f"{env} termination expects next_observations of shape [..., {obs_dim}] "
            f"(gymnasium v5 observation without the x position), got "
            f"{next_observations.shape}."
        )
    return next_observations


def _in_open_range(x: jax.Array, bounds: tuple[float, float]) -> jax.Array:
    """Elementwise ``low < x < high`` (strict, as in gymnasium v5; False for NaN)."""
    low, high = bounds
    return (x > low) & (x < high)


def hopper_termination_fn(
    observations: jax.Array, actions: jax.Array, next_observations: jax.Array
) -> jax.Array:
    """Hopper-v5 termination, from the next observation.

    Healthy iff ``s'`` is all finite, ``-100 < s'[1:] < 100`` (both bounds;
    MOPO only checks the upper one), ``0.7 < s'[0] < inf`` (height) and
    ``-0.2 < s'[1] < 0.2`` (torso angle).

    Args:
        observations: ``[..., 11]``; unused.
        actions: ``[..., 3]``; unused.
        next_observations: ``[..., 11]``, gymnasium Hopper-v5 observations.

    Returns:
        ``done``: bool ``[...]``, ``not healthy``.
    """
    del observations, actions
    s = _check_obs_dim(next_observations, HOPPER_OBS_DIM, "hopper")
    height, angle = s[..., 0], s[..., 1]
    healthy = (
        jnp.all(jnp.isfinite(s), axis=-1)
        & jnp.all(_in_open_range(s[..., 1:], HOPPER_HEALTHY_STATE_RANGE), axis=-1)
        & _in_open_range(height, HOPPER_HEALTHY_Z_RANGE)
        & _in_open_range(angle, HOPPER_HEALTHY_ANGLE_RANGE)
    )
    return jnp.logical_not(healthy)


def walker2d_termination_fn(
    observations: jax.Array, actions: jax.Array, next_observations: jax.Array
) -> jax.Array:
    """Walker2d-v5 termination, from the next observation.

    Healthy iff ``s'`` is all finite (our addition, see the module docstring),
    ``0.8 < s'[0] < 2.0`` (height) and ``-1 < s'[1] < 1`` (torso angle).

    Args:
        observations: ``[..., 17]``; unused.
        actions: ``[..., 6]``; unused.
        next_observations: ``[..., 17]``, gymnasium Walker2d-v5 observations.

    Returns:
        ``done``: bool ``[...]``, ``not healthy``.
    """
    del observations, actions
    s = _check_obs_dim(next_observations, WALKER2D_OBS_DIM, "walker2d")
    height, angle = s[..., 0], s[..., 1]
    healthy = (
        jnp.all(jnp.isfinite(s), axis=-1)
        & _in_open_range(height, WALKER2D_HEALTHY_Z_RANGE)
        & _in_open_range(angle, WALKER2D_HEALTHY_ANGLE_RANGE)
    )
    return jnp.logical_not(healthy)


def halfcheetah_termination_fn(
    observations: jax.Array, actions: jax.Array, next_observations: jax.Array
) -> jax.Array:
    """HalfCheetah-v5 never terminates.

    Args:
        observations: ``[..., 17]``; unused.
        actions: ``[..., 6]``; unused.
        next_observations: ``[..., 17]``, gymnasium HalfCheetah-v5 observations.

    Returns:
        ``done``: bool ``[...]``, all False.
    """
    del observations, actions
    s = _check_obs_dim(next_observations, HALFCHEETAH_OBS_DIM, "halfcheetah")
    return jnp.zeros(s.shape[:-1], dtype=jnp.bool_)
