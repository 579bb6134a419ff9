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
from mb2po_jax.awac import AWACState, Metrics, reduce_chunk_metrics
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
        metrics = reduce_chunk_metrics(metrics)
        metrics.update(rolled.stats)
        metrics["buffer_valid_rows"] = model_buffer.num_valid(buffer).astype(jnp.float32)
        return awac_state, buffer, metrics

    return jax.jit(iteration, donate_argnums=(1,))


def make_diagnostics(
    q_fn: Callable[[Any, jax.Array, jax.Array], jax.Array],
    act_fn: Callable[[Any, jax.Array], jax.Array],
    *,
    num_rows: int = 1024,
) -> Callable[..., Metrics]:
    """Builds the jitted ``diagnostics(state, reference, buffer, dataset, key)``.

    What a fine-tuning run needs to be understood when it does not improve:
    the critic on real vs model rows (is model data inflating Q?) and how far
    the policy has moved from a reference (the pretrained policy) on dataset
    states. Agent-agnostic: ``q_fn(state, obs [B, o], actions [B, a]) -> [B]``
    and ``act_fn(state, obs [B, o]) -> [B, a]`` (deterministic action).

    Returns:
        scalars ``q_real_mean``, ``q_model_mean`` (Q of ``num_rows`` dataset /
        model-buffer rows at their own actions) and ``policy_shift`` (mean L2
        distance between the two deterministic actions on ``num_rows`` dataset
        states).
    """

    @jax.jit
    def diagnostics(state: Any, reference: Any, buffer: model_buffer.ModelBuffer,
                    dataset: Transitions, key: jax.Array) -> Metrics:
        real_key, model_key = jax.random.split(key)
        real = sample_batch(dataset, real_key, num_rows)
        model = model_buffer.sample(buffer, model_key, num_rows)
        shift = act_fn(state, real.observations) - act_fn(reference, real.observations)
        return {
            "q_real_mean": jnp.mean(q_fn(state, real.observations, real.actions)),
            "q_model_mean": jnp.mean(q_fn(state, model.observations, model.actions)),
            "policy_shift": jnp.mean(jnp.linalg.norm(shift, axis=-1)),
        }

    return diagnostics
