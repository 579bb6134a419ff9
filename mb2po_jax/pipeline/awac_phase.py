"""Phase 1 of Algorithm 1: offline AWAC pretraining, as a
:class:`mb2po_jax.runner.Phase` (the runner handles chunks, logging,
evaluation and checkpoints)."""

from __future__ import annotations

import numpy as np

from mb2po_jax.agents import awac
from mb2po_jax.pipeline.builders import (build_agent, evaluate_policy, make_critic_guard,
                                         policy_act, q_limit)
from mb2po_jax.pipeline.dataset import PreparedData
from mb2po_jax.pipeline.seed_axis import AWAC_INIT, AWAC_TRAIN, SeedAxis, progress
from mb2po_jax.pipeline.settings import AWAC, Settings
from mb2po_jax.runner import Phase
from mb2po_jax.transitions import Transitions


def _scanned(axis: SeedAxis, train_steps, data, key):
    """``advance`` for a scanned train-steps function (the dataset shared by seeds)."""
    steps = axis.per_seed(train_steps, (0, None, 0))
    return lambda state, chunk_index: steps(state, data, axis.fold(key, chunk_index))


def awac_phase(settings: Settings, data: PreparedData, dataset: Transitions) -> Phase:
    """Offline AWAC pretraining (appendix 7.1) on the dataset."""
    axis = SeedAxis.of(settings)
    agent = build_agent(settings, data.info.obs_dim, data.info.act_dim)
    train_steps = awac.make_train_steps(agent.update, settings.awac_batch_size,
                                        settings.train.steps_per_chunk)
    train_key = axis.key(AWAC_TRAIN)
    act = policy_act(agent, settings.num_seeds)
    init = lambda: axis.per_seed(agent.init, (0,))(axis.key(AWAC_INIT))  # noqa: E731
    return Phase(
        name=AWAC,
        total=settings.awac_steps,
        chunk=settings.train.steps_per_chunk,
        eval_every=settings.train.eval_every,
        checkpoint_every=settings.train.checkpoint_every,
        init=init,
        abstract=axis.abstract(init),
        progress=progress,
        advance=_scanned(axis, train_steps, dataset, train_key),
        evaluate=lambda state: evaluate_policy(act, state.policy_params, data.env_id,
                                               settings.eval, data.ref_scores, settings.num_seeds),
        guard=make_critic_guard(AWAC, q_limit(settings, np.asarray(data.transitions.rewards))),
        postfix=("critic_loss", "q_data_mean"),
        keep_checkpoints=settings.train.keep_checkpoints,
        seeds=axis.seeds,
    )
