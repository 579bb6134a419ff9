"""A run's seed axis: its keys, its batched programs and its device mesh.

Randomness: every phase takes its own stream ``fold_in(PRNGKey(seed), id)``
and chunk ``c`` uses ``fold_in(stream_key, c)``, so phases are independent of
each other's chunk sizes and a resumed phase repeats the same numbers.

With ``num_seeds = N > 1`` every phase trains seeds ``seed .. seed+N-1`` as
one program (:mod:`mb2po_jax.seeds`): states carry a leading seed axis, seed
``s`` draws the keys of a single-seed run with seed ``s``, the dataset is
shared, and the seed axis is sharded over the visible devices. With N = 1
nothing has a seed axis (checkpoints keep the single-seed layout).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Sequence

import jax
import numpy as np

from mb2po_jax import mb2po, seeds

# Stream ids folded into the seed key.
AWAC_INIT, AWAC_TRAIN, DYN_SPLIT, DYN_INIT, DYN_TRAIN, MB2PO_STREAM, MOPO_INIT, MOPO_STREAM = \
    range(8)


@dataclasses.dataclass(frozen=True)
class SeedAxis:
    """``seed``, ``num_seeds`` and how the seeds are batched ('auto', 'vmap', 'map')."""

    seed: int
    num_seeds: int = 1
    batching: str = "auto"

    @classmethod
    def of(cls, settings) -> "SeedAxis":
        """The axis of a :class:`~mb2po_jax.pipeline.settings.Settings`."""
        return cls(settings.seed, settings.num_seeds, settings.seed_batching)

    @property
    def many(self) -> bool:
        return self.num_seeds > 1

    @property
    def seeds(self) -> tuple[int, ...]:
        """The seeds of a multi-seed run; ``()`` for one seed (no seed axis)."""
        return seeds.seed_list(self.seed, self.num_seeds) if self.many else ()

    def key(self, stream: int) -> jax.Array:
        """The stream's key: ``[2]``, or ``[N, 2]`` (one per seed) with a seed axis."""
        if self.many:
            return seeds.stream_keys(self.seeds, stream)
        return jax.random.fold_in(jax.random.PRNGKey(self.seed), stream)

    def fold(self, key: jax.Array, data: int) -> jax.Array:
        return seeds.fold_in(key, data) if self.many else jax.random.fold_in(key, data)

    def per_seed(self, fn: Callable, in_axes: Sequence[int | None],
                 donate_argnums: tuple[int, ...] = ()) -> Callable:
        """``fn`` itself for one seed; for several, one jitted program over the
        seed axis (``in_axes``, ``None`` for shared arguments; vmapped or
        lax.mapped as ``batching`` says), its outputs split over the devices."""
        if not self.many:
            return fn
        return seeds.over_seeds(fn, in_axes, donate_argnums, mesh=_mesh(self.num_seeds),
                                batching=self.batching)

    def abstract(self, init: Callable[[], Any]) -> Callable[[], Any]:
        """The state's abstract structure, with the seed axis's sharding."""
        return lambda: seeds.sharded_abstract(jax.eval_shape(init), _mesh(self.num_seeds))

    def shared(self, tree: Any) -> Any:
        """Data every seed reads (the dataset), replicated over the seeds' devices."""
        return seeds.replicate(tree, _mesh(self.num_seeds))

    def split(self, tree: Any) -> list:
        """Host values -> one per seed (a list of one without a seed axis)."""
        tree = jax.device_get(tree)
        if not self.many:
            return [tree]
        return [seeds.take(tree, i) for i in range(self.num_seeds)]


@functools.lru_cache(maxsize=None)
def _mesh(num_seeds: int):
    return seeds.seed_mesh(num_seeds) if num_seeds > 1 else None


def counts(state) -> np.ndarray:
    """A phase state's progress count: a fine-tuning state's iterations, else
    its steps (``[N]`` with a seed axis)."""
    return np.asarray(state.iteration if isinstance(state, mb2po.MB2POState) else state.step)


def progress(state) -> int:
    """The runner's count. With a seed axis, the seeds still training (early
    stopping freezes the others) are all at the largest count."""
    return int(np.max(counts(state)))
