"""The dataset kinds, as a table of builders (paper section 5, D4RL's recipe).

* ``random``: rollouts of the *randomly initialised* SAC actor, with actions
  sampled from its tanh-Gaussian (as D4RL; not uniform noise: the initial
  actor's actions are tanh(N(~0, ~1)), more concentrated near 0 than uniform);
* ``medium``: rollouts (sampled actions) of the SAC actor at the first
  evaluation whose D4RL-normalised score reaches ``medium_target -
  medium_tolerance`` (default 33 - 5; a jump past the band is accepted and
  recorded, since SAC rarely comes back down);
* ``mixed`` (D4RL's medium-replay): every transition of the SAC replay buffer
  up to that evaluation (the random warm-up included);
* ``expert``: rollouts (sampled actions) of the fully trained actor: SAC runs
  to ``max_env_steps`` env steps (or until ``expert_target``), and the actor
  with the best evaluation (``expert_policy='best'``, default) or the last one
  (``'final'``) is used; the card records the score reached;
* ``medium-expert``: the medium dataset's episodes followed by the expert's.

random/medium/expert hold ``dataset_size`` transitions (D4RL: 1M); the last
episode, cut by the budget, is stored as a truncation.

A new kind is one builder ``build(ctx: KindContext) -> Built`` and one entry
in :data:`KIND_TABLE` saying how far the SAC run must go for it
(``sac_stage``) and which other kinds' datasets it is built from (``parts``);
:func:`mb2po_jax.datagen.make.make_datasets` does the rest (reuse, the SAC
run, statistics, writing, the data card). To find it by task name
(``hopper-<kind>``) add it to :data:`mb2po_jax.data.registry.KINDS` as well.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, NamedTuple

from minari.data_collector import EpisodeBuffer

from mb2po_jax.agents import sac as sac_lib
from mb2po_jax.data.minari_io import read_episode_buffers
from mb2po_jax.data.registry import KIND_ALIASES
from mb2po_jax.datagen import behaviour
from mb2po_jax.datagen.cards import read_card
from mb2po_jax.datagen.config import (
    D4RL_DATASET_SIZE,
    SAC_ENV_STREAM,
    GenerationConfig,
    GenerationError,
    env_dims,
    stream_key,
    stream_seed,
    validate_config,
)
from mb2po_jax.datagen.rollouts import collect_rollouts, split_episodes
from mb2po_jax.datagen.sac_run import BehaviourRun


@dataclasses.dataclass(frozen=True)
class KindContext:
    """What a builder gets."""

    kind: str
    cfg: GenerationConfig
    ids: Mapping[str, str]  # the local Minari id of every kind
    parts: tuple[str, ...]  # this kind's parts (complete datasets by now)
    workdir: Path  # the SAC run's directory (behaviour policies go there)
    agent: sac_lib.SAC
    run: BehaviourRun | None  # None when no kind made in this call needs SAC
    progress: bool


class Built(NamedTuple):
    """A builder's result.

    Attributes:
        episodes: the dataset's episodes (T + 1 observations for T steps).
        cut: whether the last episode was cut by the size budget (its
            return is left out of the card's statistics).
        card: the kind's own card fields; at least ``behaviour_policy`` (with
            a ``description``) and ``wall_seconds`` (``{'sac', 'collection'}``).
    """

    episodes: list[EpisodeBuffer]
    cut: bool
    card: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Kind:
    """One table entry.

    Attributes:
        build: makes the dataset.
        sac_stage: None, or ``'medium'`` / ``'expert'``: how far the SAC run
            must have gone (:data:`mb2po_jax.datagen.sac_run.SAC_STAGES`).
        parts: kinds whose datasets this one reads; missing ones are made first.
    """

    build: Callable[[KindContext], Built]
    sac_stage: str | None = None
    parts: tuple[str, ...] = ()


def _updates_at(cfg: GenerationConfig, env_steps: int) -> int:
    return max(0, env_steps - cfg.learning_starts)


# ------------------------------------------------------------- rollout kinds


class Behaviour(NamedTuple):
    """The policy a rollout kind records, and what its card says about it."""

    params: Any  # actor parameters
    description: str
    evaluation: Callable[[], dict[str, Any] | None]  # its eval summary (run after collection)
    sac_env_steps: int
    sac_wall_seconds: float
    card: dict[str, Any]  # extra behaviour_policy fields


def _random_behaviour(ctx: KindContext) -> Behaviour:
    cfg, run = ctx.cfg, ctx.run
    params = run.init_actor if run else behaviour.initial_actor(cfg)
    if run is None:
        # A SAC run saves its initial actor itself; without one, save it here.
        obs_dim, act_dim = env_dims(cfg.env_id)
        behaviour.save_policy(ctx.workdir, "random", params, cfg, obs_dim, act_dim,
                              {"env_steps": 0, "eval": None})

    def evaluation() -> dict[str, Any] | None:
        if cfg.resolved_ref_scores() is None:
            return None
        result = behaviour.evaluate_actor(behaviour.actor(ctx.agent), params, cfg)
        return behaviour.eval_summary(result, 0)

    return Behaviour(params, "the randomly initialised SAC actor (sampled actions)",
                     evaluation, 0, 0.0, {})


def _snapshot_behaviour(ctx: KindContext, stage: str, info: dict[str, Any] | None,
                        params, card: Callable[[dict[str, Any]], dict[str, Any]]) -> Behaviour:
    if info is None:
        # Reachable when an expert run ends (at max_env_steps) below the
        # medium band: without this, a KeyError deep in the card.
        raise GenerationError(
            f"The SAC run in {ctx.workdir} has no {stage} policy at env step "
            f"{ctx.run.env_steps}" + (
                f": it did not reach the medium band within --max_env_steps="
                f"{ctx.cfg.max_env_steps}. Raise --max_env_steps (with a new --workdir) or "
                f"lower --medium_target." if stage == "medium" else "."))
    steps = int(info["env_steps"])
    return Behaviour(params, f"the SAC actor after {steps} env steps "
                             f"({_updates_at(ctx.cfg, steps)} updates), sampled actions",
                     lambda: info["eval"], steps, float(info["wall_seconds"]), card(info))


def _medium_behaviour(ctx: KindContext) -> Behaviour:
    return _snapshot_behaviour(ctx, "medium", ctx.run.medium, ctx.run.medium_actor,
                               lambda info: {"medium_band": info["band"],
                                             "in_band": info["in_band"]})


def _expert_behaviour(ctx: KindContext) -> Behaviour:
    return _snapshot_behaviour(ctx, "expert", ctx.run.expert, ctx.run.expert_actor,
                               lambda info: {"selection": info["policy"],
                                             "sac_trained_env_steps": info["trained_env_steps"]})


def rollouts_of(pick: Callable[[KindContext], Behaviour],
                stream: int) -> Callable[[KindContext], Built]:
    """A builder recording ``dataset_size`` steps of the policy ``pick`` chooses,
    with sampled actions; ``stream`` is the kind's own randomness stream (env
    seed and action keys), so kinds never share random numbers."""

    def build(ctx: KindContext) -> Built:
        cfg = ctx.cfg
        chosen = pick(ctx)
        t0 = time.time()
        rows = collect_rollouts(
            ctx.agent, chosen.params, cfg.env_id, cfg.dataset_size,
            env_seed=stream_seed(cfg.seed, stream), key=stream_key(cfg.seed, stream),
            desc=f"{ctx.kind} rollouts", progress=ctx.progress)
        collection = time.time() - t0
        episodes, cut = split_episodes(rows, stream_seed(cfg.seed, stream))
        evaluation = chosen.evaluation()
        policy = {
            "description": chosen.description,
            "eval_normalized_score": evaluation and evaluation["normalized_score"],
            "eval_return_mean": evaluation and evaluation["return_mean"],
            "eval": "deterministic tanh(mean) actions, "
                    f"{cfg.eval_episodes} episodes (evaluation.evaluate)",
            "sac_env_steps": chosen.sac_env_steps,
            "sac_updates": _updates_at(cfg, chosen.sac_env_steps),
            **chosen.card,
        }
        return Built(episodes, cut, {
            "behaviour_policy": policy,
            "wall_seconds": {"sac": chosen.sac_wall_seconds, "collection": collection},
            "scale": cfg.dataset_size / D4RL_DATASET_SIZE,
        })

    return build


# ------------------------------------------------------- replay and mixtures


def _replay_buffer(ctx: KindContext) -> Built:
    """The SAC replay buffer up to the medium policy (D4RL's medium-replay)."""
    cfg, run = ctx.cfg, ctx.run
    rows = run.mixed_rows()
    info = run.medium
    # The buffer's episodes started from the SAC env's seeded reset.
    episodes, cut = split_episodes(rows, stream_seed(cfg.seed, SAC_ENV_STREAM))
    steps = int(info["env_steps"])
    return Built(episodes, cut, {
        "behaviour_policy": {
            "description": (f"every SAC policy iterate up to the medium policy: the "
                            f"replay buffer of the first {info['env_steps']} env steps "
                            f"(the first {cfg.learning_starts} by the initial actor)"),
            "eval_normalized_score": info["eval"]["normalized_score"],
            "eval_return_mean": info["eval"]["return_mean"],
            "eval": f"medium policy, deterministic, {cfg.eval_episodes} episodes",
            "sac_env_steps": steps,
            "sac_updates": _updates_at(cfg, steps),
            "medium_band": info["band"], "in_band": info["in_band"],
        },
        "wall_seconds": {"sac": float(info["wall_seconds"]), "collection": 0.0},
    })


def _concatenation(ctx: KindContext) -> Built:
    """The parts' episodes one after the other (medium-expert: medium, then expert)."""
    t0 = time.time()
    ids = ctx.ids
    episodes: list[EpisodeBuffer] = []
    for part in ctx.parts:
        episodes += read_episode_buffers(ids[part], start_id=len(episodes))
    cards = {part: read_card(ids[part]) for part in ctx.parts}
    return Built(episodes, False, {
        "behaviour_policy": {
            "description": " then ".join(f"{p} ({ids[p]})" for p in ctx.parts) + " episodes",
            "eval_normalized_score": {p: c["behaviour_policy"]["eval_normalized_score"]
                                      for p, c in cards.items()},
            "sac_env_steps": {p: c["behaviour_policy"]["sac_env_steps"]
                              for p, c in cards.items()},
        },
        "parts": {p: {"dataset_id": ids[p], "size": c["size"], "created": c.get("created")}
                  for p, c in cards.items()},
        "wall_seconds": {
            "sac": max(c["wall_seconds"]["sac"] for c in cards.values()),
            "collection": sum(c["wall_seconds"]["collection"] for c in cards.values())
            + time.time() - t0},
    })


# ------------------------------------------------------------------- table

# In the order datasets are made (and listed); the same kinds, in the same
# order, as data.registry.KINDS (tests/test_make_dataset.py checks it). The
# streams (10, 11, 12) are part of the datasets' identity.
KIND_TABLE: dict[str, Kind] = {
    "random": Kind(rollouts_of(_random_behaviour, stream=10)),
    "medium": Kind(rollouts_of(_medium_behaviour, stream=11), sac_stage="medium"),
    "mixed": Kind(_replay_buffer, sac_stage="medium"),
    "expert": Kind(rollouts_of(_expert_behaviour, stream=12), sac_stage="expert"),
    "medium-expert": Kind(_concatenation, parts=("medium", "expert")),
}


def needs_sac(kind: str) -> bool:
    """Whether making ``kind`` (its parts included) needs the SAC run."""
    entry = KIND_TABLE[kind]
    return entry.sac_stage is not None or any(needs_sac(p) for p in entry.parts)


def expand_kinds(kinds: str | Iterable[str]) -> list[str]:
    """``'all'`` -> every kind; D4RL spellings (``medium-replay``,
    ``medium_expert``) -> the paper's. Returns them in table order.

    Raises:
        GenerationError: an unknown kind, listing the valid ones.
    """
    if isinstance(kinds, str):
        kinds = [kinds]
    out: list[str] = []
    for kind in kinds:
        name = KIND_ALIASES.get(kind.strip().lower(), kind.strip().lower())
        if name == "all":
            chosen = list(KIND_TABLE)
        elif name in KIND_TABLE:
            chosen = [name]
        else:
            raise GenerationError(
                f"--kind={kind}: unknown dataset kind; valid kinds: {', '.join(KIND_TABLE)}, "
                f"all (the paper's 'mixed' is D4RL's 'medium-replay')."
            )
        out += [k for k in chosen if k not in out]
    return [k for k in KIND_TABLE if k in out]


def validate_request(cfg: GenerationConfig, kinds: Iterable[str] | None = None) -> None:
    """:func:`validate_config` for making ``kinds`` (default: every kind)."""
    kinds = list(KIND_TABLE) if kinds is None else list(kinds)
    validate_config(cfg, [k for k in kinds if needs_sac(k)])
