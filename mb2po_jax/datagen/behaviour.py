"""The behaviour policies: the SAC agent that acts them, their evaluation, and
their checkpoints.

Both the SAC run (:mod:`mb2po_jax.datagen.sac_run`) and the rollout kinds
(:mod:`mb2po_jax.datagen.kinds`) act, evaluate and save SAC actors, and a
behaviour policy is loaded back without any training
(:func:`load_behaviour_policy`); so this lives apart from the training loop.

One agent and its jitted functions are kept per architecture (obs_dim,
act_dim, SACConfig), so that several runs in one process (tests, ``--kind=all``)
compile once.

Behaviour policies are saved under ``<workdir>/policies/<kind>/`` (one Orbax
checkpoint of the actor parameters each, with JSON metadata: kind, env id,
seed, SAC config, dimensions, the SAC env step and its evaluation).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Callable, NamedTuple

import jax
import numpy as np

from mb2po_jax.agents import sac as sac_lib
from mb2po_jax.checkpoint import Checkpointer
from mb2po_jax.datagen.config import (
    EVAL_STREAM,
    INIT_STREAM,
    GenerationConfig,
    env_dims,
    stream_key,
    stream_seed,
)
from mb2po_jax.evaluation import evaluate


class _Compiled(NamedTuple):
    agent: sac_lib.SAC
    init: Callable  # key -> SACState (jitted agent.init)
    # (params, obs [obs_dim], key, t) -> a ~ pi(.|obs) [act_dim], with the key fold_in(key, t)
    sample: Callable
    act: Callable  # (params, obs [..., obs_dim]) -> deterministic action [..., act_dim]


_COMPILED: dict[tuple, _Compiled] = {}


def _make_sampler(agent: sac_lib.SAC) -> Callable:
    return jax.jit(lambda params, obs, key, t: agent.sample_actions(
        params, obs, jax.random.fold_in(key, t)))


def _compiled(obs_dim: int, act_dim: int, sac_config: sac_lib.SACConfig) -> _Compiled:
    key = (obs_dim, act_dim, sac_config)
    if key not in _COMPILED:
        agent = sac_lib.make_sac(obs_dim, act_dim, sac_config)
        _COMPILED[key] = _Compiled(agent, jax.jit(agent.init), _make_sampler(agent),
                                   jax.jit(agent.act))
    return _COMPILED[key]


def build_agent(cfg: GenerationConfig) -> tuple[sac_lib.SAC, int, int]:
    """``(agent, obs_dim, act_dim)`` for ``cfg``'s env and SAC settings."""
    obs_dim, act_dim = env_dims(cfg.env_id)
    return _compiled(obs_dim, act_dim, cfg.sac).agent, obs_dim, act_dim


def initial_state(cfg: GenerationConfig) -> sac_lib.SACState:
    """The SAC state a run of ``cfg`` starts from (its init stream's key)."""
    obs_dim, act_dim = env_dims(cfg.env_id)
    return _compiled(obs_dim, act_dim, cfg.sac).init(stream_key(cfg.seed, INIT_STREAM))


def initial_actor(cfg: GenerationConfig):
    """The randomly initialised SAC actor of ``cfg.seed`` (the random policy)."""
    return initial_state(cfg).actor_params


@functools.lru_cache(maxsize=8)
def train_steps(obs_dim: int, act_dim: int, sac_config: sac_lib.SACConfig, batch_size: int,
                update_every: int) -> Callable:
    """The jitted ``train_steps(state, buffer, size, key)`` of
    :func:`mb2po_jax.agents.sac.make_train_steps`: ``update_every`` SAC updates
    on batches from the buffer's first ``size`` rows, one ``lax.scan``."""
    agent = _compiled(obs_dim, act_dim, sac_config).agent
    return sac_lib.make_train_steps(agent.update, batch_size, update_every)


def sampler(agent: sac_lib.SAC) -> Callable:
    """Jitted ``(params, obs [obs_dim], key, t) -> a [act_dim]``, a ~ pi(.|obs)
    with the key ``fold_in(key, t)``."""
    for compiled in _COMPILED.values():
        if compiled.agent is agent:
            return compiled.sample
    return _make_sampler(agent)


def actor(agent: sac_lib.SAC) -> Callable:
    """Jitted deterministic ``(params, obs [..., obs_dim]) -> tanh(mu) [..., act_dim]``."""
    for compiled in _COMPILED.values():
        if compiled.agent is agent:
            return compiled.act
    return jax.jit(agent.act)


# ------------------------------------------------------------- evaluation


def evaluate_actor(act_fn: Callable, params, cfg: GenerationConfig) -> dict[str, Any]:
    """``cfg.eval_episodes`` deterministic episodes (:func:`evaluation.evaluate`)
    with the evaluation stream's seeds: every evaluation of a run sees the same
    start states."""
    return evaluate(
        lambda obs: np.asarray(act_fn(params, obs)),
        cfg.env_id,
        cfg.eval_episodes,
        seed=stream_seed(cfg.seed, EVAL_STREAM),
        ref_scores=cfg.resolved_ref_scores(),
    )


def eval_summary(result: dict[str, Any], env_steps: int) -> dict[str, Any]:
    """The part of an evaluation kept in checkpoints and data cards."""
    return {
        "env_steps": int(env_steps),
        "normalized_score": result["normalized_score"],
        "return_mean": result["return_mean"],
        "return_std": result["return_std"],
        "episode_length_mean": result["episode_length_mean"],
        "num_episodes": result["num_episodes"],
    }


# ------------------------------------------------------------ checkpoints


def save_policy(workdir: Path, kind: str, actor_params, cfg: GenerationConfig,
                obs_dim: int, act_dim: int, info: dict[str, Any]) -> None:
    """Saves one behaviour policy under ``<workdir>/policies/<kind>/`` (kept
    once: a policy already saved at that step is left as it is).

    Args:
        info: JSON metadata; ``info['env_steps']`` (the SAC env step the actor
            is from, 0 or None for the initial actor) is the checkpoint step.
    """
    meta = {"kind": kind, "env_id": cfg.env_id, "seed": cfg.seed, "sac": cfg.sac.to_dict(),
            "obs_dim": obs_dim, "act_dim": act_dim, **info}
    with Checkpointer(workdir / "policies" / kind, max_to_keep=1) as checkpointer:
        checkpointer.save(int(info.get("env_steps") or 0), actor_params, meta)


def load_behaviour_policy(workdir: str | Path, kind: str) -> tuple[sac_lib.SAC, Any, dict]:
    """Restores a behaviour policy (``random``, ``medium`` or ``expert``) saved by
    a SAC run: ``(agent, actor_params, meta)``; ``agent.act`` / ``agent.sample_actions``
    run it."""
    directory = Path(workdir).expanduser().absolute() / "policies" / kind
    with Checkpointer(directory, max_to_keep=1) as checkpointer:
        meta = checkpointer.restore_meta()
        agent = sac_lib.make_sac(meta["obs_dim"], meta["act_dim"],
                                 sac_lib.SACConfig.from_dict(meta["sac"]))
        abstract = jax.eval_shape(lambda: agent.init(jax.random.PRNGKey(0)).actor_params)
        params, meta = checkpointer.restore(abstract)
    return agent, params, meta
