"""Typed settings: the config read once, at the pipeline's entry.

:func:`Settings.from_config` takes an ``ml_collections.ConfigDict`` (or the
plain dict a workdir's ``run.json`` or a checkpoint stores) and returns frozen
dataclasses; everything below the entry takes these, never the ``ConfigDict``.
A field missing from a stored config (a workdir made before the field
existed) takes its default from :func:`mb2po_jax.pipeline.config.get_base_config`,
which is what such a run used.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Mapping

from mb2po_jax import mb2po, seeds
from mb2po_jax.agents.awac import AWACConfig
from mb2po_jax.agents.sac import SACConfig
from mb2po_jax.model.dynamics import DynamicsConfig
from mb2po_jax.pipeline.config import get_base_config

AWAC, DYNAMICS, MB2PO, MOPO = "awac", "dynamics", "mb2po", "mopo"
ALGORITHMS = (MB2PO, MOPO)
# Every field at its default, as a stored config reads back (through JSON).
DEFAULTS = json.loads(get_base_config().to_json())


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    """The scanned loop of the step-based phases (AWAC, dynamics)."""

    steps_per_chunk: int
    eval_every: int
    checkpoint_every: int
    keep_checkpoints: int
    progress_bar: bool
    tensorboard: bool


@dataclasses.dataclass(frozen=True)
class EvalSettings:
    """Deterministic evaluation episodes: episode k resets with ``seed + k``."""

    num_episodes: int
    num_envs: int
    seed: int
    max_episode_steps: int | None


@dataclasses.dataclass(frozen=True)
class DatasetSettings:
    """Where the data comes from (``name``: a D4RL task, ``minari:<id>`` or
    ``hdf5:<path>``) and, for tests and the quickstart, how to record it."""

    name: str
    env_id: str | None
    d4rl_dir: str | None
    download: bool
    make: Mapping[str, Any]  # enabled, env_id, num_steps, policy, seed


@dataclasses.dataclass(frozen=True)
class FineTuningSettings:
    """The fine-tuning phase of ``section`` ('mb2po' or 'mopo')."""

    section: str
    loop: mb2po.FineTuningConfig
    num_iterations: int
    eval_every: int
    checkpoint_every: int
    keep_checkpoints: int
    model: str  # 'ensemble' (the paper), 'simulator' or 'online'
    start_states: str  # 'dataset' (the paper) or 'restorable'
    alpha: float | None  # MB2PO's fine-tuning temperature; None for MOPO
    sac: SACConfig | None  # MOPO's agent; None for MB2PO


@dataclasses.dataclass(frozen=True)
class Settings:
    """One run, typed."""

    seed: int
    num_seeds: int
    seed_batching: str
    algorithm: str
    data: DatasetSettings
    awac: AWACConfig
    awac_steps: int
    awac_batch_size: int
    dynamics: DynamicsConfig
    dynamics_steps: int
    dynamics_batch_size: int
    fine_tuning: FineTuningSettings
    q_limit_factor: float
    awac_init_workdir: str | None
    dynamics_init_workdir: str | None
    train: TrainSettings
    eval: EvalSettings

    @property
    def mopo(self) -> bool:
        return self.algorithm == MOPO

    @property
    def fine_tune(self) -> bool:
        """Whether dynamics and a fine-tuning phase run (MOPO always does)."""
        return self.mopo or self.fine_tuning.num_iterations > 0

    @property
    def last_phase(self) -> str:
        return MOPO if self.mopo else MB2PO if self.fine_tune else AWAC

    @property
    def seeds(self) -> tuple[int, ...]:
        """The seeds of a multi-seed run; ``()`` for one seed (no seed axis)."""
        return seeds.seed_list(self.seed, self.num_seeds) if self.num_seeds > 1 else ()

    @classmethod
    def from_config(cls, config: Any) -> "Settings":
        """Reads a config (a ``ConfigDict`` or a stored dict) once.

        Raises:
            ValueError: a section holding a key nothing reads, naming it.
        """
        values = with_defaults(json.loads(config.to_json()) if hasattr(config, "to_json")
                                else json.loads(json.dumps(config)))
        awac, dyn, mopo = values["awac"], values["dynamics"], values["algorithm"] == MOPO
        return cls(
            seed=values["seed"], num_seeds=values["num_seeds"],
            seed_batching=values["seed_batching"], algorithm=values["algorithm"],
            data=DatasetSettings(name=values["dataset"], env_id=values["env_id"],
                                 d4rl_dir=values["d4rl_dir"], download=values["download"],
                                 make=dict(values["make_dataset"])),
            awac=AWACConfig.from_dict(awac), awac_steps=awac["num_steps"],
            awac_batch_size=awac["batch_size"],
            dynamics=DynamicsConfig.from_dict(dyn), dynamics_steps=dyn["num_steps"],
            dynamics_batch_size=dyn["batch_size"],
            fine_tuning=_fine_tuning(values, MOPO if mopo else MB2PO),
            q_limit_factor=values["guard"]["q_limit_factor"],
            awac_init_workdir=values["init"]["awac_workdir"],
            dynamics_init_workdir=values["init"]["dynamics_workdir"],
            train=TrainSettings(**values["train"]), eval=EvalSettings(**values["eval"]))


def with_defaults(values: dict[str, Any], defaults: dict[str, Any] = DEFAULTS) -> dict[str, Any]:
    """``values`` with every field it lacks taken from ``defaults``."""
    out = dict(values)
    for key, default in defaults.items():
        if key not in out:
            out[key] = default
        elif isinstance(default, dict) and isinstance(out[key], dict):
            out[key] = with_defaults(out[key], default)
    return out


def _fine_tuning(values: dict[str, Any], section: str) -> FineTuningSettings:
    cfg = values[section]
    if section == MB2PO:
        batch_size, omega = values["awac"]["batch_size"], cfg["omega"]
    else:
        batch_size, omega = cfg["batch_size"], cfg["real_ratio"]
    loop = mb2po.FineTuningConfig(
        horizon=cfg["horizon"], rollout_samples=cfg["rollout_samples"],
        penalty_coef=cfg["penalty_coef"], uncertainty=cfg["uncertainty"],
        block_size=cfg["block_size"], batch_size=batch_size, omega=omega,
        updates_per_iteration=cfg["updates_per_iteration"],
        buffer_iterations=cfg["buffer_iterations"], next_state=cfg["next_state"],
        buffer_checkpoint=cfg["buffer_checkpoint"])
    return FineTuningSettings(
        section=section, loop=loop, num_iterations=cfg["num_iterations"],
        eval_every=cfg["eval_every"], checkpoint_every=cfg["checkpoint_every"],
        keep_checkpoints=cfg["keep_checkpoints"], model=cfg["model"],
        start_states=cfg["start_states"],
        alpha=cfg["alpha"] if section == MB2PO else None,
        sac=SACConfig.from_dict(cfg["sac"]) if section == MOPO else None)
