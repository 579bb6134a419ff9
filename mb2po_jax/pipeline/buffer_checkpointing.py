"""What a fine-tuning checkpoint keeps of the model buffer, and how the
state comes back: ``buffer_checkpoint='rows'`` keeps the rows;
``'regenerate'`` keeps each slot's policy and rolls the rows out again on
restore, checked against saved per-slot checksums; ``'refill'`` (a named
approximation) keeps neither and rolls every slot out with the current policy."""

from __future__ import annotations

import logging
import time

import jax
import jax.numpy as jnp
import numpy as np

from mb2po_jax import mb2po
from mb2po_jax.pipeline.seed_axis import SeedAxis
from mb2po_jax.transitions import Transitions

logger = logging.getLogger(__name__)


def buffer_checkpointing(axis: SeedAxis, tuning: mb2po.FineTuningConfig,
                         loop: mb2po.FineTuning, init, dynamics_state, dataset: Transitions,
                         key: jax.Array, algorithm: str, policy_params):
    """The fine-tuning phase's ``(to_checkpoint, from_checkpoint)``: the state
    with its buffer's rows for ``buffer_checkpoint='rows'``; else a checkpoint without the
    buffer's rows, which are rolled out again on restore (each slot from its
    policy, the dynamics and its iteration's key) and checked against the
    saved per-slot checksums; with ``'refill'`` (an approximation) every slot
    from the current policy (``policy_params(agent_state)``). A finished
    phase's state comes back without them (``buffer=None``): it is only
    reported."""
    one = not axis.many
    to_checkpoint = loop.to_checkpoint if one else axis.per_seed(loop.to_checkpoint, (0,))
    if tuning.buffer_checkpoint == "rows":
        return to_checkpoint, lambda saved, finished: mb2po.MB2POState(
            saved.agent, saved.buffer, saved.iteration)
    regenerate_slot = (jax.jit(loop.regenerate_slot, donate_argnums=(0,)) if one else
                       axis.per_seed(loop.regenerate_slot, (0, 0, 0, None, 0, None),
                                     donate_argnums=(0,)))
    rollout_slot = (jax.jit(loop.rollout_slot, donate_argnums=(0,)) if one else
                    axis.per_seed(loop.rollout_slot, (0, 0, 0, None, 0), donate_argnums=(0,)))
    checksums = mb2po.slot_checksums if one else axis.per_seed(mb2po.slot_checksums, (0,))

    def regenerate(buffer, policies, i: int):
        return regenerate_slot(buffer, policies, dynamics_state, dataset.observations,
                               axis.fold(key, i), jnp.asarray(i, jnp.int32))

    def from_checkpoint(saved: mb2po.BufferlessCheckpoint, finished: bool) -> mb2po.MB2POState:
        if finished:
            # Only reported, never advanced: the rows (minutes of rollouts at
            # paper scale, the memory of the whole buffer) are not rebuilt.
            logger.info("%s: finished; its model buffer is not rolled out again.", algorithm)
            return mb2po.MB2POState(saved.agent, None, saved.iteration,
                                    getattr(saved, "policies", None),
                                    getattr(saved, "refills", None))
        started = time.time()
        filled = min(int(np.max(np.asarray(saved.iteration))), tuning.buffer_iterations)
        if tuning.buffer_checkpoint == "refill":
            params = policy_params(saved.agent)
            state = mb2po.refill_state(saved, init(), lambda buffer, i: rollout_slot(
                buffer, params, dynamics_state, dataset.observations, axis.fold(key, i)))
            if filled:
                logger.warning(
                    "%s: buffer_checkpoint='refill' (an approximation): rolled the model "
                    "buffer's %d filled slots out again with the CURRENT policy in %.1f s; "
                    "the resumed run is not the uninterrupted one (results report "
                    "buffer_refills).", algorithm, filled, time.time() - started)
            return state
        state, differing = mb2po.restore_state(saved, init(), regenerate, checksums)
        logger.info("%s: rolled the model buffer's %d filled slots out again from their "
                    "policies in %.1f s.", algorithm, filled, time.time() - started)
        if differing:
            logger.warning(
                "%s: the rebuilt model buffer differs from the saved one in the slots of "
                "iterations %s (checksum or row count): this machine or its software "
                "computes the rollouts with other rounding (a GPU without "
                "--xla_gpu_deterministic_ops, another CPU), so the resumed run is not "
                "bit-identical to an uninterrupted one. Resuming with the rebuilt rows.",
                algorithm, differing)
        return state

    return to_checkpoint, from_checkpoint
