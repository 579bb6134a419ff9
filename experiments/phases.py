"""The pipeline's phases (paper Algorithm 1): AWAC pretraining, dynamics
training, MB2PO fine-tuning; or, with ``algorithm='mopo'``, dynamics training
and MOPO (SAC in the same conservative MDP). Each is a
:class:`mb2po_jax.runner.Phase` built from the config; the runner handles
chunks, logging, evaluation and checkpoints.

Randomness: every phase takes its own stream ``fold_in(PRNGKey(seed), id)``
and chunk ``c`` uses ``fold_in(stream_key, c)``, so phases are independent of
each other's chunk sizes and a resumed phase repeats the same numbers.

Seeds: with ``num_seeds = N > 1`` every phase trains seeds ``seed .. seed+N-1``
as one vmapped program (:mod:`mb2po_jax.seeds`): states carry a leading seed
axis, seed ``s`` draws the keys of a single-seed run with seed ``s``, the
dataset is shared, and the seed axis is sharded over the visible devices.
With N = 1 nothing has a seed axis (checkpoints keep their old layout).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import functools
import logging
import os
import shutil
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from mb2po_jax import mb2po, seeds
from mb2po_jax.model import dynamics, online_env, simulator_check, simulator_model
from mb2po_jax.model.penalties import get_penalty
from mb2po_jax.agents import awac, sac
from mb2po_jax.checkpoint import Checkpointer, RunMismatchError
from mb2po_jax.transitions import Transitions
from mb2po_jax.evaluation import evaluate, evaluate_policies
from mb2po_jax.envs import get_termination_fn

from experiments.common import PreparedData
from mb2po_jax.runner import ACTIVE, Phase, TrainingDivergedError, check_finite

AWAC, DYNAMICS, MB2PO, MOPO = "awac", "dynamics", "mb2po", "mopo"

logger = logging.getLogger(__name__)
ALGORITHMS = (MB2PO, MOPO)
# Stream ids folded into the seed key.
_AWAC_INIT, _AWAC_TRAIN, _DYN_SPLIT, _DYN_INIT, _DYN_TRAIN, _MB2PO, _MOPO_INIT, _MOPO = range(8)


def seeds_of(config: ml_collections.ConfigDict) -> tuple[int, ...]:
    """The seeds of a multi-seed run; ``()`` for one seed (no seed axis)."""
    return seeds.seed_list(config.seed, config.num_seeds) if config.num_seeds > 1 else ()


def _key(config: ml_collections.ConfigDict, stream: int) -> jax.Array:
    """The stream's key: ``[2]``, or ``[N, 2]`` (one per seed) with a seed axis."""
    if config.num_seeds > 1:
        return seeds.stream_keys(seeds_of(config), stream)
    return jax.random.fold_in(jax.random.PRNGKey(config.seed), stream)


def _fold(config: ml_collections.ConfigDict, key: jax.Array, data: int) -> jax.Array:
    return seeds.fold_in(key, data) if config.num_seeds > 1 else jax.random.fold_in(key, data)


def _per_seed(config: ml_collections.ConfigDict, fn, in_axes, donate_argnums=()):
    """``fn`` itself for one seed; for several, one jitted program over the
    seed axis (``in_axes``, ``None`` for shared arguments; vmapped or
    lax.mapped as ``config.seed_batching`` says), its outputs split over the
    devices."""
    if config.num_seeds == 1:
        return fn
    return seeds.over_seeds(fn, in_axes, donate_argnums, mesh=_mesh(config.num_seeds),
                            batching=config.seed_batching)


@functools.lru_cache(maxsize=None)
def _mesh(num_seeds: int):
    return seeds.seed_mesh(num_seeds) if num_seeds > 1 else None


def _abstract(config: ml_collections.ConfigDict, init):
    """The state's abstract structure, with the seed axis's sharding."""
    return lambda: seeds.sharded_abstract(jax.eval_shape(init), _mesh(config.num_seeds))


def shared(config: ml_collections.ConfigDict, tree):
    """Data every seed reads (the dataset), replicated over the seeds' devices."""
    return seeds.replicate(tree, _mesh(config.num_seeds))


def counts(state) -> np.ndarray:
    """A phase state's progress count: a fine-tuning state's iterations, else
    its steps (``[N]`` with a seed axis)."""
    return np.asarray(state.iteration if isinstance(state, mb2po.MB2POState) else state.step)


def _progress(state) -> int:
    # With a seed axis, the seeds still training (early stopping freezes the
    # others) are all at the largest count.
    return int(np.max(counts(state)))


def build_agent(config: ml_collections.ConfigDict, obs_dim: int, act_dim: int,
                alpha: float | None = None) -> awac.AWAC:
    """The AWAC agent of the config (``alpha`` overrides the temperature)."""
    values = dict(config.awac)
    if alpha is not None:
        values["alpha"] = alpha
    return awac.make_awac(obs_dim, act_dim, awac.AWACConfig.from_dict(values))


def evaluate_policy(act, policy_params: Any, env_id: str, eval_config,
                    ref_scores, num_seeds: int = 1) -> Any:
    """Episodes of the deterministic policy; ``act`` is the jitted
    ``agent.act``, built once per phase so evaluations never recompile.

    With ``num_seeds > 1``, ``policy_params`` are seed-stacked, ``act`` is
    :func:`policy_act`'s vmapped one, and the result is one dict per seed
    (all seeds' envs in one vector env)."""
    policy = lambda obs: np.asarray(act(policy_params, obs))  # noqa: E731
    options = dict(seed=eval_config.seed, num_envs=eval_config.num_envs, ref_scores=ref_scores,
                   max_episode_steps=eval_config.max_episode_steps)
    if num_seeds > 1:
        return evaluate_policies(policy, env_id, eval_config.num_episodes,
                                 num_policies=num_seeds, **options)
    return evaluate(policy, env_id, eval_config.num_episodes, **options)


def policy_act(agent, num_seeds: int = 1):
    """The jitted deterministic ``act(policy_params, obs)``; with seeds, vmapped
    over stacked parameters and observations ``[N, n, obs_dim]``."""
    return jax.jit(jax.vmap(agent.act) if num_seeds > 1 else agent.act)


def q_limit(config: ml_collections.ConfigDict, rewards: np.ndarray) -> float:
    """|Q| beyond which the critic has run away: ``factor * max|r| / (1 - gamma)``,
    ``factor`` times the largest return any policy could earn on this data."""
    r_max = max(float(np.max(np.abs(rewards))), 1e-6)
    return config.guard.q_limit_factor * r_max / (1.0 - config.awac.discount)


def make_critic_guard(phase: str, limit: float):
    """Stops on non-finite statistics or a critic whose Q-values ran away."""

    def guard(metrics: dict[str, float], step: int) -> None:
        check_finite(phase, metrics, step)
        for name in ("q_data_max", "q_data_mean", "target_return_mean", "q_mean", "target_mean"):
            if name in metrics and abs(metrics[name]) > limit:
                raise TrainingDivergedError(
                    f"Phase '{phase}' diverged at step {step}: {name}={metrics[name]:.4g} exceeds "
                    f"the Q limit {limit:.4g} (guard.q_limit_factor x max|r| / (1 - gamma)). "
                    f"The paper notes Q-values explode for h > 1 on several tasks: lower "
                    f"mb2po.horizon or raise mb2po.penalty_coef. The last good checkpoint is kept."
                )

    return guard


def _scanned(config, train_steps, data, key):
    """``advance`` for a scanned train-steps function (the dataset shared by seeds)."""
    steps = _per_seed(config, train_steps, (0, None, 0))
    return lambda state, chunk_index: steps(state, data, _fold(config, key, chunk_index))


# --------------------------------------------------------------------- AWAC


def awac_phase(config: ml_collections.ConfigDict, data: PreparedData, dataset: Transitions) -> Phase:
    agent = build_agent(config, data.info.obs_dim, data.info.act_dim)
    train_steps = awac.make_train_steps(agent.update, config.awac.batch_size,
                                        config.train.steps_per_chunk)
    train_key = _key(config, _AWAC_TRAIN)
    act = policy_act(agent, config.num_seeds)
    init = lambda: _per_seed(config, agent.init, (0,))(_key(config, _AWAC_INIT))  # noqa: E731
    return Phase(
        name=AWAC,
        total=config.awac.num_steps,
        chunk=config.train.steps_per_chunk,
        eval_every=config.train.eval_every,
        checkpoint_every=config.train.checkpoint_every,
        init=init,
        abstract=_abstract(config, init),
        progress=_progress,
        advance=_scanned(config, train_steps, dataset, train_key),
        evaluate=lambda state: evaluate_policy(act, state.policy_params, data.env_id,
                                               config.eval, data.ref_scores, config.num_seeds),
        guard=make_critic_guard(AWAC, q_limit(config, np.asarray(data.transitions.rewards))),
        postfix=("critic_loss", "q_data_mean"),
        keep_checkpoints=config.train.keep_checkpoints,
        seeds=seeds_of(config),
    )


# ----------------------------------------------------------------- dynamics


def build_dynamics(config: ml_collections.ConfigDict, obs_dim: int, act_dim: int) -> dynamics.Dynamics:
    return dynamics.make_dynamics(obs_dim, act_dim, dynamics.DynamicsConfig.from_dict(config.dynamics))


def dynamics_rows(data: PreparedData, dataset: Transitions) -> Transitions:
    """The rows the dynamics model learns from: all of them, except the
    terminal rows of a file whose s' was derived from the next row (their
    s' = s is a placeholder; learning it would teach the model that a fall
    stops all motion)."""
    if not data.info.next_observations_derived:
        return dataset
    known = np.flatnonzero(np.asarray(data.transitions.terminals) == 0)
    logger.info("Dataset %s has no stored next observations: the dynamics model leaves "
                "out its %d terminal rows, whose next state was never recorded.",
                data.info.name, len(data.transitions) - len(known))
    return jax.tree.map(lambda x: x[known], dataset)


def dynamics_phase(config: ml_collections.ConfigDict, data: PreparedData, dataset: Transitions) -> Phase:
    cfg = config.dynamics
    model = build_dynamics(config, data.info.obs_dim, data.info.act_dim)
    # Each seed holds out its own rows (as its single-seed run would): with
    # a seed axis, train and holdout are [N, rows, ...].
    split = lambda data, key: dynamics.split_holdout(  # noqa: E731
        data, key, cfg.holdout_fraction, cfg.max_holdout)
    train, holdout = _per_seed(config, split, (None, 0))(
        dynamics.make_dynamics_data(dynamics_rows(data, dataset)), _key(config, _DYN_SPLIT))
    train_steps = dynamics.make_train_steps(model.update, cfg.num_members, cfg.batch_size,
                                            config.train.steps_per_chunk)
    train_key = _key(config, _DYN_TRAIN)
    init = lambda: _per_seed(config, model.init, (0, 0))(_key(config, _DYN_INIT), train)  # noqa: E731

    def advance_one(state: dynamics.DynamicsState, train, holdout, key: jax.Array):
        new, metrics = train_steps(state, train, key)
        if cfg.early_stopping:
            # MOPO's snapshot bookkeeping. A seed that has stopped keeps its
            # state while the others train on (one program): alone, its run
            # would have ended. Its chunk is marked inactive, so the runner
            # neither logs nor guards the discarded training.
            new = model.track_best(new, holdout)
            frozen = state.stale_checks >= cfg.patience
            new = jax.tree.map(lambda old, now: jnp.where(frozen, old, now), state, new)
            metrics = {**metrics, ACTIVE: 1.0 - frozen.astype(jnp.float32)}
        # Held-out error after every chunk: is the model still improving?
        val = model.validate(new, holdout)
        return new, {**metrics, "val_mse_mean": jnp.mean(val["val_mse"]),
                     "val_nll_mean": jnp.mean(val["val_nll"])}

    advance_all = _per_seed(config, jax.jit(advance_one), (0, 0, 0, 0))
    validate = _per_seed(config, jax.jit(model.validate), (0, 0))
    finalize_one = lambda state, holdout: model.select_elites(  # noqa: E731
        model.use_best(state) if cfg.early_stopping else state, holdout)
    finalize_all = _per_seed(config, jax.jit(finalize_one), (0, 0))

    def advance(state: dynamics.DynamicsState, chunk_index: int):
        return advance_all(state, train, holdout, _fold(config, train_key, chunk_index))

    def stopped(state: dynamics.DynamicsState) -> bool:
        return cfg.early_stopping and bool(np.all(np.asarray(state.stale_checks) >= cfg.patience))

    # What the conservative MDP will take off the reward on the dataset's own
    # held-out rows (lambda * u with the fine-tuning's rule, over the elites),
    # beside the reward there: a penalty as large as the reward makes almost
    # every model reward negative (docs/results.md, walker2d-mixed).
    tuning = config[config.algorithm]  # the mb2po or mopo section
    penalty_fn = get_penalty(tuning.uncertainty)
    obs_dim = data.info.obs_dim

    def penalty_one(state: dynamics.DynamicsState, holdout: dynamics.DynamicsData):
        mean, logvar = model.predict(state, holdout.inputs[:, :obs_dim],
                                     holdout.inputs[:, obs_dim:])
        u = penalty_fn(mean[state.elites], logvar[state.elites])  # [rows]
        return {"holdout_reward_mean": jnp.mean(holdout.targets[:, -1]),
                "holdout_penalty_mean": tuning.penalty_coef * jnp.mean(u)}

    penalty_all = _per_seed(config, jax.jit(penalty_one), (0, 0))

    def split(tree) -> list:
        """Host values -> one per seed (a list of one without a seed axis)."""
        tree = jax.device_get(tree)
        if config.num_seeds == 1:
            return [tree]
        return [seeds.take(tree, i) for i in range(config.num_seeds)]

    def scales(state: dynamics.DynamicsState) -> list[dict[str, float]]:
        return [{k: float(v) for k, v in one.items()} for one in split(penalty_all(state, holdout))]

    def evaluate_one(val, elites, stale, scale) -> dict[str, Any]:
        result = dynamics.elite_summary(val)
        result.update(scale)
        result["elites"] = [int(i) for i in np.asarray(elites)]
        if cfg.early_stopping:
            result["stopped_early"] = bool(stale >= cfg.patience)
        return result

    def evaluate_model(state: dynamics.DynamicsState) -> Any:
        results = [evaluate_one(*one, scale) for one, scale in zip(
            split((validate(state, holdout), state.elites, state.stale_checks)), scales(state))]
        return results[0] if config.num_seeds == 1 else results

    def finalize(state: dynamics.DynamicsState) -> dynamics.DynamicsState:
        state = finalize_all(state, holdout)
        # Judged on the final model (its elites chosen), once per run; the
        # simulator diagnostic has no penalty.
        if config[config.algorithm].get("model", "ensemble") == "ensemble":
            _warn_if_penalty_dominates(scales(state), tuning, config.algorithm)
        return state

    return Phase(
        name=DYNAMICS,
        total=cfg.num_steps,
        chunk=config.train.steps_per_chunk,
        eval_every=config.train.eval_every,
        checkpoint_every=config.train.checkpoint_every,
        init=init,
        abstract=_abstract(config, init),
        progress=_progress,
        advance=advance,
        evaluate=evaluate_model,
        guard=lambda metrics, step: check_finite(DYNAMICS, metrics, step),
        finalize=finalize,
        stopped=stopped,
        postfix=("dynamics_loss", "train_mse"),
        keep_checkpoints=config.train.keep_checkpoints,
        seeds=seeds_of(config),
    )


def _warn_if_penalty_dominates(results: list[dict[str, Any]], tuning, section: str) -> None:
    """Warns where lambda * u on held-out dataset rows is at least their mean
    reward (for the worst seed): the run goes on with the configured values."""
    worst = max(results, key=lambda r: r["holdout_penalty_mean"] - r["holdout_reward_mean"])
    if not worst["holdout_penalty_mean"] >= worst["holdout_reward_mean"]:
        return
    logger.warning(
        "dynamics: on held-out dataset rows the uncertainty penalty %s.penalty_coef x u "
        "(%s, lambda %g) averages %.3g, at least their mean reward %.3g: the conservative "
        "MDP's rewards will be mostly negative and Q on real rows will fall. Watch "
        "rollout_penalized_reward_mean and q_real_mean in the fine-tuning metrics, and "
        "sim_reward_bias_policy in its evaluations (docs/results.md, walker2d-mixed: there "
        "a smaller lambda kept the rewards positive but did not prevent the collapse). "
        "(Running on with the configured values.)",
        section, tuning.uncertainty, tuning.penalty_coef, worst["holdout_penalty_mean"],
        worst["holdout_reward_mean"])


# -------------------------------------------------- MB2PO and MOPO fine-tuning


def fine_tuning_config(config: ml_collections.ConfigDict, algorithm: str) -> mb2po.FineTuningConfig:
    """The loop settings of ``algorithm`` ('mb2po' or 'mopo') from the config."""
    if algorithm == MB2PO:
        cfg = config.mb2po
        batch_size, omega = config.awac.batch_size, cfg.omega
    else:
        cfg = config.mopo
        batch_size, omega = cfg.batch_size, cfg.real_ratio
    return mb2po.FineTuningConfig(
        horizon=cfg.horizon, rollout_samples=cfg.rollout_samples, penalty_coef=cfg.penalty_coef,
        uncertainty=cfg.uncertainty, block_size=cfg.block_size, batch_size=batch_size,
        omega=omega, updates_per_iteration=cfg.updates_per_iteration,
        buffer_iterations=cfg.buffer_iterations,
        # A config stored by a run from before the field existed (experiments.evaluate
        # rebuilds the state from it) used the paper's sampling.
        next_state=cfg.get("next_state", "sample"),
        buffer_checkpoint=cfg.get("buffer_checkpoint", "rows"))


def build_sac(config: ml_collections.ConfigDict, obs_dim: int, act_dim: int) -> sac.SAC:
    """MOPO's SAC agent (config.mopo.sac)."""
    return sac.make_sac(obs_dim, act_dim, sac.SACConfig.from_dict(config.mopo.sac))


def policy_agent(config: ml_collections.ConfigDict, phase: str, obs_dim: int, act_dim: int):
    """The agent whose policy a phase trains ('awac', 'mb2po' or 'mopo')."""
    if phase == MOPO:
        return build_sac(config, obs_dim, act_dim)
    return build_agent(config, obs_dim, act_dim,
                       alpha=config.mb2po.alpha if phase == MB2PO else None)


def abstract_policy_state(config: ml_collections.ConfigDict, phase: str, obs_dim: int,
                          act_dim: int):
    """The structure of a policy phase's checkpointed state, for restoring
    (with a leading seed axis where ``config.num_seeds > 1``); a fine-tuning
    phase's is :func:`mb2po_jax.mb2po.checkpoint_form`'s."""
    agent = policy_agent(config, phase, obs_dim, act_dim)
    agent_state = jax.eval_shape(_per_seed(config, agent.init, (0,)), _key(config, 0))
    if phase == AWAC:
        return agent_state
    tuning = fine_tuning_config(config, phase)
    start = _per_seed(config, lambda state: mb2po.checkpoint_form(mb2po.init_state(
        state, tuning, obs_dim=obs_dim, act_dim=act_dim,
        policy_params=agent.policy_params(state)), tuning.buffer_checkpoint), (0,))
    return jax.eval_shape(start, agent_state)


def fine_tuning_phase(
    config: ml_collections.ConfigDict, data: PreparedData, dataset: Transitions,
    dynamics_state: dynamics.DynamicsState, *, algorithm: str, agent, start, reference,
) -> Phase:
    """Algorithm 1's loop as a phase: ``agent`` (the interface of
    :mod:`mb2po_jax.agents`) starts from ``start`` and rolls out in the
    conservative MDP of ``dynamics_state``; ``reference`` is the agent state
    the diagnostics measure the policy's shift from."""
    cfg = config.mb2po if algorithm == MB2PO else config.mopo
    obs_dim, act_dim = data.info.obs_dim, data.info.act_dim
    tuning = fine_tuning_config(config, algorithm)
    loop = mb2po.make_fine_tuning(
        agent, build_dynamics(config, obs_dim, act_dim), get_termination_fn(data.env_id),
        tuning, obs_dim=obs_dim, act_dim=act_dim,
        **_rollout_model(cfg, algorithm, tuning, data, agent))
    key = _key(config, _MB2PO if algorithm == MB2PO else _MOPO)
    act = policy_act(agent, config.num_seeds)
    init = lambda: _per_seed(config, loop.init, (0,))(start)  # noqa: E731

    def step_parts(agent_state, buffer, iteration, policies, dyn_state, dataset, key, reference):
        return loop.step(mb2po.MB2POState(agent_state, buffer, iteration, policies), dyn_state,
                         dataset, key, reference)

    # The dataset is shared by the seeds. Only the model buffer and the ring
    # of policies are donated (the agent's first state may alias ``reference``).
    step = _per_seed(config, step_parts, (0, 0, 0, 0, 0, None, 0, 0), donate_argnums=(1, 3))
    to_checkpoint, from_checkpoint = _buffer_checkpointing(
        config, tuning, loop, init, dynamics_state, dataset, key, algorithm)
    check = _simulator_check(config, data, agent, dynamics_state, algorithm)

    def evaluate_state(state: mb2po.MB2POState):
        result = evaluate_policy(act, agent.policy_params(state.agent), data.env_id,
                                 config.eval, data.ref_scores, config.num_seeds)
        return check(state, result)

    return Phase(
        name=algorithm,
        total=cfg.num_iterations,
        chunk=1,
        eval_every=cfg.eval_every,
        checkpoint_every=cfg.checkpoint_every,
        init=init,
        abstract=_abstract(config, lambda: to_checkpoint(init())),
        progress=_progress,
        advance=lambda state, c: step(state.agent, state.buffer, state.iteration, state.policies,
                                      dynamics_state, dataset, _fold(config, key, c), reference),
        evaluate=evaluate_state,
        guard=make_critic_guard(algorithm, q_limit(config, np.asarray(data.transitions.rewards))),
        postfix=("critic_loss", "q_data_mean" if algorithm == MB2PO else "q_mean",
                 "rollout_uncertainty_mean"),
        unit="iter",
        keep_checkpoints=cfg.keep_checkpoints,
        seeds=seeds_of(config),
        to_checkpoint=to_checkpoint,
        from_checkpoint=from_checkpoint,
    )


def _buffer_checkpointing(config: ml_collections.ConfigDict, tuning: mb2po.FineTuningConfig,
                          loop: mb2po.FineTuning, init, dynamics_state, dataset: Transitions,
                          key: jax.Array, algorithm: str):
    """The fine-tuning phase's ``(to_checkpoint, from_checkpoint)``: the state
    with its buffer's rows for ``buffer_checkpoint='rows'``; else a checkpoint without the
    buffer's rows, which are rolled out again on restore (each slot from its
    policy, the dynamics and its iteration's key) and checked against the
    saved per-slot checksums. A finished phase's state comes back without
    them (``buffer=None``): it is only reported."""
    one = config.num_seeds == 1
    to_checkpoint = loop.to_checkpoint if one else _per_seed(config, loop.to_checkpoint, (0,))
    if tuning.buffer_checkpoint == "rows":
        return to_checkpoint, lambda saved, finished: mb2po.MB2POState(
            saved.agent, saved.buffer, saved.iteration)
    regenerate_slot = (jax.jit(loop.regenerate_slot, donate_argnums=(0,)) if one else
                       _per_seed(config, loop.regenerate_slot, (0, 0, 0, None, 0, None),
                                 donate_argnums=(0,)))
    checksums = mb2po.slot_checksums if one else _per_seed(config, mb2po.slot_checksums, (0,))

    def regenerate(buffer, policies, i: int):
        return regenerate_slot(buffer, policies, dynamics_state, dataset.observations,
                               _fold(config, key, i), jnp.asarray(i, jnp.int32))

    def from_checkpoint(saved: mb2po.BufferlessCheckpoint, finished: bool) -> mb2po.MB2POState:
        if finished:
            # Only reported, never advanced: the rows (minutes of rollouts at
            # paper scale, the memory of the whole buffer) are not rebuilt.
            logger.info("%s: finished; its model buffer is not rolled out again.", algorithm)
            return mb2po.MB2POState(saved.agent, None, saved.iteration, saved.policies)
        started = time.time()
        state, differing = mb2po.restore_state(saved, init(), regenerate, checksums)
        filled = min(int(np.max(np.asarray(saved.iteration))), tuning.buffer_iterations)
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


def buffer_bytes(cfg: ml_collections.ConfigDict, obs_dim: int, act_dim: int) -> int:
    """One seed's model buffer: K x S float32 rows of (s, a, r, s', terminal, timeout)."""
    return cfg.buffer_iterations * cfg.rollout_samples * 4 * (2 * obs_dim + act_dim + 3)


def _memory_limit() -> tuple[int, int, str, bool] | None:
    """``(bytes one device can hold, devices, what the limit is, exact)``, or
    None where it cannot be read. A GPU's is its allocator's limit (75 % of
    the device by default); it is exact with preallocation off or a memory
    fraction set, while a default preallocating pool may grow past it (newer
    JAX). CPU devices share the host's available memory."""
    devices = jax.devices()
    stats = devices[0].memory_stats()
    if stats and stats.get("bytes_limit"):
        exact = (os.environ.get("XLA_PYTHON_CLIENT_PREALLOCATE", "").lower() == "false"
                 or any(name in os.environ for name in ("XLA_PYTHON_CLIENT_MEM_FRACTION",
                                                         "XLA_CLIENT_MEM_FRACTION")))
        return (int(stats["bytes_limit"]), len(devices),
                f"the {devices[0].device_kind} allocator's limit (XLA_PYTHON_CLIENT_MEM_FRACTION "
                f"raises it)", exact)
    try:
        with open("/proc/meminfo") as file:
            available = next(int(line.split()[1]) * 1024 for line in file
                             if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError):
        return None
    return available, 1, "the host's available memory (MemAvailable)", True


def buffer_memory_problem(config: ml_collections.ConfigDict, algorithm: str, obs_dim: int,
                          act_dim: int) -> tuple[str, bool] | None:
    """``(message, fatal)`` when ``algorithm``'s model buffers would not fit
    in memory (fatal where the limit is exact: allocating them would fail,
    after pretraining has run), or fill more than 80 % of it (a warning: the
    networks, the rollout and the dataset need room too); None otherwise or
    where the limit is unknown. Seeds are split over the devices as evenly
    as ``num_seeds`` allows."""
    limit = _memory_limit()
    if limit is None:
        return None
    capacity, num_devices, what, exact = limit
    cfg, seeds_ = config[algorithm], max(1, config.num_seeds)
    per_device = seeds_ // seeds.devices_used(seeds_, num_devices)
    needed = buffer_bytes(cfg, obs_dim, act_dim) * per_device
    if needed <= 0.8 * capacity:
        return None
    gb = lambda n: f"{n / 1e9:.1f} GB"  # noqa: E731
    message = (
        f"The {algorithm} model buffer ({cfg.buffer_iterations} x {cfg.rollout_samples:,} rows "
        f"x {per_device} seed(s) per device = {gb(needed)}) "
        f"{'exceeds' if needed > capacity else 'takes more than 80 % of'} {gb(capacity)}, "
        f"{what}. Run fewer seeds per program (--config.num_seeds), lower "
        f"--config.{algorithm}.buffer_iterations or --config.{algorithm}.rollout_samples "
        f"(a deviation from the paper), or use a device with more memory.")
    return message, exact and needed > capacity


def checkpoint_disk_problem(config: ml_collections.ConfigDict, algorithm: str, obs_dim: int,
                            act_dim: int, workdir: Path) -> str | None:
    """Why ``algorithm``'s checkpoints would not fit on the workdir's disk,
    or None. Only ``buffer_checkpoint='rows'`` can be large: each checkpoint
    holds the K x S-row model buffer of every seed, ``keep_checkpoints`` are
    kept and one more is written before the oldest goes."""
    cfg = config[algorithm]
    if cfg.buffer_checkpoint != "rows":
        return None
    seeds_ = max(1, config.num_seeds)
    per_checkpoint = buffer_bytes(cfg, obs_dim, act_dim) * seeds_
    directory = Path(workdir) / "checkpoints" / algorithm
    existing = sum(f.stat().st_size for f in directory.rglob("*") if f.is_file()) \
        if directory.is_dir() else 0
    needed = per_checkpoint * (cfg.keep_checkpoints + 1) - existing
    free = shutil.disk_usage(workdir).free
    if needed <= free:
        return None
    gb = lambda n: f"{n / 1e9:.1f} GB"  # noqa: E731
    return (
        f"--config.{algorithm}.buffer_checkpoint='rows': each {algorithm} checkpoint holds the "
        f"model buffer ({cfg.buffer_iterations} x {cfg.rollout_samples:,} rows x {seeds_} "
        f"seed(s) = {gb(per_checkpoint)}), and with {algorithm}.keep_checkpoints="
        f"{cfg.keep_checkpoints} plus the one being written the run needs {gb(needed)} more, "
        f"but the disk of {workdir} has {gb(free)} free. Use "
        f"--config.{algorithm}.buffer_checkpoint=regenerate (checkpoints keep each slot's "
        f"policy instead and roll its rows out again on restore), or a workdir on a larger "
        f"disk.")


# "online": the real env's episodes of the current policy instead of model
# rollouts (an online-AWAC control; mb2po_jax.model.online_env).
MODEL_CHOICES = ("ensemble", "simulator", "online")
START_CHOICES = ("dataset", "restorable")


def model_choice_problem(section: str, model: str, starts: str,
                         horizon: int) -> tuple[str, Any, str] | None:
    """``(field, value, fix)`` when ``section``'s model, start states and
    horizon cannot run together; None when they can."""
    for field, value, valid in (("model", model, MODEL_CHOICES),
                                ("start_states", starts, START_CHOICES)):
        if value not in valid:
            return f"{section}.{field}", value, f"valid: {list(valid)}."
    if model == "simulator" and horizon != 1:
        return (f"{section}.horizon", horizon,
                f"{section}.model='simulator' steps only from dataset states: use "
                f"{section}.horizon=1 (and {section}.rollout_samples for the start states).")
    if model == "online" and starts != "dataset":
        return (f"{section}.start_states", starts,
                f"{section}.model='online' starts from the env's own resets: use "
                f"{section}.start_states='dataset' (the default).")
    if model == "simulator" and starts != "restorable":
        return (f"{section}.start_states", starts,
                f"{section}.model='simulator' can only start from rows whose observation "
                f"holds the whole state: use {section}.start_states='restorable'.")
    return None


def _rollout_model(cfg: ml_collections.ConfigDict, section: str, tuning: mb2po.FineTuningConfig,
                   data: PreparedData, agent) -> dict:
    """``make_fine_tuning``'s ``model_step``/``start_pool`` for ``section``
    ('mb2po' or 'mopo'): nothing for the paper's rollouts (the learned
    ensemble from every dataset row); with ``start_states='restorable'`` only
    the rows whose observation holds the whole state start a rollout; with
    ``model='simulator'`` MuJoCo steps them (a diagnostic)."""
    # Configs stored before these fields existed used the paper's rollouts.
    model, starts = cfg.get("model", "ensemble"), cfg.get("start_states", "dataset")
    problem = model_choice_problem(section, model, starts, tuning.horizon)
    if problem:
        field, value, fix = problem
        raise ValueError(f"{field}={value!r}: {fix}")
    if model == "online":
        logger.info("%s: the (1 - omega) rows are %d real %s steps per iteration of the current "
                    "policy from the env's resets (a control, not the paper's method).",
                    section, tuning.rollout_samples, data.env_id)
        return {"rollout": online_env.make_online_rollout(
            data.env_id, agent.sample_action, num_samples=tuning.rollout_samples)}
    if starts == "dataset":
        return {}
    probe = simulator_check.make_probe(data.env_id, data.info.obs_dim)
    if probe is None:
        raise ValueError(f"{section}.start_states='restorable': {data.env_id}'s states cannot be "
                         "told from its observations (not qpos[1:] + qvel). Use 'dataset'.")
    pool = simulator_model.restorable_start_pool(
        probe, np.asarray(data.transitions.observations), field=f"{section}.start_states")
    logger.info("%s rollouts start from the %d of %d dataset rows without a clipped velocity; "
                "the %s steps them (%s).", section, len(pool),
                data.transitions.observations.shape[0], model,
                "a diagnostic, no penalty" if model == "simulator" else "the learned model")
    if model == "ensemble":
        return {"start_pool": pool}
    return {"model_step": simulator_model.make_simulator_step(
                probe, agent.sample_action, block_size=tuning.block_size),
            "start_pool": pool}


SIMULATOR_CHECK_ROWS = 256


def _simulator_check(config: ml_collections.ConfigDict, data: PreparedData, agent,
                     dynamics_state: dynamics.DynamicsState, algorithm: str):
    """``(state, evaluation) -> evaluation`` with the model-vs-simulator scalars
    (:mod:`mb2po_jax.model.simulator_check`) added to each seed's result, at
    the same fixed dataset states every evaluation (rows whose observation
    holds the whole state); the evaluation unchanged where the env's states
    cannot be restored from observations."""
    obs_dim = data.info.obs_dim
    probe = simulator_check.make_probe(data.env_id, obs_dim)
    if probe is None:
        logger.info("No model-vs-simulator check for %s: its states cannot be restored "
                     "from observations.", data.env_id)
        return lambda state, result: result
    tuning = fine_tuning_config(config, algorithm)
    predict = simulator_check.make_model_prediction(
        build_dynamics(config, obs_dim, data.info.act_dim), penalty_coef=tuning.penalty_coef,
        uncertainty_rule=tuning.uncertainty)
    observations = np.asarray(data.transitions.observations)
    candidates = np.flatnonzero(probe.restorable(observations))
    if len(candidates) == 0:
        logger.info("No model-vs-simulator check: no dataset row of %s can be restored "
                     "(every one has a clipped velocity).", data.env_id)
        return lambda state, result: result
    rows = np.random.default_rng(0).choice(
        candidates, size=min(SIMULATOR_CHECK_ROWS, len(candidates)), replace=False)
    obs, data_actions = observations[rows], np.asarray(data.transitions.actions)[rows]
    sample = jax.jit(agent.sample_action)
    obs_device = jnp.asarray(obs)
    # The same action noise at every evaluation, so changes are the policy's.
    keys = jax.random.split(jax.random.PRNGKey(0), len(rows))

    def check(state: mb2po.MB2POState, result):
        per_seed = result if config.num_seeds > 1 else [result]
        params, dyn = agent.policy_params(state.agent), dynamics_state
        for i, one in enumerate(per_seed):
            if config.num_seeds > 1:
                params_i, dyn_i = seeds.take(params, i), seeds.take(dyn, i)
            else:
                params_i, dyn_i = params, dyn
            policy_actions = np.asarray(sample(params_i, obs_device, keys))
            one.update(simulator_check.check(probe, predict, dyn_i, obs, data_actions,
                                             policy_actions))
        return result

    return check


def mb2po_phase(
    config: ml_collections.ConfigDict, data: PreparedData, dataset: Transitions,
    pretrained: awac.AWACState, dynamics_state: dynamics.DynamicsState,
) -> Phase:
    """MB2PO: AWAC with the fine-tuning alpha, from the pretrained state."""
    agent = policy_agent(config, MB2PO, data.info.obs_dim, data.info.act_dim)
    return fine_tuning_phase(config, data, dataset, dynamics_state, algorithm=MB2PO,
                             agent=agent, start=pretrained, reference=pretrained)


def mopo_phase(
    config: ml_collections.ConfigDict, data: PreparedData, dataset: Transitions,
    dynamics_state: dynamics.DynamicsState,
) -> Phase:
    """MOPO (Yu et al., 2020): SAC from scratch in the same conservative MDP."""
    agent = policy_agent(config, MOPO, data.info.obs_dim, data.info.act_dim)
    start = _per_seed(config, agent.init, (0,))(_key(config, _MOPO_INIT))
    return fine_tuning_phase(config, data, dataset, dynamics_state, algorithm=MOPO,
                             agent=agent, start=start, reference=start)


# ------------------------------------------------- starting from other runs


def restore_from_workdir(source: str, phase: Phase, data: PreparedData):
    """``checkpointer -> state``: the latest ``phase`` checkpoint of another
    workdir, after checking it was trained on the same dataset."""

    def initial_state(_: Checkpointer):
        directory = Path(source).expanduser() / "checkpoints" / phase.name
        if not directory.is_dir():
            raise RunMismatchError(
                f"init.{phase.name}_workdir={source}: no '{phase.name}' checkpoints in "
                f"{directory}; point it at a workdir that ran that phase.")
        with Checkpointer(directory) as other:
            meta = other.restore_meta()
            their_seeds = int(meta["config"].get("num_seeds", 1))
            if their_seeds != max(1, len(phase.seeds)):
                raise RunMismatchError(
                    f"init.{phase.name}_workdir={source} trained num_seeds={their_seeds}, this "
                    f"run num_seeds={max(1, len(phase.seeds))}: its {phase.name} state has "
                    f"another seed axis. Use the same num_seeds (and seed) as that run.")
            their_first = int(meta["config"].get("seed", 0))
            if their_seeds > 1 and their_first != phase.seeds[0]:
                # Seeds are matched by position on the axis: seed k here would
                # start from another seed's state and be reported under k.
                raise RunMismatchError(
                    f"init.{phase.name}_workdir={source} trained seeds {their_first}.."
                    f"{their_first + their_seeds - 1}, this run seeds {phase.seeds[0]}.."
                    f"{phase.seeds[-1]}: each seed must start from its own {phase.name} state. "
                    f"Use --config.seed={their_first}.")
            theirs = meta["dataset"]["fingerprint"]
            if theirs != data.info.fingerprint:
                raise RunMismatchError(
                    f"init.{phase.name}_workdir={source} was trained on a different dataset "
                    f"(fingerprint {theirs[:12]}..., this run's {data.info.fingerprint[:12]}...); "
                    f"its {phase.name} state cannot be reused here.")
            state, _ = other.restore(phase.abstract())
        return state

    return initial_state
