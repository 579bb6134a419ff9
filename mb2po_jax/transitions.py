"""The one transitions pytree every learner consumes (the ground floor: it
imports nothing from the project).

All arrays share the leading dimension N (number of transitions). Loaders
produce numpy arrays of any dtype; :func:`to_device` casts at the boundary so
everything on device is float32.
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np


@flax.struct.dataclass
class Transitions:
    """A batch or a whole dataset of transitions (s, a, r, s', terminal, timeout).

    Attributes:
        observations: [N, obs_dim] state s.
        actions: [N, act_dim] action a, in [-1, 1].
        rewards: [N] reward r(s, a).
        next_observations: [N, obs_dim] state s' reached from (s, a).
        terminals: [N] 1.0 where s' is a true terminal state (no bootstrapping).
        timeouts: [N] 1.0 where the episode was truncated after this step (s' is
            not terminal; the value still bootstraps through it).
    """

    observations: jax.Array
    actions: jax.Array
    rewards: jax.Array
    next_observations: jax.Array
    terminals: jax.Array
    timeouts: jax.Array

    def __len__(self) -> int:
        return int(self.rewards.shape[0])

    @property
    def obs_dim(self) -> int:
        return int(self.observations.shape[-1])

    @property
    def act_dim(self) -> int:
        return int(self.actions.shape[-1])


def to_device(data: Transitions) -> Transitions:
    """Casts every field to float32 and moves it to the default device."""
    return jax.tree.map(lambda x: jnp.asarray(np.asarray(x), dtype=jnp.float32), data)


def sample_batch(data: Transitions, key: jax.Array, batch_size: int) -> Transitions:
    """Uniformly samples ``batch_size`` transitions with replacement (jittable)."""
    return sample_prefix(data, len(data), key, batch_size)


def sample_prefix(data: Transitions, size: jax.Array, key: jax.Array, batch_size: int) -> Transitions:
    """Uniformly samples ``batch_size`` rows (with replacement) from the first
    ``size`` rows of a fixed-capacity buffer (``size`` may be traced)."""
    idx = jax.random.randint(key, (batch_size,), 0, size)
    return jax.tree.map(lambda x: x[idx], data)
