"""Independent seeds side by side: one program over a leading seed axis.

A run with ``num_seeds = N`` trains seeds ``seed, seed + 1, ..., seed + N - 1``
as ONE jitted program: every train state gains a leading axis of length N and
each update runs over it, ``jax.vmap``-ped (every op over all seeds) or
``lax.map``-ped (the seeds one after another inside the program; faster on
one CPU device, see :func:`resolve_batching`), while the dataset is shared
(one copy on device, one compilation, one launch). Seed ``s`` draws exactly
the keys a single-seed run with seed ``s`` draws, so its numbers are that
run's up to float32 rounding: XLA orders or fuses the sums of the batched
program differently, so the two agree to about 1e-6 relative after a few
updates and, like any two float orderings, drift apart over a long run.

Where several devices are visible, the seed axis is sharded over them with
``jax.sharding`` (a 1-D :class:`~jax.sharding.Mesh` named ``seed`` and a
:class:`~jax.sharding.NamedSharding`): jit runs each device's seeds where they
live, one program, no per-device Python loop. The dataset is replicated.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Mapping, Sequence

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


BATCHINGS = ("auto", "vmap", "map")


def resolve_batching(batching: str, mesh: Mesh | None = None) -> str:
    """'vmap' or 'map' for ``batching``; 'auto' is 'map' on one CPU device
    (XLA:CPU's batched matmuls run slower than the same matmuls one seed at
    a time: docs/benchmarks.md) and 'vmap' everywhere else."""
    if batching not in BATCHINGS:
        raise ValueError(f"seed_batching={batching!r}: valid: {list(BATCHINGS)}.")
    if batching != "auto":
        return batching
    return "map" if mesh is None and jax.default_backend() == "cpu" else "vmap"


def over_seeds(fn: Callable[..., Any], in_axes: Sequence[int | None],
               donate_argnums: tuple[int, ...] = (), mesh: Mesh | None = None,
               batching: str = "vmap") -> Callable[..., Any]:
    """``fn`` over the seed axis of the arguments ``in_axes`` marks 0
    (``None``: shared by every seed, e.g. the dataset), jitted as one program.

    ``batching``: 'vmap' (``jax.vmap``: every seed in each op, the
    accelerators' way) or 'map' (``lax.map`` over the seed axis: the seeds one
    after another inside the one program, with a single seed's matmul
    shapes; equal to single-seed runs to rounding, as XLA fuses a loop body
    its own way); see :func:`resolve_batching`.
    With a ``mesh``, every output (all seed-stacked) is created split over it,
    so a state is never built whole on one device first."""
    in_axes = tuple(in_axes)
    if resolve_batching(batching, mesh) == "vmap":
        batched = jax.vmap(fn, in_axes=in_axes)
    else:
        def batched(*args):
            def one(seed_args):  # this seed's slices, in argument order
                it = iter(seed_args)
                return fn(*[next(it) if axis == 0 else arg for arg, axis in zip(args, in_axes)])

            return jax.lax.map(one, tuple(a for a, axis in zip(args, in_axes) if axis == 0))
    return jax.jit(batched, donate_argnums=donate_argnums, out_shardings=_split(mesh))


def take(tree: Any, index: int) -> Any:
    """Seed ``index``'s slice of a seed-stacked pytree."""
    return jax.tree.map(lambda x: x[index], tree)


def summarize(per_seed: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> dict[str, Any]:
    """For each score in ``keys`` that every seed has (not None): the mean over
    seeds, ``<key>_over_seeds_std`` and ``<key>_per_seed``."""
    out: dict[str, Any] = {}
    for key in keys:
        values = [one[key] for one in per_seed]
        if all(v is not None for v in values):
            out[key] = float(np.mean(values))
            out[f"{key}_over_seeds_std"] = float(np.std(values))
            out[f"{key}_per_seed"] = values
    return out


def devices_used(num_seeds: int, num_devices: int) -> int:
    """How many of ``num_devices`` devices the seeds are split over: the
    most that take ``num_seeds`` evenly."""
    return max(d for d in range(1, num_devices + 1) if num_seeds % d == 0)


def seed_mesh(num_seeds: int, devices: Sequence[jax.Device] | None = None) -> Mesh | None:
    """A 1-D mesh over as many devices as evenly split ``num_seeds`` seeds, or
    None where that is one device (nothing to shard)."""
    devices = list(jax.devices() if devices is None else devices)
    used = devices_used(num_seeds, len(devices))
    if used < len(devices):
        logger.warning(
            "num_seeds=%d does not split evenly over the %d visible devices: the seeds "
            "run on %d of them. Use a multiple of %d seeds to use every device.",
            num_seeds, len(devices), used, len(devices))
    if used == 1:
        return None
    return Mesh(np.array(devices[:used]), (SEED_AXIS,))


def replicate(tree: Any, mesh: Mesh | None) -> Any:
    """Places a pytree every seed shares (the dataset) whole on every device
    of ``mesh`` (unchanged where ``mesh`` is None)."""
    if mesh is None:
        return tree
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))


def sharded_abstract(abstract: Any, mesh: Mesh | None) -> Any:
    """An abstract seed-stacked state (``jax.eval_shape``) carrying the seed
    axis's sharding, so a checkpoint restores straight into it."""
    if mesh is None:
        return abstract
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=_split(mesh)),
                        abstract)


def _split(mesh: Mesh | None) -> NamedSharding | None:
    """The leading (seed) axis split over ``mesh``; None without one."""
    return None if mesh is None else NamedSharding(mesh, PartitionSpec(SEED_AXIS))
