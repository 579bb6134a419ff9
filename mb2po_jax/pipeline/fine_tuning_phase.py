"""Phase 3 of Algorithm 1: MB2PO fine-tuning in the conservative model MDP
(or, with ``algorithm='mopo'``, MOPO's SAC in the same MDP), one iteration
per runner step: roll out, then ``updates_per_iteration`` updates on batches
of ``omega`` dataset rows and ``1 - omega`` model rows."""

from __future__ import annotations

import numpy as np

from mb2po_jax import mb2po
from mb2po_jax.agents import awac
from mb2po_jax.envs import get_termination_fn
from mb2po_jax.model import dynamics
from mb2po_jax.pipeline.buffer_checkpointing import buffer_checkpointing
from mb2po_jax.pipeline.builders import (build_dynamics, evaluate_policy, make_critic_guard,
                                         policy_act, policy_agent, q_limit)
from mb2po_jax.pipeline.dataset import PreparedData
from mb2po_jax.pipeline.rollout_model import rollout_model, simulator_check_of
from mb2po_jax.pipeline.seed_axis import MB2PO_STREAM, MOPO_INIT, MOPO_STREAM, SeedAxis, progress
from mb2po_jax.pipeline.settings import MB2PO, MOPO, Settings
from mb2po_jax.runner import Phase
from mb2po_jax.transitions import Transitions


def fine_tuning_phase(
    settings: Settings, data: PreparedData, dataset: Transitions,
    dynamics_state: dynamics.DynamicsState, *, agent, start, reference,
) -> Phase:
    """Algorithm 1's loop as a phase: ``agent`` (the interface of
    :mod:`mb2po_jax.agents`) starts from ``start`` and rolls out in the
    conservative MDP of ``dynamics_state``; ``reference`` is the agent state
    the diagnostics measure the policy's shift from."""
    axis, cfg = SeedAxis.of(settings), settings.fine_tuning
    algorithm, tuning = cfg.section, cfg.loop
    obs_dim, act_dim = data.info.obs_dim, data.info.act_dim
    loop = mb2po.make_fine_tuning(
        agent, build_dynamics(settings, obs_dim, act_dim), get_termination_fn(data.env_id),
        tuning, obs_dim=obs_dim, act_dim=act_dim, **rollout_model(cfg, data, agent))
    key = axis.key(MB2PO_STREAM if algorithm == MB2PO else MOPO_STREAM)
    act = policy_act(agent, settings.num_seeds)
    init = lambda: axis.per_seed(loop.init, (0,))(start)  # noqa: E731

    def step_parts(agent_state, buffer, iteration, policies, refills, dyn_state, dataset, key,
                   reference):
        return loop.step(mb2po.MB2POState(agent_state, buffer, iteration, policies, refills),
                         dyn_state, dataset, key, reference)

    # The dataset is shared by the seeds. Only the model buffer and the ring
    # of policies are donated (the agent's first state may alias ``reference``).
    step = axis.per_seed(step_parts, (0, 0, 0, 0, 0, 0, None, 0, 0), donate_argnums=(1, 3))
    to_checkpoint, from_checkpoint = buffer_checkpointing(
        axis, tuning, loop, init, dynamics_state, dataset, key, algorithm, agent.policy_params)
    check = simulator_check_of(settings, data, agent, dynamics_state)

    def evaluate_state(state: mb2po.MB2POState):
        result = evaluate_policy(act, agent.policy_params(state.agent), data.env_id,
                                 settings.eval, data.ref_scores, settings.num_seeds)
        return check(state, result)

    return Phase(
        name=algorithm,
        total=cfg.num_iterations,
        chunk=1,
        eval_every=cfg.eval_every,
        checkpoint_every=cfg.checkpoint_every,
        init=init,
        abstract=axis.abstract(lambda: to_checkpoint(init())),
        progress=progress,
        advance=lambda state, c: step(state.agent, state.buffer, state.iteration, state.policies,
                                      state.refills, dynamics_state, dataset, axis.fold(key, c),
                                      reference),
        evaluate=evaluate_state,
        guard=make_critic_guard(algorithm, q_limit(settings, np.asarray(data.transitions.rewards))),
        postfix=("critic_loss", "q_data_mean" if algorithm == MB2PO else "q_mean",
                 "rollout_uncertainty_mean"),
        unit="iter",
        keep_checkpoints=cfg.keep_checkpoints,
        seeds=axis.seeds,
        to_checkpoint=to_checkpoint,
        from_checkpoint=from_checkpoint,
    )


def mb2po_phase(
    settings: Settings, data: PreparedData, dataset: Transitions,
    pretrained: awac.AWACState, dynamics_state: dynamics.DynamicsState,
) -> Phase:
    """MB2PO: AWAC with the fine-tuning alpha, from the pretrained state."""
    agent = policy_agent(settings, MB2PO, data.info.obs_dim, data.info.act_dim)
    return fine_tuning_phase(settings, data, dataset, dynamics_state,
                             agent=agent, start=pretrained, reference=pretrained)


def mopo_phase(
    settings: Settings, data: PreparedData, dataset: Transitions,
    dynamics_state: dynamics.DynamicsState,
) -> Phase:
    """MOPO (Yu et al., 2020): SAC from scratch in the same conservative MDP."""
    axis = SeedAxis.of(settings)
    agent = policy_agent(settings, MOPO, data.info.obs_dim, data.info.act_dim)
    start = axis.per_seed(agent.init, (0,))(axis.key(MOPO_INIT))
    return fine_tuning_phase(settings, data, dataset, dynamics_state,
                             agent=agent, start=start, reference=start)
