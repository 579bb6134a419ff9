"""The conservative model MDP (paper eq. 3, Algorithm 1) and its h-step rollout.

One step of the conservative MDP from states s (rows):

    a ~ pi(.|s)                                 (the current policy)
    i ~ Uniform(elites)                          (one member per row)
    (s' - s, r) ~ N(mu_i(s, a), diag(sigma_i^2(s, a)))
    r~ = r - lambda * u(s, a)
    done = termination_fn(s, a, s')

with the uncertainty u (a registered penalty, :mod:`mb2po_jax.model.penalties`)
taken over the members in use (the elites; by default all N, as the paper).
The policy is any agent's ``sample_action`` (:mod:`mb2po_jax.agents`): this
module knows nothing about the policy's family.

The rollout draws B = samples / h start states uniformly from the dataset and
runs h steps as ONE ``lax.scan`` under the caller's ``jit``. Inside a step,
rows are processed in blocks (``lax.map``) so the [N, rows, 200] ensemble
activations of 1M rows never exist at once: memory is bounded by the block,
not the sample count. A trajectory that terminates stops contributing: its
later steps are marked invalid (and its state is frozen so a diverging model
cannot produce NaNs that leak into statistics).
"""

from __future__ import annotations

from typing import Any, Callable

import flax.struct
import jax
import jax.numpy as jnp

from mb2po_jax.transitions import Transitions
from mb2po_jax.model.dynamics import Dynamics, DynamicsState
from mb2po_jax.model.penalties import get_penalty
from mb2po_jax.termination import TerminationFn

# (policy_params, obs [B, obs_dim], keys [B, 2]) -> actions [B, act_dim]
SampleAction = Callable[[Any, jax.Array, jax.Array], jax.Array]


NEXT_STATE_CHOICES = ("sample", "mean")


@flax.struct.dataclass
class StepOutput:
    """One conservative-MDP step for a block of rows (all [rows, ...])."""

    actions: jax.Array
    next_observations: jax.Array
    penalized_rewards: jax.Array
    model_rewards: jax.Array
    dones: jax.Array
    uncertainty: jax.Array
    disagreement: jax.Array


def make_model_step(
    dynamics: Dynamics,
    sample_action: SampleAction,
    termination_fn: TerminationFn,
    *,
    penalty_coef: float,
    uncertainty_rule: str = "max_std_norm",
    block_size: int = 2048,
    next_state: str = "sample",
) -> Callable[[DynamicsState, Any, jax.Array, jax.Array], StepOutput]:
    """Returns ``step(dyn_state, policy_params, observations [B, obs], key)``.

    ``sample_action`` is the acting agent's (:class:`mb2po_jax.agents.Agent`);
    ``uncertainty_rule`` names a registered penalty. ``next_state``: "sample"
    (Algorithm 1 and MOPO: (s', r) drawn from a random elite's Gaussian) or
    "mean" (that elite's mean, MBPO's deterministic option; a named deviation
    for ablations: the critic then bootstraps from states without the
    model's aleatoric noise).
    """
    penalty = get_penalty(uncertainty_rule)
    if next_state not in NEXT_STATE_CHOICES:
        raise ValueError(f"mb2po.next_state={next_state!r}: valid choices are "
                         f"{list(NEXT_STATE_CHOICES)} ('sample' is the paper's).")
    noise_scale = 1.0 if next_state == "sample" else 0.0

    def block_step(dyn_state: DynamicsState, policy_params, obs: jax.Array, row_keys: jax.Array):
        # One key per row (not per block), so results do not depend on the
        # block size, a speed/memory setting.
        keys = jax.vmap(lambda k: jax.random.split(k, 3))(row_keys)  # [rows, 3, 2]
        actions = sample_action(policy_params, obs, keys[:, 0])
        mean, logvar = dynamics.predict(dyn_state, obs, actions)  # [N, rows, D]
        mean, logvar = mean[dyn_state.elites], logvar[dyn_state.elites]  # [E, rows, D]
        num_elites, d = mean.shape[0], mean.shape[-1]
        member = jax.vmap(lambda k: jax.random.randint(k, (), 0, num_elites))(keys[:, 1])
        # Drawn in both modes, so "mean" picks the same member per row as "sample".
        noise = jax.vmap(lambda k: jax.random.normal(k, (d,)))(keys[:, 2])
        pick = lambda x: jnp.take_along_axis(x, member[None, :, None], axis=0)[0]  # noqa: E731
        sample = pick(mean) + noise_scale * jnp.exp(0.5 * pick(logvar)) * noise
        next_obs = obs + sample[:, :-1]
        reward = sample[:, -1]
        u = penalty(mean, logvar)
        return StepOutput(
            actions=actions,
            next_observations=next_obs,
            penalized_rewards=reward - penalty_coef * u,
            model_rewards=reward,
            dones=termination_fn(obs, actions, next_obs),
            uncertainty=u,
            disagreement=jnp.linalg.norm(jnp.std(mean, axis=0), axis=-1),
        )

    return map_blocks(block_step, block_size)


def map_blocks(block_step: Callable[..., StepOutput], block_size: int
               ) -> Callable[[Any, Any, jax.Array, jax.Array], StepOutput]:
    """``step(dyn_state, policy_params, observations [B, obs], key)`` from a
    ``block_step(dyn_state, policy_params, obs [rows, obs], row_keys [rows, 2])``
    applied to blocks of ``block_size`` rows (``lax.map``): one key per row, so
    the result does not depend on the block size. The last block is padded
    with copies of the last row (a valid state, for steps that run a
    simulator) and the padding dropped."""

    def step(dyn_state, policy_params, observations: jax.Array, key: jax.Array):
        rows = observations.shape[0]
        block = min(block_size, rows)
        num_blocks = -(-rows // block)
        pad = ((0, num_blocks * block - rows), (0, 0))
        padded = jnp.pad(observations, pad, mode="edge")
        keys = jnp.pad(jax.random.split(key, rows), pad, mode="edge")
        out = jax.lax.map(
            lambda xs: block_step(dyn_state, policy_params, xs[0], xs[1]),
            (padded.reshape(num_blocks, block, -1), keys.reshape(num_blocks, block, -1)),
        )
        return jax.tree.map(lambda x: x.reshape((num_blocks * block,) + x.shape[2:])[:rows], out)

    return step


@flax.struct.dataclass
class Rollout:
    """An h-step rollout, flattened to h * B rows (step-major).

    Attributes:
        transitions: (s, a, r~, s', done, timeout=0); model trajectories that
            reach the horizon are truncated, not terminal, so they bootstrap.
        valid: [h * B] bool, False for steps after a trajectory terminated.
        stats: scalars over the valid rows.
    """

    transitions: Transitions
    valid: jax.Array
    stats: dict[str, jax.Array]


def make_rollout(
    model_step: Callable[[DynamicsState, Any, jax.Array, jax.Array], StepOutput],
    *,
    horizon: int,
    num_samples: int,
) -> Callable[[DynamicsState, Any, jax.Array, jax.Array], Rollout]:
    """Returns ``rollout(dyn_state, policy_params, start_pool [n, obs], key)``.

    ``num_samples`` must be a multiple of ``horizon``: B = num_samples / h
    start states, drawn uniformly with replacement from ``start_pool``.
    """
    if horizon < 1 or num_samples < horizon or num_samples % horizon:
        raise ValueError(
            f"mb2po.rollout_samples={num_samples} must be a positive multiple of "
            f"mb2po.horizon={horizon} (B = samples / h start states)."
        )
    num_starts = num_samples // horizon

    def rollout(dyn_state: DynamicsState, policy_params, start_pool: jax.Array, key: jax.Array):
        start_key, steps_key = jax.random.split(key)
        idx = jax.random.randint(start_key, (num_starts,), 0, start_pool.shape[0])

        def body(carry, step_key):
            obs, alive = carry
            out = model_step(dyn_state, policy_params, obs, step_key)
            done = out.dones.astype(bool)
            still_alive = alive & ~done
            transition = Transitions(
                observations=obs,
                actions=out.actions,
                rewards=out.penalized_rewards,
                next_observations=out.next_observations,
                terminals=done.astype(jnp.float32),
                timeouts=jnp.zeros_like(out.penalized_rewards),
            )
            next_obs = jnp.where(still_alive[:, None], out.next_observations, obs)
            return (next_obs, still_alive), (transition, alive, out)

        init = (start_pool[idx], jnp.ones((num_starts,), bool))
        _, (transitions, valid, outs) = jax.lax.scan(
            body, init, jax.random.split(steps_key, horizon)
        )
        flat = lambda x: x.reshape((horizon * num_starts,) + x.shape[2:])  # noqa: E731
        transitions, valid, outs = jax.tree.map(flat, (transitions, valid, outs))
        weight = valid.astype(jnp.float32)
        count = jnp.maximum(jnp.sum(weight), 1.0)
        mean = lambda x: jnp.sum(x * weight) / count  # noqa: E731
        stats = {
            "rollout_uncertainty_mean": mean(outs.uncertainty),
            "rollout_uncertainty_max": jnp.max(jnp.where(valid, outs.uncertainty, -jnp.inf)),
            "rollout_penalized_reward_mean": mean(outs.penalized_rewards),
            "rollout_model_reward_mean": mean(outs.model_rewards),
            "rollout_termination_rate": mean(outs.dones.astype(jnp.float32)),
            "rollout_disagreement_mean": mean(outs.disagreement),
            "rollout_valid_fraction": jnp.mean(weight),
        }
        return Rollout(transitions=transitions, valid=valid, stats=stats)

    return rollout
