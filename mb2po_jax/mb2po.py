"""One MB2PO fine-tuning iteration (paper Algorithm 1, section 4.3, appendix 7.3).

    rollout: S samples of h-step trajectories in the conservative model MDP,
             from dataset states, with the current policy
    insert:  into the model ring buffer (the last K iterations)
    train:   U AWAC updates (a lax.scan); each batch of B rows holds
             round(omega * B) dataset rows and B - round(omega * B) model rows

all inside ONE ``jit``; metrics come back once per iteration. In MB2PO the
agent is AWAC (:mod:`mb2po_jax.agents.awac`) with the fine-tuning temperature
alpha, starting from the pretrained state. Nothing here is specific to AWAC:
:func:`make_fine_tuning` takes any agent of the :class:`mb2po_jax.agents.Agent`
interface, a dynamics model and a termination function, so MOPO (SAC from
scratch in the same conservative MDP, 5 % real rows) is the same loop with
other values.

``round`` is round-half-up (``floor(omega * B + 0.5)``), so the split never
depends on Python's banker's rounding; with the paper's B = 1024 it gives 10
real rows for omega = 0.01 and 819 for omega = 0.8.

Checkpoints (``FineTuningConfig.buffer_checkpoint``): ``"rows"`` saves the
state with the buffer's rows (:class:`RowsCheckpoint`); ``"regenerate"`` saves
each slot's policy instead (:class:`BufferlessCheckpoint`), and
:func:`restore_state` rolls the slots out again with the iteration's own
``collect`` and key, checking them against per-slot checksums.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, NamedTuple

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from mb2po_jax import paper
from mb2po_jax.agents import Agent, Metrics
from mb2po_jax.model import buffer as model_buffer
from mb2po_jax.model import rollout as model_rollout
from mb2po_jax.model.dynamics import Dynamics, DynamicsState
from mb2po_jax.termination import TerminationFn
from mb2po_jax.training import reduce_chunk_metrics
from mb2po_jax.transitions import Transitions, sample_batch


@dataclasses.dataclass(frozen=True)
class FineTuningConfig:
    """One fine-tuning loop's settings. Defaults are MB2PO's at the paper's
    scale (appendix 7.3) with the omega, h and lambda of its medium tasks;
    :meth:`paper` takes a task's own values. The pipeline builds it from the
    config's ``mb2po`` (or, for MOPO, ``mopo``) section."""

    horizon: int = 1  # h, model steps per rollout
    rollout_samples: int = 1_000_000  # S model transitions per iteration (S / h start states)
    penalty_coef: float = 1.0  # lambda
    uncertainty: str = "max_std_norm"  # a registered penalty (mb2po_jax.model.penalties)
    block_size: int = 2048  # rollout rows per block (memory only)
    batch_size: int = 1024  # B
    omega: float = 0.8  # fraction of dataset rows in a batch
    updates_per_iteration: int = 1000  # U
    buffer_iterations: int = 100  # K, iterations the model buffer keeps
    next_state: str = "sample"  # "sample" (the paper's) or "mean": model_rollout.make_model_step
    # What a checkpoint holds of the model buffer: "rows" (the K x S rows
    # themselves) or "regenerate" (the policy each slot was rolled out with;
    # the rows are rolled out again on restore). See :class:`BufferlessCheckpoint`.
    buffer_checkpoint: str = "rows"

    @classmethod
    def paper(cls, task: str, **overrides) -> "FineTuningConfig":
        """The paper's settings for a task such as ``'hopper-mixed'`` (its
        omega, h and lambda; the fine-tuning temperature alpha belongs to the
        agent: ``AWACConfig(alpha=paper.mb2po_hyperparameters(task).alpha)``)."""
        values = paper.mb2po_hyperparameters(task)
        return cls(**{"horizon": values.horizon, "omega": values.omega,
                      "penalty_coef": values.penalty_coef, **overrides})


# "refill" is a named approximation, off by default: see RefillCheckpoint.
BUFFER_CHECKPOINTS = ("rows", "regenerate", "refill")


@flax.struct.dataclass
class MB2POState:
    """The fine-tuning phase's state: the agent, the model buffer, the count.

    ``policies`` (only with ``buffer_checkpoint="regenerate"``, else None):
    ``[K, ...]`` the policy parameters each buffer slot was rolled out with
    (iteration i's in slot ``i % K``), which is all a checkpoint needs to
    rebuild the buffer's rows. ``refills`` (only with ``"refill"``): how many
    times the buffer was refilled from the current policy on a restore.
    """

    agent: Any
    buffer: model_buffer.ModelBuffer
    iteration: jax.Array
    policies: Any = None
    refills: Any = None


@flax.struct.dataclass
class RowsCheckpoint:
    """What a ``buffer_checkpoint="rows"`` checkpoint holds: the state with
    its model buffer's rows (the form of every checkpoint made before
    ``policies`` existed, so those still restore)."""

    agent: Any
    buffer: model_buffer.ModelBuffer
    iteration: jax.Array


@flax.struct.dataclass
class BufferlessCheckpoint:
    """What a ``buffer_checkpoint="regenerate"`` checkpoint holds.

    At paper scale the model buffer is K x S = 100M rows, 11-17 GB per seed
    (hopper to halfcheetah), and a checkpoint keeping it is that size on
    disk, written every ``checkpoint_every`` iterations: two kept checkpoints
    of three vmapped seeds outgrow a 64 GiB disk. Its rows are a function of
    the iteration's policy, the dynamics, the dataset and the iteration's key,
    so this keeps the K policies (about 0.9 MB each at paper size) and rolls
    the slots out again on restore. ``slot_checksums`` ([K], a sum over each
    slot's rows) says whether the rebuilt rows are the saved ones.
    """

    agent: Any
    iteration: jax.Array
    policies: Any
    counts: jax.Array
    num_inserted: jax.Array
    slot_checksums: jax.Array


@flax.struct.dataclass
class RefillCheckpoint:
    """What a ``buffer_checkpoint="refill"`` checkpoint holds: the agent and
    the count, nothing of the model buffer (about 10 MB per seed at paper
    size, where ``"regenerate"``'s K policies are about 95 MB).

    A named approximation, off by default: on restore every filled slot is
    rolled out again with its iteration's key but with the CURRENT policy,
    not the older one that filled it, so the resumed run is not the
    uninterrupted one. ``refills`` counts the restores that did so; results
    report it (``buffer_refills``).
    """

    agent: Any
    iteration: jax.Array
    refills: jax.Array


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


def make_collect(
    rollout: Callable[[DynamicsState, Any, jax.Array, jax.Array], model_rollout.Rollout],
) -> Callable[..., tuple[model_buffer.ModelBuffer, Metrics]]:
    """``collect(buffer, dyn_state, policy_params, start_observations, key)
    -> (buffer, rollout_stats)``: one iteration's rollout into the buffer's
    next slot. The iteration and the buffer's regeneration share it, so a
    rebuilt slot is traced from the same operations as the original."""

    def collect(buffer, dyn_state, policy_params, observations, key):
        rolled = rollout(dyn_state, policy_params, observations, key)
        return model_buffer.insert(buffer, rolled.transitions, rolled.valid), rolled.stats

    return collect


def make_iteration(
    agent: Agent,
    rollout: Callable[[DynamicsState, Any, jax.Array, jax.Array], model_rollout.Rollout],
    *,
    batch_size: int,
    omega: float,
    num_updates: int,
) -> Callable[..., tuple[Any, model_buffer.ModelBuffer, Metrics]]:
    """Builds the jitted ``iteration(agent_state, buffer, dyn_state, dataset, key)``.

    Args:
        agent: its ``update`` trains, its ``policy_params`` roll out (in MB2PO,
            AWAC built with the fine-tuning alpha).
        rollout: from :func:`mb2po_jax.model.rollout.make_rollout`.

    Returns:
        ``iteration(...) -> (agent_state, buffer, metrics)``; the buffer
        argument is donated (updated in place). Metrics: the mean over the
        iteration's updates (the max for ``*_max`` statistics), the rollout statistics, and ``buffer_valid_rows``.
    """
    num_real = real_batch_size(omega, batch_size)
    num_model = batch_size - num_real
    collect = make_collect(rollout)

    def iteration(
        agent_state: Any, buffer: model_buffer.ModelBuffer, dyn_state: DynamicsState,
        dataset: Transitions, key: jax.Array,
    ):
        rollout_key, train_key = jax.random.split(key)
        buffer, rollout_stats = collect(buffer, dyn_state, agent.policy_params(agent_state),
                                        dataset.observations, rollout_key)

        def body(state, step_key):
            batch_key, update_key = jax.random.split(step_key)
            batch = mixed_batch(dataset, buffer, batch_key, num_real, num_model)
            return agent.update(state, batch, update_key)

        agent_state, metrics = jax.lax.scan(
            body, agent_state, jax.random.split(train_key, num_updates)
        )
        # Peaks (``*_max``) stay peaks over the iteration, so the divergence
        # guard sees a spike that a mean would hide.
        metrics = reduce_chunk_metrics(metrics)
        metrics.update(rollout_stats)
        metrics["buffer_valid_rows"] = model_buffer.num_valid(buffer).astype(jnp.float32)
        return agent_state, buffer, metrics

    return jax.jit(iteration, donate_argnums=(1,))


def make_diagnostics(agent: Agent, *, num_rows: int = 1024) -> Callable[..., Metrics]:
    """Builds the jitted ``diagnostics(state, reference, buffer, dataset, key)``.

    What a fine-tuning run needs to be understood when it does not improve:
    the critic on real vs model rows (is model data inflating Q?) and how far
    the policy has moved from a reference (the pretrained policy) on dataset
    states, from the agent's ``q_value`` and deterministic ``act``.

    Returns:
        scalars ``q_real_mean``, ``q_model_mean`` (Q of ``num_rows`` dataset /
        model-buffer rows at their own actions) and ``policy_shift`` (mean L2
        distance between the two deterministic actions on ``num_rows`` dataset
        states); for an agent with advantage-weighted policy steps (an
        ``awr_weights`` field, as AWAC has), also ``weight_real_mean`` and
        ``weight_model_mean``: the mean weight the policy step gives those
        dataset and model rows (a dataset row far below V gets ~0, which
        switches off the omega term that keeps the policy near the data).
    """
    awr_weights = getattr(agent, "awr_weights", None)

    @jax.jit
    def diagnostics(state: Any, reference: Any, buffer: model_buffer.ModelBuffer,
                    dataset: Transitions, key: jax.Array) -> Metrics:
        real_key, model_key = jax.random.split(key)
        real = sample_batch(dataset, real_key, num_rows)
        model = model_buffer.sample(buffer, model_key, num_rows)
        act = lambda s, obs: agent.act(agent.policy_params(s), obs)  # noqa: E731
        shift = act(state, real.observations) - act(reference, real.observations)
        metrics = {
            "q_real_mean": jnp.mean(agent.q_value(state, real.observations, real.actions)),
            "q_model_mean": jnp.mean(agent.q_value(state, model.observations, model.actions)),
            "policy_shift": jnp.mean(jnp.linalg.norm(shift, axis=-1)),
        }
        if awr_weights is not None:
            # Baseline keys of their own, so the sampled batches above are
            # the ones an agent without weights draws.
            real_w, model_w = jax.random.split(jax.random.fold_in(key, 1))
            metrics["weight_real_mean"] = jnp.mean(
                awr_weights(state, real.observations, real.actions, real_w))
            metrics["weight_model_mean"] = jnp.mean(
                awr_weights(state, model.observations, model.actions, model_w))
        return metrics

    return diagnostics


def init_state(agent_state: Any, config: FineTuningConfig, *, obs_dim: int,
               act_dim: int, policy_params: Any = None) -> MB2POState:
    """The loop's start: ``agent_state``, an empty buffer of K x S rows, iteration 0.

    With ``config.buffer_checkpoint == "regenerate"``, ``policy_params`` (the
    agent's) shapes the ring of the K slots' policies (zeros until filled)."""
    if config.buffer_checkpoint not in BUFFER_CHECKPOINTS:
        raise ValueError(f"buffer_checkpoint={config.buffer_checkpoint!r}: valid: "
                         f"{list(BUFFER_CHECKPOINTS)}.")
    policies = None
    if config.buffer_checkpoint == "regenerate":
        k = config.buffer_iterations
        policies = jax.tree.map(lambda p: jnp.zeros((k,) + p.shape, p.dtype), policy_params)
    return MB2POState(
        agent=agent_state,
        buffer=model_buffer.init_buffer(config.buffer_iterations, config.rollout_samples,
                                        obs_dim, act_dim),
        iteration=jnp.zeros((), jnp.int32),
        policies=policies,
        refills=jnp.zeros((), jnp.int32) if config.buffer_checkpoint == "refill" else None,
    )


def slot_checksums(buffer: model_buffer.ModelBuffer) -> jax.Array:
    """``[K]``: the sum of every number in each slot (valid rows and the
    masked rest alike), a fingerprint of the slot's rows."""
    k = buffer.num_slots
    per_field = [jnp.sum(x.reshape(k, -1), axis=1) for x in jax.tree.leaves(buffer.data)]
    return jnp.sum(jnp.stack(per_field), axis=0)


def checkpoint_form(state: MB2POState, buffer_checkpoint: str
                    ) -> RowsCheckpoint | BufferlessCheckpoint | RefillCheckpoint:
    """What a checkpoint of ``state`` holds under ``buffer_checkpoint``."""
    if buffer_checkpoint == "rows":
        return RowsCheckpoint(agent=state.agent, buffer=state.buffer, iteration=state.iteration)
    if buffer_checkpoint == "refill":
        return RefillCheckpoint(agent=state.agent, iteration=state.iteration,
                                refills=state.refills)
    return BufferlessCheckpoint(
        agent=state.agent, iteration=state.iteration, policies=state.policies,
        counts=state.buffer.counts, num_inserted=state.buffer.num_inserted,
        slot_checksums=slot_checksums(state.buffer))


class FineTuning(NamedTuple):
    """A fine-tuning loop built by :func:`make_fine_tuning`.

    Attributes:
        init: ``agent_state -> MB2POState`` with an empty model buffer.
        step: ``(state, dyn_state, dataset, key, reference) -> (state, metrics)``,
            one iteration plus the diagnostics against ``reference`` (an agent
            state, e.g. the pretrained one); the old state's buffer is donated.
        to_checkpoint: ``state -> what a checkpoint holds``: a
            :class:`RowsCheckpoint` (``buffer_checkpoint="rows"``) or a
            :class:`BufferlessCheckpoint`.
        regenerate_slot: ``(buffer, policies, dyn_state, observations, key,
            i) -> buffer``: rolls iteration ``i``'s slot out again with its
            policy from ``policies`` into ``buffer``; ``key`` is the key that
            iteration's ``step`` got. :func:`restore_state` calls it for each
            slot a :class:`BufferlessCheckpoint` left out.
        rollout_slot: ``(buffer, policy_params, dyn_state, observations, key)
            -> buffer``: the same with the given policy (what
            ``regenerate_slot`` does with the slot's own; :func:`refill_state`
            with the current one).
    """

    init: Callable[[Any], MB2POState]
    step: Callable[..., tuple[MB2POState, Metrics]]
    to_checkpoint: Callable[[MB2POState], Any]
    regenerate_slot: Callable[..., model_buffer.ModelBuffer]
    rollout_slot: Callable[..., model_buffer.ModelBuffer]


def make_fine_tuning(
    agent: Agent, dynamics: Dynamics, termination_fn: TerminationFn,
    config: FineTuningConfig, *, obs_dim: int, act_dim: int,
    model_step: Callable[..., model_rollout.StepOutput] | None = None,
    start_pool: jax.Array | None = None,
    rollout: Callable[..., model_rollout.Rollout] | None = None,
) -> FineTuning:
    """Algorithm 1's loop for any agent in the conservative model MDP of
    ``dynamics`` (rollouts with the agent's ``sample_action``).

    ``model_step`` replaces that MDP's step (a diagnostic, e.g.
    :func:`mb2po_jax.model.simulator_model.make_simulator_step`), and
    ``start_pool`` [n, obs] the dataset's observations as rollout starts.
    ``rollout`` replaces the whole h-step rollout (a control, e.g.
    :func:`mb2po_jax.model.online_env.make_online_rollout`: the real env's
    episodes); it must return ``config.rollout_samples`` rows."""
    cfg = config
    if rollout is not None:
        rollout_fn = rollout
    else:
        step_fn = model_step or model_rollout.make_model_step(
            dynamics, agent.sample_action, termination_fn, penalty_coef=cfg.penalty_coef,
            uncertainty_rule=cfg.uncertainty, block_size=cfg.block_size,
            next_state=cfg.next_state)
        rollout_fn = model_rollout.make_rollout(step_fn, horizon=cfg.horizon,
                                                num_samples=cfg.rollout_samples)
    if start_pool is not None:
        dataset_rollout, pool = rollout_fn, jnp.asarray(start_pool)
        rollout_fn = lambda dyn, params, _, key: dataset_rollout(dyn, params, pool, key)  # noqa: E731
    iteration = make_iteration(agent, rollout_fn, batch_size=cfg.batch_size, omega=cfg.omega,
                               num_updates=cfg.updates_per_iteration)
    diagnostics = make_diagnostics(agent)
    collect = make_collect(rollout_fn)
    regenerate = cfg.buffer_checkpoint == "regenerate"
    num_slots = cfg.buffer_iterations

    def init(agent_state: Any) -> MB2POState:
        return init_state(agent_state, cfg, obs_dim=obs_dim, act_dim=act_dim,
                          policy_params=agent.policy_params(agent_state))

    def remember_policy(policies: Any, slot: jax.Array, params: Any) -> Any:
        return jax.tree.map(lambda ring, p: ring.at[slot].set(p), policies, params)

    def step(state: MB2POState, dyn_state: DynamicsState, dataset: Transitions,
             key: jax.Array, reference: Any) -> tuple[MB2POState, Metrics]:
        policies = state.policies
        if regenerate:
            # The policy this iteration rolls out with, before its updates.
            policies = remember_policy(policies, state.iteration % num_slots,
                                       agent.policy_params(state.agent))
        agent_state, buffer, metrics = iteration(state.agent, state.buffer, dyn_state, dataset,
                                                 key)
        # Its own key stream (not the iteration's), so the training numbers
        # are the same with or without this instrument.
        metrics.update(diagnostics(agent_state, reference, buffer, dataset,
                                   jax.random.fold_in(key, 1 << 30)))
        return MB2POState(agent_state, buffer, state.iteration + 1, policies,
                          state.refills), metrics

    def to_checkpoint(state: MB2POState) -> Any:
        return checkpoint_form(state, cfg.buffer_checkpoint)

    def rollout_slot(buffer: model_buffer.ModelBuffer, params: Any, dyn_state: DynamicsState,
                     observations: jax.Array, key: jax.Array) -> model_buffer.ModelBuffer:
        # The same key split and the same collect as the iteration's.
        rollout_key, _ = jax.random.split(key)
        return collect(buffer, dyn_state, params, observations, rollout_key)[0]

    def regenerate_slot(buffer: model_buffer.ModelBuffer, policies: Any,
                        dyn_state: DynamicsState, observations: jax.Array, key: jax.Array,
                        iteration_index: jax.Array) -> model_buffer.ModelBuffer:
        params = jax.tree.map(lambda ring: ring[iteration_index % num_slots], policies)
        return rollout_slot(buffer, params, dyn_state, observations, key)

    return FineTuning(init=init, step=step, to_checkpoint=to_checkpoint,
                      regenerate_slot=regenerate_slot, rollout_slot=rollout_slot)


def _replay_slots(fresh: MB2POState, done: int,
                  fill: Callable[[model_buffer.ModelBuffer, int], model_buffer.ModelBuffer]
                  ) -> tuple[model_buffer.ModelBuffer, int]:
    """``fresh``'s empty buffer with the slots of the last K of ``done``
    iterations filled again by ``fill(buffer, i)``, oldest first; and the
    first iteration filled."""
    num_slots = fresh.buffer.counts.shape[-1]  # [K], or [N, K] with a seed axis
    first = max(0, done - num_slots)
    buffer = fresh.buffer.replace(num_inserted=jnp.full_like(fresh.buffer.num_inserted, first))
    for i in range(first, done):
        buffer = fill(buffer, i)
    return buffer, first


def restore_state(
    saved: BufferlessCheckpoint, fresh: MB2POState,
    regenerate: Callable[[model_buffer.ModelBuffer, Any, int], model_buffer.ModelBuffer],
    checksums: Callable[[model_buffer.ModelBuffer], jax.Array],
) -> tuple[MB2POState, list[int]]:
    """The state a :class:`BufferlessCheckpoint` was made from.

    Args:
        saved: the restored checkpoint (with or without a leading seed axis).
        fresh: a state of the run's shapes with an empty buffer (``init``'s).
        regenerate: ``(buffer, policies, i) -> buffer``, the loop's
            ``regenerate_slot`` with the dynamics, the dataset and iteration
            ``i``'s key bound (and the seeds batched) by the caller.
        checksums: :func:`slot_checksums`, batched like ``regenerate``.

    Returns:
        ``(state, differing)``: the rebuilt state, and the iterations whose
        rebuilt slot does not have the saved checksum or row count (empty when
        the rows are the saved ones, as on the same CPU and software).
    """
    done = int(np.max(np.asarray(saved.iteration)))
    num_slots = fresh.buffer.counts.shape[-1]
    buffer, first = _replay_slots(fresh, done, lambda b, i: regenerate(b, saved.policies, i))
    same = ((np.asarray(checksums(buffer)) == np.asarray(saved.slot_checksums))
            & (np.asarray(buffer.counts) == np.asarray(saved.counts)))
    same = same.reshape(-1, num_slots).all(axis=0)  # over the seeds, if any
    differing = [i for i in range(first, done) if not same[i % num_slots]]
    state = MB2POState(agent=saved.agent, buffer=buffer, iteration=saved.iteration,
                       policies=saved.policies)
    return state, differing


def refill_state(
    saved: RefillCheckpoint, fresh: MB2POState,
    refill: Callable[[model_buffer.ModelBuffer, int], model_buffer.ModelBuffer],
) -> MB2POState:
    """The state a :class:`RefillCheckpoint` stands for, approximately: each
    slot of the last K iterations rolled out again by ``refill(buffer, i)``
    (the loop's ``rollout_slot`` with the current policy and iteration
    ``i``'s key bound by the caller). ``refills`` counts this restore where
    it refilled anything."""
    done = int(np.max(np.asarray(saved.iteration)))
    buffer, _ = _replay_slots(fresh, done, refill)
    refills = saved.refills + 1 if done > 0 else saved.refills
    return MB2POState(agent=saved.agent, buffer=buffer, iteration=saved.iteration,
                      refills=refills)
