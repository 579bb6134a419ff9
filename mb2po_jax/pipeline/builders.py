"""The agents, the dynamics model and the policy evaluation a run's settings
describe; the critic's divergence guard."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np

from mb2po_jax import mb2po
from mb2po_jax.agents import awac, sac
from mb2po_jax.evaluation import evaluate, evaluate_policies
from mb2po_jax.model import dynamics
from mb2po_jax.pipeline.seed_axis import SeedAxis
from mb2po_jax.pipeline.settings import AWAC, MB2PO, MOPO, EvalSettings, Settings
from mb2po_jax.runner import TrainingDivergedError, check_finite


def build_agent(settings: Settings, obs_dim: int, act_dim: int,
                alpha: float | None = None) -> awac.AWAC:
    """The AWAC agent of the settings (``alpha`` overrides the temperature)."""
    config = settings.awac if alpha is None else dataclasses.replace(settings.awac, alpha=alpha)
    return awac.make_awac(obs_dim, act_dim, config)


def build_dynamics(settings: Settings, obs_dim: int, act_dim: int) -> dynamics.Dynamics:
    return dynamics.make_dynamics(obs_dim, act_dim, settings.dynamics)


def policy_agent(settings: Settings, phase: str, obs_dim: int, act_dim: int):
    """The agent whose policy a phase trains ('awac', 'mb2po' or 'mopo')."""
    if phase == MOPO:
        return sac.make_sac(obs_dim, act_dim, settings.fine_tuning.sac)
    return build_agent(settings, obs_dim, act_dim,
                       alpha=settings.fine_tuning.alpha if phase == MB2PO else None)


def abstract_policy_state(settings: Settings, phase: str, obs_dim: int, act_dim: int):
    """The structure of a policy phase's checkpointed state, for restoring
    (with a leading seed axis where ``settings.num_seeds > 1``); a fine-tuning
    phase's is :func:`mb2po_jax.mb2po.checkpoint_form`'s."""
    axis = SeedAxis.of(settings)
    agent = policy_agent(settings, phase, obs_dim, act_dim)
    agent_state = jax.eval_shape(axis.per_seed(agent.init, (0,)), axis.key(0))
    if phase == AWAC:
        return agent_state
    tuning = settings.fine_tuning.loop
    start = axis.per_seed(lambda state: mb2po.checkpoint_form(mb2po.init_state(
        state, tuning, obs_dim=obs_dim, act_dim=act_dim,
        policy_params=agent.policy_params(state)), tuning.buffer_checkpoint), (0,))
    return jax.eval_shape(start, agent_state)


def policy_act(agent, num_seeds: int = 1):
    """The jitted deterministic ``act(policy_params, obs)``; with seeds, vmapped
    over stacked parameters and observations ``[N, n, obs_dim]``."""
    return jax.jit(jax.vmap(agent.act) if num_seeds > 1 else agent.act)


def evaluate_policy(act, policy_params: Any, env_id: str, eval_settings: EvalSettings,
                    ref_scores, num_seeds: int = 1) -> Any:
    """Episodes of the deterministic policy; ``act`` is :func:`policy_act`'s,
    built once per phase so evaluations never recompile.

    With ``num_seeds > 1``, ``policy_params`` are seed-stacked and the result
    is one dict per seed (all seeds' envs in one vector env)."""
    policy = lambda obs: np.asarray(act(policy_params, obs))  # noqa: E731
    options = dict(seed=eval_settings.seed, num_envs=eval_settings.num_envs,
                   ref_scores=ref_scores, max_episode_steps=eval_settings.max_episode_steps)
    if num_seeds > 1:
        return evaluate_policies(policy, env_id, eval_settings.num_episodes,
                                 num_policies=num_seeds, **options)
    return evaluate(policy, env_id, eval_settings.num_episodes, **options)


def q_limit(settings: Settings, rewards: np.ndarray) -> float:
    """|Q| beyond which the critic has run away: ``factor * max|r| / (1 - gamma)``,
    ``factor`` times the largest return any policy could earn on this data."""
    r_max = max(float(np.max(np.abs(rewards))), 1e-6)
    return settings.q_limit_factor * r_max / (1.0 - settings.awac.discount)


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
