"""Phase 2 of Algorithm 1: the probabilistic dynamics ensemble (appendix
7.2), trained on the dataset with held-out validation, as a
:class:`mb2po_jax.runner.Phase`."""

from __future__ import annotations

import logging
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from mb2po_jax.model import dynamics
from mb2po_jax.model.penalties import get_penalty
from mb2po_jax.pipeline.builders import build_dynamics
from mb2po_jax.pipeline.dataset import PreparedData
from mb2po_jax.pipeline.seed_axis import DYN_INIT, DYN_SPLIT, DYN_TRAIN, SeedAxis, progress
from mb2po_jax.pipeline.settings import DYNAMICS, Settings
from mb2po_jax.runner import ACTIVE, Phase, check_finite
from mb2po_jax.transitions import Transitions

logger = logging.getLogger(__name__)


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


def dynamics_phase(settings: Settings, data: PreparedData, dataset: Transitions) -> Phase:
    """The ensemble of ``settings.dynamics``; its evaluations report the held-out
    error and what the fine-tuning's penalty would take off the reward."""
    axis = SeedAxis.of(settings)
    cfg = settings.dynamics
    model = build_dynamics(settings, data.info.obs_dim, data.info.act_dim)
    # Each seed holds out its own rows (as its single-seed run would): with
    # a seed axis, train and holdout are [N, rows, ...].
    split = lambda data, key: dynamics.split_holdout(  # noqa: E731
        data, key, cfg.holdout_fraction, cfg.max_holdout)
    train, holdout = axis.per_seed(split, (None, 0))(
        dynamics.make_dynamics_data(dynamics_rows(data, dataset)), axis.key(DYN_SPLIT))
    train_steps = dynamics.make_train_steps(model.update, cfg.num_members,
                                            settings.dynamics_batch_size,
                                            settings.train.steps_per_chunk)
    train_key = axis.key(DYN_TRAIN)
    init = lambda: axis.per_seed(model.init, (0, 0))(axis.key(DYN_INIT), train)  # noqa: E731

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

    advance_all = axis.per_seed(jax.jit(advance_one), (0, 0, 0, 0))
    validate = axis.per_seed(jax.jit(model.validate), (0, 0))
    finalize_one = lambda state, holdout: model.select_elites(  # noqa: E731
        model.use_best(state) if cfg.early_stopping else state, holdout)
    finalize_all = axis.per_seed(jax.jit(finalize_one), (0, 0))

    def advance(state: dynamics.DynamicsState, chunk_index: int):
        return advance_all(state, train, holdout, axis.fold(train_key, chunk_index))

    def stopped(state: dynamics.DynamicsState) -> bool:
        return cfg.early_stopping and bool(np.all(np.asarray(state.stale_checks) >= cfg.patience))

    # What the conservative MDP will take off the reward on the dataset's own
    # held-out rows (lambda * u with the fine-tuning's rule, over the elites),
    # beside the reward there: a penalty as large as the reward makes almost
    # every model reward negative (docs/results.md, walker2d-mixed).
    tuning = settings.fine_tuning.loop  # the mb2po or mopo section's
    penalty_fn = get_penalty(tuning.uncertainty)
    obs_dim = data.info.obs_dim

    def penalty_one(state: dynamics.DynamicsState, holdout: dynamics.DynamicsData):
        mean, logvar = model.predict(state, holdout.inputs[:, :obs_dim],
                                     holdout.inputs[:, obs_dim:])
        u = penalty_fn(mean[state.elites], logvar[state.elites])  # [rows]
        return {"holdout_reward_mean": jnp.mean(holdout.targets[:, -1]),
                "holdout_penalty_mean": tuning.penalty_coef * jnp.mean(u)}

    penalty_all = axis.per_seed(jax.jit(penalty_one), (0, 0))

    def scales(state: dynamics.DynamicsState) -> list[dict[str, float]]:
        return [{k: float(v) for k, v in one.items()}
                for one in axis.split(penalty_all(state, holdout))]

    def evaluate_one(val, elites, stale, scale) -> dict[str, Any]:
        result = dynamics.elite_summary(val)
        result.update(scale)
        result["elites"] = [int(i) for i in np.asarray(elites)]
        if cfg.early_stopping:
            result["stopped_early"] = bool(stale >= cfg.patience)
        return result

    def evaluate_model(state: dynamics.DynamicsState) -> Any:
        results = [evaluate_one(*one, scale) for one, scale in zip(
            axis.split((validate(state, holdout), state.elites, state.stale_checks)),
            scales(state))]
        return results[0] if settings.num_seeds == 1 else results

    def finalize(state: dynamics.DynamicsState) -> dynamics.DynamicsState:
        state = finalize_all(state, holdout)
        # Judged on the final model (its elites chosen), once per run; the
        # simulator diagnostic has no penalty.
        if settings.fine_tuning.model == "ensemble":
            _warn_if_penalty_dominates(scales(state), tuning, settings.algorithm)
        return state

    return Phase(
        name=DYNAMICS,
        total=settings.dynamics_steps,
        chunk=settings.train.steps_per_chunk,
        eval_every=settings.train.eval_every,
        checkpoint_every=settings.train.checkpoint_every,
        init=init,
        abstract=axis.abstract(init),
        progress=progress,
        advance=advance,
        evaluate=evaluate_model,
        guard=lambda metrics, step: check_finite(DYNAMICS, metrics, step),
        finalize=finalize,
        stopped=stopped,
        postfix=("dynamics_loss", "train_mse"),
        keep_checkpoints=settings.train.keep_checkpoints,
        seeds=axis.seeds,
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
