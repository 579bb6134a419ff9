"""The model ring buffer: wrap-around, valid-only and uniform sampling."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mb2po_jax.model import buffer
from mb2po_jax.transitions import Transitions

OBS_DIM, ACT_DIM = 2, 1


def _rows(ids: np.ndarray) -> Transitions:
    """Rows whose every field encodes the row's id (to trace where it went)."""
    ids = jnp.asarray(ids, jnp.float32)
    return Transitions(
        observations=jnp.stack([ids, -ids], axis=1), actions=ids[:, None], rewards=ids,
        next_observations=jnp.stack([ids + 0.5, -ids], axis=1), terminals=jnp.zeros_like(ids),
        timeouts=jnp.zeros_like(ids),
    )


def test_insert_compacts_valid_rows_and_wraps_around() -> None:
    buf = buffer.init_buffer(num_slots=3, slot_size=4, obs_dim=OBS_DIM, act_dim=ACT_DIM)
    insert = jax.jit(buffer.insert)
    valids = [
        [True, False, True, True],
        [False, False, False, True],
        [True, True, True, True],
        [False, True, False, False],  # 4th iteration overwrites slot 0
    ]
    for it, valid in enumerate(valids):
        buf = insert(buf, _rows(100 * it + np.arange(4)), jnp.array(valid))
    np.testing.assert_array_equal(np.asarray(buf.counts), [1, 1, 4])
    assert int(buf.num_inserted) == 4
    rewards = np.asarray(buf.data.rewards).reshape(3, 4)
    assert rewards[0, 0] == 301  # slot 0 now holds iteration 3's one valid row
    assert rewards[1, 0] == 103
    np.testing.assert_array_equal(rewards[2], [200, 201, 202, 203])
    # Fields stay aligned through compaction.
    np.testing.assert_array_equal(np.asarray(buf.data.observations[:, 0]), np.asarray(buf.data.rewards))


def test_sampling_is_uniform_over_valid_rows_only() -> None:
    buf = buffer.init_buffer(num_slots=4, slot_size=5, obs_dim=OBS_DIM, act_dim=ACT_DIM)
    valid_ids = []
    rng = np.random.default_rng(0)
    for it in range(3):  # slot 3 stays empty
        valid = rng.random(5) < 0.6
        valid[0] = True
        ids = 10 * it + np.arange(5)
        valid_ids += list(ids[valid])
        buf = buffer.insert(buf, _rows(ids), jnp.asarray(valid))
    batch = jax.jit(buffer.sample, static_argnums=2)(buf, jax.random.PRNGKey(1), 60_000)
    chex.assert_shape(batch.observations, (60_000, OBS_DIM))
    drawn = np.asarray(batch.rewards).astype(int)
    assert set(drawn) == set(valid_ids)  # only valid rows, and every one of them
    freq = np.bincount(drawn, minlength=40)[valid_ids] / len(drawn)
    expected = 1.0 / len(valid_ids)
    # 60k draws: the binomial std of each frequency is < 0.002.
    np.testing.assert_allclose(freq, expected, atol=0.008)


def test_insert_rejects_wrong_row_count() -> None:
    buf = buffer.init_buffer(2, 4, OBS_DIM, ACT_DIM)
    with pytest.raises(ValueError, match="slots hold 4"):
        buffer.insert(buf, _rows(np.arange(3)), jnp.ones(3, bool))
