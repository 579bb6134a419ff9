"""Learners, behind one interface the rest of the library relies on.

An agent is a ``NamedTuple`` of pure functions built by its ``make_*``
(:func:`mb2po_jax.agents.awac.make_awac`, :func:`mb2po_jax.agents.sac.make_sac`).
The model-based layer (:mod:`mb2po_jax.model`, :mod:`mb2po_jax.mb2po`), the
runner and evaluation use only the fields of :class:`Agent`; anything else an
agent carries (its networks, its config, AWAC's ``q`` on critic parameters) is
its own business. Each agent module keeps its losses at module level so other
code (benchmarks, new agents) can import them.

To add an algorithm: write ``agents/<name>.py`` with a state pytree, the
losses and a ``make_<name>(obs_dim, act_dim, config)`` returning these fields,
then a phase builder in ``mb2po_jax/pipeline/`` (docs/architecture.md).
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

import jax

from mb2po_jax.transitions import Transitions

Metrics = dict[str, jax.Array]


class Agent(Protocol):
    """The fields every agent offers (shapes: B rows, o = obs_dim, a = act_dim).

    Attributes:
        init: ``key -> state``, a pytree (checkpointable, scannable).
        update: ``(state, batch: Transitions [B], key) -> (state, metrics)``,
            one gradient step; pure and jittable.
        act: ``(policy_params, obs [..., o]) -> [..., a]``, the deterministic
            evaluation action.
        sample_action: ``(policy_params, obs [B, o], keys [B, 2]) -> [B, a]``,
            a ~ pi(.|s) with one key per row (so model rollouts do not depend
            on how rows are blocked).
        policy_params: ``state -> params`` that ``act`` / ``sample_action`` take.
        q_value: ``(state, obs [B, o], actions [B, a]) -> [B]``, the critic's
            (pessimistic) Q estimate, for diagnostics.
    """

    init: Callable[[jax.Array], Any]
    update: Callable[[Any, Transitions, jax.Array], tuple[Any, Metrics]]
    act: Callable[[Any, jax.Array], jax.Array]
    sample_action: Callable[[Any, jax.Array, jax.Array], jax.Array]
    policy_params: Callable[[Any], Any]
    q_value: Callable[[Any, jax.Array, jax.Array], jax.Array]
