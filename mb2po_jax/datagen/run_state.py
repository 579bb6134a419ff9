"""What a SAC run checkpoints: its replay buffer and :class:`GenerationState`.

Kept apart from the loop (:mod:`mb2po_jax.datagen.sac_run`) because reading a
run back needs only this: :func:`load_run_checkpoint` restores the newest (or
a given) checkpoint of ``<workdir>/checkpoints`` for inspection, e.g. the
replay buffer the ``mixed`` dataset is cut from. The layout (the fields of
:class:`GenerationState`, the SACState inside it, a prefix buffer of
``max_env_steps`` rows) is what existing checkpoints on disk hold.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from mb2po_jax.agents import sac as sac_lib
from mb2po_jax.checkpoint import Checkpointer
from mb2po_jax.datagen import behaviour
from mb2po_jax.datagen.config import GenerationConfig
from mb2po_jax.transitions import Transitions

# ------------------------------------------------------------ replay buffer
# A plain prefix buffer (rows [0, env_steps) filled, never overwritten), not
# model/buffer.py's ring of per-iteration slots: SAC samples uniformly from
# everything collected so far (transitions.sample_prefix), and this layout is
# what existing checkpoints hold.


def empty_buffer(capacity: int, obs_dim: int, act_dim: int) -> Transitions:
    """A zero-filled fixed-capacity buffer: observations, next_observations
    ``[capacity, obs_dim]``, actions ``[capacity, act_dim]``, rewards and 0/1
    flags ``[capacity]``, all float32."""
    # numpy then one transfer each: eager jnp.zeros would compile per shape.
    return jax.tree.map(jnp.asarray, Transitions(
        observations=np.zeros((capacity, obs_dim), np.float32),
        actions=np.zeros((capacity, act_dim), np.float32),
        rewards=np.zeros((capacity,), np.float32),
        next_observations=np.zeros((capacity, obs_dim), np.float32),
        terminals=np.zeros((capacity,), np.float32),
        timeouts=np.zeros((capacity,), np.float32),
    ))


def _insert_impl(buffer: Transitions, rows: Transitions, start: jax.Array) -> Transitions:
    return jax.tree.map(
        lambda column, new: jax.lax.dynamic_update_slice_in_dim(
            column, new.astype(column.dtype), start, 0),
        buffer, rows,
    )


# ``insert_rows(buffer, rows [U, ...], start)`` writes rows [start, start + U).
# The buffer is donated: XLA writes the new rows in place instead of copying
# the whole (up to 1M-row) buffer every chunk.
insert_rows = jax.jit(_insert_impl, donate_argnums=0)


@flax.struct.dataclass
class GenerationState:
    """The checkpointed arrays of a SAC run (field names are the checkpoint
    layout: renaming one orphans existing checkpoints)."""

    sac: sac_lib.SACState
    buffer: Transitions  # capacity rows; rows [0, env_steps) are filled
    medium_actor: dict  # actor snapshot at the medium evaluation (init until then)
    best_actor: dict  # best-evaluated actor (init until the first evaluation)


def initial_generation_state(cfg: GenerationConfig) -> GenerationState:
    """A fresh run's state: the initial SAC state, an empty buffer of
    ``max_env_steps`` rows, and the initial actor as both snapshots."""
    _, obs_dim, act_dim = behaviour.build_agent(cfg)
    sac_state = behaviour.initial_state(cfg)
    return GenerationState(
        sac=sac_state,
        buffer=empty_buffer(cfg.max_env_steps, obs_dim, act_dim),
        medium_actor=sac_state.actor_params,
        best_actor=sac_state.actor_params,
    )


def load_run_checkpoint(cfg: GenerationConfig, workdir: str | Path,
                        step: int | None = None) -> tuple[GenerationState, dict[str, Any]]:
    """The SAC run's checkpoint in ``workdir`` (the newest, or ``step``):
    ``(state, meta)``; ``state.buffer``'s first ``meta['env_steps']`` rows are
    the transitions collected."""
    abstract = jax.eval_shape(lambda: initial_generation_state(cfg))
    with Checkpointer(Path(workdir).expanduser().absolute() / "checkpoints") as checkpointer:
        return checkpointer.restore(abstract, step)
