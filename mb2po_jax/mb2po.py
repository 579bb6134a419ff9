"""One MB2PO fine-tuning iteration (paper Algorithm 1, section 4.3, appendix 7.3).

    rollout: S samples of h-step trajectories in the conservative model MDP,
             from dataset states, with the current policy
    insert:  into the model ring buffer (the last K iterations)
    train:   U AWAC updates (a lax.scan); each batch of B rows holds
             round(omega * B) dataset rows and B - round(omega * B) model rows

all inside ONE ``jit``; metrics come back once per iteration. The AWAC update
is the pretraining one (:mod:`mb2po_jax.awac`) with the fine-tuning
temperature alpha from the config; the policy and critic start from the
pretrained state.

``round`` is round-half-up (``floor(omega * B + 0.5)``), so the split never
depends on Python's banker's rounding; with the paper's B = 1024 it gives 10
real rows for omega = 0.01 and 819 for omega = 0.8.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import jax
import jax.numpy as jnp

from mb2po_jax import buffer as model_buffer
from mb2po_jax.awac import AWACState, Metrics
from mb2po_jax.data.transitions import Transitions, sample_batch
from mb2po_jax.dynamics import DynamicsState
from mb2po_jax.rollout import Rollout


def real_batch_size(omega: float, batch_size: int) -> int:
    """round(omega * B), half up: the number of dataset rows in a batch."""
    if not 0.0 <= omega <= 1.0:
        raise ValueError(f"mb2po.omega={omega} must lie in [0, 1].")
    return int(math.floor(omega * batch_size + 0.5))


def mixed_batch(
    dataset: Transitions, buffer: model_buffer.ModelBuffer, key: jax.Array,
    num_real: int, num_model: int,
) -> Transitions:
    """Dataset rows first, then model rows: [num_real + num_model, ...]."""
    real_key, model_key = jax.random.split(key)
    parts = []
    if num_real:
        parts.append(sample_batch(dataset, real_key, num_real))
    if num_model:
        parts.append(model_buffer.sample(buffer, model_key, num_model))
    return jax.tree.map(lambda *xs: jnp.concatenate(xs, axis=0), *parts)


def make_iteration(
    update: Callable[[AWACState, Transitions, jax.Array], tuple[AWACState, Metrics]],
    rollout: Callable[[DynamicsState, Any, jax.Array, jax.Array], Rollout],
    *,
    batch_size: int,
    omega: float,
    num_updates: int,
) -> Callable[..., tuple[AWACState, model_buffer.ModelBuffer, Metrics]]:
    """Builds the jitted ``iteration(awac_state, buffer, dyn_state, dataset, key)``.

    Args:
        update: the AWAC update (built with the fine-tuning alpha).
        rollout: from :func:`mb2po_jax.rollout.make_rollout`.

    Returns:
        ``iteration(...) -> (awac_state, buffer, metrics)``; the buffer
        argument is donated (updated in place). Metrics: the mean over the
        iteration's updates (the max for ``*_max`` statistics), the rollout statistics, and ``buffer_valid_rows``.
    """
    num_real = real_batch_size(omega, batch_size)
    num_model = batch_size - num_real

    def iteration(
        awac_state: AWACState, buffer: model_buffer.ModelBuffer, dyn_state: DynamicsState,
        dataset: Transitions, key: jax.Array,
    ):
        rollout_key, train_key = jax.random.split(key)
        rolled = rollout(dyn_state, awac_state.policy_params, dataset.observations, rollout_key)
        buffer = model_buffer.insert(buffer, rolled.transitions, rolled.valid)

        def body(state, step_key):
            batch_key, update_key = jax.random.split(step_key)
            batch = mixed_batch(dataset, buffer, batch_key, num_real, num_model)
            return update(state, batch, update_key)

        awac_state, metrics = jax.lax.scan(
            body, awac_state, jax.random.split(train_key, num_updates)
        )
        # Peaks (``*_max``) stay peaks over the iteration, so the divergence
        # guard sees a spike that a mean would hide.
        metrics = {k: jnp.max(v) if k.endswith("_max") else jnp.mean(v) for k, v in metrics.items()}
        metrics.update(rolled.stats)
        metrics["buffer_valid_rows"] = model_buffer.num_valid(buffer).astype(jnp.float32)
        return awac_state, buffer, metrics

    return jax.jit(iteration, donate_argnums=(1,))
