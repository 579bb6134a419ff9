"""The model replay buffer: the last K iterations of model rollouts, on device.

Algorithm 1 samples model data "uniformly from {D_{k-i}}_{i=0..99}": the
rollouts of the last K = 100 iterations. The buffer is a ring of K slots, one
per iteration, each holding that iteration's S = rollout-samples rows. A
rollout's invalid rows (steps after its trajectory terminated) must never be
sampled, so on insertion the valid rows are compacted to the front of their
slot (a stable partition) and the slot's valid count is kept. Sampling is then
exactly uniform over every valid row in the buffer:

    P(slot k) = count_k / sum(counts),  row ~ Uniform{0 .. count_k - 1},

i.e. each valid row has probability 1 / sum(counts), with O(batch) work and
no per-sample scan of the (up to 100M-row) buffer.

Size: K * S * (2 obs_dim + act_dim + 3) float32; the paper's K = 100, S = 1M is
~11 GB for hopper and ~17 GB for walker2d (fine on a GPU; CPU configs scale K
or S down). Pass the buffer as a donated ``jit`` argument so XLA updates it in
place instead of copying it every iteration.
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp

from mb2po_jax.transitions import Transitions


@flax.struct.dataclass
class ModelBuffer:
    """Ring buffer of K slots of S rows.

    Attributes:
        data: Transitions with leading dim K * S (slot-major).
        counts: [K] int32 valid rows at the front of each slot (0 = empty).
        num_inserted: int32 scalar, iterations inserted so far; the next
            insertion goes to slot ``num_inserted % K``.
    """

    data: Transitions
    counts: jax.Array
    num_inserted: jax.Array

    @property
    def num_slots(self) -> int:
        return int(self.counts.shape[0])

    @property
    def slot_size(self) -> int:
        return int(self.data.rewards.shape[0]) // self.num_slots


def init_buffer(num_slots: int, slot_size: int, obs_dim: int, act_dim: int) -> ModelBuffer:
    """An empty buffer of ``num_slots`` iterations of ``slot_size`` rows."""
    if num_slots < 1 or slot_size < 1:
        raise ValueError(f"num_slots and slot_size must be >= 1, got {num_slots}, {slot_size}.")
    rows = num_slots * slot_size
    # A fresh array per field: the buffer is donated to jit, and one array
    # shared by two fields could not be donated twice.
    vec = lambda dim: jnp.zeros((rows, dim), jnp.float32)  # noqa: E731
    scalar = lambda: jnp.zeros((rows,), jnp.float32)  # noqa: E731
    data = Transitions(
        observations=vec(obs_dim), actions=vec(act_dim), rewards=scalar(),
        next_observations=vec(obs_dim), terminals=scalar(), timeouts=scalar(),
    )
    return ModelBuffer(data=data, counts=jnp.zeros((num_slots,), jnp.int32),
                       num_inserted=jnp.zeros((), jnp.int32))


def insert(buffer: ModelBuffer, transitions: Transitions, valid: jax.Array) -> ModelBuffer:
    """Overwrites the oldest slot with one iteration's rows ([S, ...], valid [S])."""
    size = buffer.slot_size
    if transitions.rewards.shape[0] != size:
        raise ValueError(
            f"insert got {transitions.rewards.shape[0]} rows but slots hold {size}: "
            f"each insertion must be one iteration's full rollout."
        )
    # Stable partition: valid rows first, in their original order.
    order = jnp.argsort(~valid, stable=True)
    compacted = jax.tree.map(lambda x: x[order], transitions)
    slot = buffer.num_inserted % buffer.num_slots
    start = slot * size
    data = jax.tree.map(
        lambda store, new: jax.lax.dynamic_update_slice_in_dim(store, new, start, axis=0),
        buffer.data, compacted,
    )
    counts = buffer.counts.at[slot].set(jnp.sum(valid).astype(jnp.int32))
    return ModelBuffer(data=data, counts=counts, num_inserted=buffer.num_inserted + 1)


def sample(buffer: ModelBuffer, key: jax.Array, batch_size: int) -> Transitions:
    """``batch_size`` rows uniformly (with replacement) from the valid rows.

    The buffer must hold at least one valid row (sampling an empty buffer
    returns zeros; the MB2PO iteration always inserts before it samples).
    """
    slot_key, row_key = jax.random.split(key)
    logits = jnp.log(buffer.counts.astype(jnp.float32))  # log 0 = -inf: never drawn
    slot = jax.random.categorical(slot_key, logits, shape=(batch_size,))
    count = buffer.counts[slot]
    offset = jnp.floor(jax.random.uniform(row_key, (batch_size,)) * count).astype(jnp.int32)
    offset = jnp.minimum(offset, jnp.maximum(count - 1, 0))  # u * count can round up to count
    rows = slot * buffer.slot_size + offset
    return jax.tree.map(lambda x: x[rows], buffer.data)


def num_valid(buffer: ModelBuffer) -> jax.Array:
    return jnp.sum(buffer.counts)
