"""The real simulator as the conservative MDP's model: a diagnostic, not the paper's method.

MB2PO can fail for two different reasons: the learned model is wrong where
the policy goes (model error the penalty does not cover), or the fine-tuning
update itself degrades the policy even on correct data. This module separates
the two. It replaces the ensemble's step by MuJoCo's own: the same rollout
(:func:`mb2po_jax.model.rollout.make_rollout`), the same policy samples with
the same per-row keys, but (s', r, done) are the simulator's, with no
penalty (the real MDP has no model uncertainty). If MB2PO still degrades with
a perfect model, the cause is the update, not the model.

The states are put back into the simulator from observations
(:class:`mb2po_jax.model.simulator_check.SimulatorProbe`), so only rows whose
observation holds the whole state can start a step (no clipped velocity), and
only one step: the simulator's next observation may clip a velocity again, and
the rollout carries observations, not full states. Hence ``horizon = 1`` (the
paper's h for hopper and walker2d, and for most halfcheetah datasets except
-random and -medium) and a start pool of restorable dataset rows.

Host-side: each block of rows leaves the ``jit`` through ``jax.pure_callback``
and is stepped one row at a time in MuJoCo (about 0.2 ms per walker2d row on
one Zen 3 core, 10 s per 50k-sample iteration). Meant for diagnostic runs at
CPU scale, not for speed.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from mb2po_jax.model.rollout import SampleAction, StepOutput, map_blocks
from mb2po_jax.model.simulator_check import SimulatorProbe


def make_simulator_step(
    probe: SimulatorProbe, sample_action: SampleAction, *, block_size: int = 2048,
) -> Callable[[Any, Any, jax.Array, jax.Array], StepOutput]:
    """Returns ``step(dyn_state, policy_params, observations [B, obs], key)``
    with the signature of :func:`mb2po_jax.model.rollout.make_model_step`
    (``dyn_state`` is ignored): actions from ``sample_action`` with the same
    per-row keys as the learned model's step, (s', r, done) from ``probe``,
    ``penalized_rewards == model_rewards`` (no penalty), ``uncertainty`` and
    ``disagreement`` zero.

    The observations must be restorable (``probe.restorable``); the caller
    chooses the start states (see :func:`restorable_start_pool`)."""

    def host_step(obs: np.ndarray, actions: np.ndarray):
        true = probe.step(np.asarray(obs), np.asarray(actions))
        return (true["next_observations"], true["rewards"],
                true["terminated"].astype(np.float32))

    def block_step(dyn_state, policy_params, obs: jax.Array, row_keys: jax.Array):
        del dyn_state
        # The same split as the learned model's step: row i acts with the
        # same key, so the two runs differ only in what the model returns.
        keys = jax.vmap(lambda k: jax.random.split(k, 3))(row_keys)
        actions = sample_action(policy_params, obs, keys[:, 0])
        rows = obs.shape[0]
        shapes = (jax.ShapeDtypeStruct((rows, obs.shape[1]), jnp.float32),
                  jax.ShapeDtypeStruct((rows,), jnp.float32),
                  jax.ShapeDtypeStruct((rows,), jnp.float32))
        # "sequential": with several seeds vmapped, one host call per seed.
        next_obs, reward, done = jax.pure_callback(host_step, shapes, obs, actions,
                                                   vmap_method="sequential")
        zeros = jnp.zeros_like(reward)
        return StepOutput(actions=actions, next_observations=next_obs, penalized_rewards=reward,
                          model_rewards=reward, dones=done, uncertainty=zeros,
                          disagreement=zeros)

    return map_blocks(block_step, block_size)


def restorable_start_pool(probe: SimulatorProbe, observations: np.ndarray, *,
                          field: str) -> np.ndarray:
    """The dataset observations a simulator step can start from ([n', obs]).

    Raises:
        ValueError: none is restorable (every row has a clipped velocity);
            ``field`` names the config field that asked for these rows.
    """
    observations = np.asarray(observations)
    keep = probe.restorable(observations)
    if not keep.any():
        raise ValueError(f"{field}: no dataset row can be put back into the simulator (every "
                         f"observation has a velocity at the env's clip bound "
                         f"{probe.velocity_clip}).")
    return observations[keep]
