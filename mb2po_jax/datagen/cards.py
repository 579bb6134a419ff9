"""Data cards: ``data_card.json`` beside each dataset made here.

A card says how its dataset was made (env, seed, reference scores, SAC
hyperparameters, the behaviour policy and its evaluation, the SAC run's
evaluations and speed, software versions, the CPU, wall times) and what it holds
(size, episodes, returns). It is written last, after the Minari dataset: a
dataset directory without a card is an interrupted write (or was made by
something else), and dataset making never silently reuses it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from minari.storage.datasets_root_dir import get_dataset_path

from mb2po_jax.agents import sac as sac_lib
from mb2po_jax.data.loaders import minari_dataset_exists
from mb2po_jax.datagen.config import GenerationConfig
from mb2po_jax.machine import machine_description

CARD_FILE = "data_card.json"
CARD_VERSION = 1


def card_path(dataset_id: str) -> Path:
    """Where ``dataset_id``'s card is (in the local Minari store)."""
    return get_dataset_path(dataset_id) / CARD_FILE


def read_card(dataset_id: str) -> dict[str, Any] | None:
    """The card of a local Minari dataset, or None if it has none."""
    path = card_path(dataset_id)
    return json.loads(path.read_text()) if path.is_file() else None


def write_card(dataset_id: str, card: dict[str, Any]) -> Path:
    """Writes the card; call it after the dataset is complete (its presence
    marks a complete dataset)."""
    path = card_path(dataset_id)
    path.write_text(json.dumps(card, indent=2))
    return path


def dataset_status(dataset_id: str) -> str:
    """``'missing'``, ``'complete'`` (dataset and card) or ``'no-card'``."""
    if not minari_dataset_exists(dataset_id):
        return "missing"
    return "complete" if card_path(dataset_id).is_file() else "no-card"


def software_versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {}
    for package in ("jax", "flax", "mujoco", "gymnasium", "minari"):
        try:
            out[package] = md.version(package)
        except md.PackageNotFoundError:
            out[package] = "unknown"
    return out


def base_card(cfg: GenerationConfig, agent: sac_lib.SAC, workdir: Path) -> dict[str, Any]:
    """The card fields every kind of one :func:`make_datasets` call shares."""
    refs = cfg.resolved_ref_scores()
    return {
        "card_version": CARD_VERSION, "env_id": cfg.env_id, "seed": cfg.seed,
        "ref_min_score": None if refs is None else refs[0],
        "ref_max_score": None if refs is None else refs[1],
        "generator": "mb2po_jax.datagen (python -m experiments.make_dataset)",
        "behaviour_workdir": str(workdir), "software": software_versions(),
        "machine": machine_description(),
        "sac_hyperparameters": {**cfg.sac.to_dict(), "batch_size": cfg.batch_size,
                                "learning_starts": cfg.learning_starts,
                                "updates_per_env_step": 1, "update_every": cfg.update_every,
                                "target_entropy": agent.target_entropy},
    }


def _fmt(value, spec: str = ".1f") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, dict):
        return "/".join(_fmt(v, spec) for v in value.values())
    return format(value, spec)


def summary_table(results) -> str:
    """One line per kind of ``make_datasets``' results: size, returns, the
    behaviour policy's evaluation, wall time, made or reused."""
    # norm. return: the dataset's mean normalised return (sampled actions);
    # policy eval: its behaviour policy's deterministic evaluation score.
    header = (f"{'kind':<14}{'dataset id':<30}{'size':>10}{'episodes':>9}{'return':>9}"
              f"{'norm.':>7}  {'policy eval':<12}{'SAC steps':<15}{'wall s':>7}  status")
    lines = [header]
    for kind, made in results.items():
        c = made.card
        policy = c["behaviour_policy"]
        wall = c.get("wall_seconds", {}).get("total_this_kind")
        lines.append(
            f"{kind:<14}{made.dataset_id:<30}{c['size']:>10,}{c['episodes']:>9}"
            f"{_fmt(c['return_mean']):>9}{_fmt(c['normalized_return_mean']):>7}  "
            f"{_fmt(policy.get('eval_normalized_score')):<12}"
            f"{_fmt(policy.get('sac_env_steps'), 'd'):<15}"
            f"{_fmt(wall, '.0f'):>7}  {'reused' if made.reused else 'made'}")
    return "\n".join(lines)
