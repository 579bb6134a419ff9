"""Making the datasets of some kinds from one SAC run: reuse, order, writing.

Datasets go to the local Minari store as ``mb2po/<env>/<kind>-v0``
(:func:`mb2po_jax.data.registry.local_minari_id`), where
:func:`mb2po_jax.data.registry.resolve_dataset` looks first; terminations and
truncations are kept apart; ``ref_min_score`` and ``ref_max_score`` are D4RL's
references; the evaluation env spec is the plain env id (its own 1000-step
time limit). Each dataset gets a data card (:mod:`mb2po_jax.datagen.cards`),
written last. The SAC run lives in a work directory (default: beside the
Minari store, ``<store>/../mb2po_behaviour/<env>-seed<seed>``).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any, Iterable

from minari.storage.datasets_root_dir import get_dataset_path

from mb2po_jax.data.loaders import minari_store_path
from mb2po_jax.data.minari_io import write_minari_dataset
from mb2po_jax.data.registry import d4rl_kind, local_minari_id
from mb2po_jax.datagen import behaviour
from mb2po_jax.datagen.cards import CARD_FILE, base_card, dataset_status, read_card, write_card
from mb2po_jax.datagen.config import GenerationConfig, GenerationError, env_dims, resolve_env
from mb2po_jax.datagen.kinds import KIND_TABLE, KindContext, expand_kinds, validate_request
from mb2po_jax.datagen.rollouts import episode_stats
from mb2po_jax.datagen.sac_run import SAC_STAGES, train_behaviour

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class MadeKind:
    """One dataset: its id, directory, data card, and whether it already existed."""

    kind: str
    dataset_id: str
    path: Path
    card: dict[str, Any]
    reused: bool


def default_workdir(env_name: str, seed: int) -> Path:
    """Beside the Minari store: ``<store>/../mb2po_behaviour/<env>-seed<seed>``."""
    return minari_store_path().parent / "mb2po_behaviour" / f"{env_name}-seed{seed}"


def _with_parts(todo: list[str], ids: dict[str, str]) -> list[str]:
    """``todo`` plus every part (recursively) without a complete dataset, in
    table order."""
    make = list(todo)
    for kind in make:  # grows while iterated: parts of parts
        for part in KIND_TABLE[kind].parts:
            if part not in make and dataset_status(ids[part]) != "complete":
                logger.info("%s needs the %s dataset %s: making it too.", kind, part, ids[part])
                make.append(part)
    return [k for k in KIND_TABLE if k in make]


def make_datasets(
    cfg: GenerationConfig, kinds: str | Iterable[str], *, env_name: str | None = None,
    workdir: str | Path | None = None, overwrite: bool = False, progress: bool = True,
) -> dict[str, MadeKind]:
    """Makes (or reuses) the datasets of ``kinds`` from one SAC run.

    An existing dataset (with its data card) is reused and reported, never
    overwritten unless ``overwrite``; one without a card (an interrupted
    write, or made by something else) is refused unless ``overwrite``. A
    kind built from others (``medium-expert``: medium and expert) makes
    whichever of them is missing.

    Args:
        cfg: the SAC run's and the datasets' settings.
        kinds: kinds or ``'all'``.
        env_name: name in the dataset ids (default: from ``cfg.env_id``).
        workdir: the SAC run's directory (default :func:`default_workdir`).

    Returns:
        ``{kind: MadeKind}`` for every kind asked for (and any made on the
        way), in table order.
    """
    kinds = expand_kinds(kinds)
    validate_request(cfg, kinds)
    if env_name is None:
        env_name = resolve_env(cfg.env_id)[0]
    env_dims(cfg.env_id)
    workdir = Path(workdir).expanduser().absolute() if workdir else default_workdir(env_name, cfg.seed)
    refs = cfg.resolved_ref_scores()
    ids = {k: local_minari_id(env_name, k) for k in KIND_TABLE}

    results: dict[str, MadeKind] = {}
    todo = []
    for kind in kinds:
        state = dataset_status(ids[kind])
        if state == "missing" or overwrite:
            todo.append(kind)
        elif state == "no-card":
            raise GenerationError(
                f"Minari dataset '{ids[kind]}' exists at {get_dataset_path(ids[kind])} but has "
                f"no {CARD_FILE}: its writing was interrupted, or it was not made by "
                f"experiments.make_dataset. Pass --overwrite to remake it."
            )
        else:
            card = read_card(ids[kind])
            logger.info("Dataset %s exists (%d transitions, %s episodes, made %s); reusing it "
                        "(--overwrite remakes it).", ids[kind], card["size"], card["episodes"],
                        card.get("created", "?"))
            results[kind] = MadeKind(kind, ids[kind], get_dataset_path(ids[kind]), card, True)
    make = _with_parts(todo, ids)
    if not make:
        return results

    # One SAC run, as far as the furthest stage any kind made here needs.
    stages = {KIND_TABLE[k].sac_stage for k in make} - {None}
    until = max(stages, key=SAC_STAGES.index) if stages else None
    run = train_behaviour(cfg, workdir, until, progress=progress) if until else None
    agent = run.agent if run else behaviour.build_agent(cfg)[0]
    shared = base_card(cfg, agent, workdir)

    for kind in make:
        dataset_id = ids[kind]
        start = time.time()
        card = {**shared, "dataset_id": dataset_id, "kind": kind,
                "d4rl_equivalent": f"{env_name}-{d4rl_kind(kind)}"}
        entry = KIND_TABLE[kind]
        built = entry.build(KindContext(kind, cfg, ids, entry.parts, workdir, agent, run,
                                        progress))
        card.update(built.card)
        stats = episode_stats(built.episodes, built.cut, cfg.env_id, refs)
        size = int(sum(len(e.rewards) for e in built.episodes))
        t0 = time.time()
        normalized = stats["normalized_return_mean"]
        description = (
            f"D4RL-style '{kind}' data ({card['d4rl_equivalent']}) in {cfg.env_id}: {size} "
            f"transitions, {stats['episodes']} episodes, behaviour: "
            f"{card['behaviour_policy']['description']}; "
            + ("" if normalized is None else f"mean normalised return {normalized:.1f}; ")
            + f"seed {cfg.seed}. Made by mb2po_jax.datagen.")
        path = write_minari_dataset(
            dataset_id, built.episodes, cfg.env_id,
            algorithm_name=f"SAC (mb2po_jax.agents.sac), {kind} data", description=description,
            ref_min_score=None if refs is None else refs[0],
            ref_max_score=None if refs is None else refs[1], overwrite=True)
        wall = card["wall_seconds"]
        wall["write"] = time.time() - t0
        wall["total_this_kind"] = wall["sac"] + wall["collection"] + wall["write"]
        card.update(size=size, **stats, created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    seconds_this_command=time.time() - start)
        if run is not None:
            card["sac_run"] = {"env_steps": run.env_steps, "wall_seconds": run.wall_seconds,
                               "speed": run.speed, "episodes": run.episodes,
                               "evals": run.evals}
        # Written last: its presence marks a complete dataset.
        write_card(dataset_id, card)
        logger.info("Wrote %s: %d transitions, %d episodes, return %s (normalised %s) in %s",
                    dataset_id, size, stats["episodes"], _fmt(stats["return_mean"]),
                    _fmt(normalized), path)
        results[kind] = MadeKind(kind, dataset_id, path, card, False)
    return {k: results[k] for k in KIND_TABLE if k in results}


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.1f}"
