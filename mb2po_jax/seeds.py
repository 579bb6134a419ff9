"""Independent seeds side by side: one program over a leading seed axis.

A run with ``num_seeds = N`` trains seeds ``seed, seed + 1, ..., seed + N - 1``
as ONE jitted program: every train state gains a leading axis of length N and
each update is ``jax.vmap``-ped over it, while the dataset is shared (one copy
on device, one compilation, one launch). Seed ``s`` draws exactly the keys a
single-seed run with seed ``s`` draws, so its numbers are that run's up to
float32 rounding: XLA sums a batched matmul in another order than the
unbatched one, so the two agree to about 1e-6 relative after a few updates
and, like any two float orderings, drift apart over a long run.

Where several devices are visible, the seed axis is sharded over them with
``jax.sharding`` (a 1-D :class:`~jax.sharding.Mesh` named ``seed`` and a
:class:`~jax.sharding.NamedSharding`): jit runs each device's seeds where they
live, one program, no per-device Python loop. The dataset is replicated.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

logger = logging.getLogger(__name__)

SEED_AXIS = "seed"


def seed_list(first: int, num_seeds: int) -> tuple[int, ...]:
    """The seeds of a run: ``first, first + 1, ..., first + num_seeds - 1``."""
    if num_seeds < 1:
        raise ValueError(f"num_seeds={num_seeds} must be >= 1.")
    return tuple(first + i for i in range(num_seeds))


def stream_keys(seeds: Sequence[int], stream: int) -> jax.Array:
    """``[N, 2]``: row ``i`` is ``fold_in(PRNGKey(seeds[i]), stream)``, the key a
    single-seed run with ``seeds[i]`` uses for that stream."""
    return jnp.stack([jax.random.fold_in(jax.random.PRNGKey(s), stream) for s in seeds])


def fold_in(keys: jax.Array, data: int | jax.Array) -> jax.Array:
    """``fold_in`` of every seed's key: ``[N, 2] -> [N, 2]``."""
    return jax.vmap(jax.random.fold_in, in_axes=(0, None))(keys, data)


def over_seeds(fn: Callable[..., Any], in_axes: Sequence[int | None],
               donate_argnums: tuple[int, ...] = ()) -> Callable[..., Any]:
    """``fn`` vmapped over the seed axis of the arguments ``in_axes`` marks 0
    (``None``: shared by every seed, e.g. the dataset), jitted as one program."""
    return jax.jit(jax.vmap(fn, in_axes=tuple(in_axes)), donate_argnums=donate_argnums)


def take(tree: Any, index: int) -> Any:
    """Seed ``index``'s slice of a seed-stacked pytree."""
    return jax.tree.map(lambda x: x[index], tree)


def seed_mesh(num_seeds: int, devices: Sequence[jax.Device] | None = None) -> Mesh | None:
    """A 1-D mesh over as many devices as evenly split ``num_seeds`` seeds, or
    None where that is one device (nothing to shard)."""
    devices = list(jax.devices() if devices is None else devices)
    used = max(d for d in range(1, len(devices) + 1) if num_seeds % d == 0)
    if used < len(devices):
        logger.warning(
            "num_seeds=%d does not split evenly over the %d visible devices: the seeds "
            "run on %d of them. Use a multiple of %d seeds to use every device.",
            num_seeds, len(devices), used, len(devices))
    if used == 1:
        return None
    return Mesh(np.array(devices[:used]), (SEED_AXIS,))


def shard(tree: Any, mesh: Mesh | None) -> Any:
    """Places a seed-stacked pytree with its leading axis split over ``mesh``
    (unchanged where ``mesh`` is None)."""
    if mesh is None:
        return tree
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec(SEED_AXIS)))
