"""What steps the fine-tuning's rollouts, and the model-vs-simulator check.

``model``: 'ensemble' (the learned dynamics: the paper), 'simulator' (MuJoCo
itself from dataset rows whose observation holds the whole state, no
penalty: a diagnostic) or 'online' (whole real-env episodes of the current
policy: an online-AWAC control). ``start_states``: 'dataset' (every row: the
paper) or 'restorable'.
"""

from __future__ import annotations

import logging
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from mb2po_jax import mb2po, seeds
from mb2po_jax.model import dynamics, online_env, simulator_check, simulator_model
from mb2po_jax.pipeline.builders import build_dynamics
from mb2po_jax.pipeline.dataset import PreparedData
from mb2po_jax.pipeline.settings import FineTuningSettings, Settings

logger = logging.getLogger(__name__)

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


def rollout_model(fine_tuning: FineTuningSettings, data: PreparedData, agent) -> dict:
    """``make_fine_tuning``'s ``model_step``/``start_pool``/``rollout`` for the
    fine-tuning section ('mb2po' or 'mopo'): nothing for the paper's rollouts (the learned
    ensemble from every dataset row); with ``start_states='restorable'`` only
    the rows whose observation holds the whole state start a rollout; with
    ``model='simulator'`` MuJoCo steps them (a diagnostic)."""
    section, tuning = fine_tuning.section, fine_tuning.loop
    model, starts = fine_tuning.model, fine_tuning.start_states
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


def simulator_check_of(settings: Settings, data: PreparedData, agent,
                       dynamics_state: dynamics.DynamicsState):
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
    tuning = settings.fine_tuning.loop
    predict = simulator_check.make_model_prediction(
        build_dynamics(settings, obs_dim, data.info.act_dim), penalty_coef=tuning.penalty_coef,
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
        per_seed = result if settings.num_seeds > 1 else [result]
        params, dyn = agent.policy_params(state.agent), dynamics_state
        for i, one in enumerate(per_seed):
            if settings.num_seeds > 1:
                params_i, dyn_i = seeds.take(params, i), seeds.take(dyn, i)
            else:
                params_i, dyn_i = params, dyn
            policy_actions = np.asarray(sample(params_i, obs_device, keys))
            one.update(simulator_check.check(probe, predict, dyn_i, obs, data_actions,
                                             policy_actions))
        return result

    return check
