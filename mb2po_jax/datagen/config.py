"""What decides a dataset-making run: its settings, their validation, the
environment it runs in, and its randomness streams.

Randomness. Everything derives from ``seed``: jax keys are
``fold_in(PRNGKey(seed), stream)`` and env seeds ``SeedSequence([seed,
stream])``, one stream per use (the streams below, and one per rollout kind in
:data:`mb2po_jax.datagen.kinds.KIND_TABLE`). The same seed gives the same
datasets, bit for bit, on the same machine and software.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Sequence

import gymnasium as gym
import jax
import numpy as np

from mb2po_jax.agents import sac as sac_lib
from mb2po_jax.envs import ENVS, UNIT_ACTION_GYM_IDS, env_key, gym_dims, lookup_ref_scores

D4RL_DATASET_SIZE = 1_000_000  # transitions in D4RL's random/medium/expert sets

# Randomness streams of the SAC run (see the module doc). The numbers are part
# of the datasets' identity: changing one changes every dataset made with it.
INIT_STREAM, ACT_STREAM, TRAIN_STREAM, SAC_ENV_STREAM, EVAL_STREAM, RESUME_ENV_STREAM = range(6)


class GenerationError(ValueError):
    """A setting or situation that stops dataset generation; the message names
    the option, its value and the fix."""


class InterruptedGeneration(Exception):
    """Ctrl-C during SAC training; a checkpoint was saved first."""

    def __init__(self, env_steps: int, workdir: Path) -> None:
        super().__init__(
            f"Interrupted SAC training at env step {env_steps}; saved a checkpoint in "
            f"{workdir}. Run the same command again to resume from there."
        )
        self.env_steps = env_steps


@dataclasses.dataclass(frozen=True)
class GenerationConfig:
    """Everything that decides the SAC run and the datasets.

    Defaults are D4RL's sizes and SAC's standard settings. Budgets and sizes
    are in environment steps (= transitions).
    """

    env_id: str
    seed: int = 0
    sac: sac_lib.SACConfig = sac_lib.SACConfig()
    batch_size: int = 256
    # SAC budget: the expert policy trains this long; also the replay buffer's
    # capacity, and the cap on the search for the medium policy.
    max_env_steps: int = 1_000_000
    learning_starts: int = 5_000
    update_every: int = 50
    eval_every: int = 5_000
    eval_episodes: int = 10
    medium_target: float = 33.0
    medium_tolerance: float = 5.0
    # Stop SAC early once an evaluation reaches this normalised score (None: never).
    expert_target: float | None = None
    expert_policy: str = "best"  # 'best' evaluated actor or the 'final' one
    checkpoint_every: int = 25_000
    keep_checkpoints: int = 2
    # (ref_min, ref_max) returns; None: D4RL's for hopper/halfcheetah/walker2d.
    ref_scores: tuple[float, float] | None = None
    # Transitions in each random/medium/expert dataset.
    dataset_size: int = D4RL_DATASET_SIZE

    def resolved_ref_scores(self) -> tuple[float, float] | None:
        if self.ref_scores is not None:
            return (float(self.ref_scores[0]), float(self.ref_scores[1]))
        return lookup_ref_scores(self.env_id)

    def run_identity(self) -> dict[str, Any]:
        """The settings a SAC run depends on (a resumed run must match them).
        Dataset sizes, checkpointing and display are not among them."""
        refs = self.resolved_ref_scores()
        return {
            "env_id": self.env_id,
            "seed": self.seed,
            "sac": self.sac.to_dict(),
            "batch_size": self.batch_size,
            "max_env_steps": self.max_env_steps,
            "learning_starts": self.learning_starts,
            "update_every": self.update_every,
            "eval_every": self.eval_every,
            "eval_episodes": self.eval_episodes,
            "medium_target": self.medium_target,
            "medium_tolerance": self.medium_tolerance,
            "expert_target": self.expert_target,
            "expert_policy": self.expert_policy,
            "ref_scores": None if refs is None else list(refs),
        }


# ------------------------------------------------------------ environment


def resolve_env(env: str) -> tuple[str, str]:
    """``'hopper'`` or a gymnasium id -> ``(name for dataset ids, env id)``.

    A project env (:data:`mb2po_jax.envs.ENVS`) matches by its short name or
    its exact gymnasium id; any other registered gymnasium id is used as it
    is, named by :func:`mb2po_jax.envs.env_key` (``Ant-v5`` -> ``ant``). Only
    exact ids match a project env: ``Hopper-v4`` stays Hopper-v4.

    Raises:
        GenerationError: not a project env name nor a registered gymnasium id,
            listing the valid choices.
    """
    key = env.strip()
    for spec in ENVS.values():
        if key.lower() in (spec.name, spec.gym_id.lower()):
            return spec.name, spec.gym_id
    if key in gym.registry:
        return env_key(key), key
    raise GenerationError(
        f"--env={env}: unknown environment; valid: {', '.join(sorted(ENVS))} (the "
        f"paper's, D4RL reference scores known), or any registered gymnasium MuJoCo id "
        f"with actions in [-1, 1]: {', '.join(UNIT_ACTION_GYM_IDS)}."
    )


def env_dims(env_id: str) -> tuple[int, int]:
    """(obs_dim, act_dim) of ``env_id`` (:func:`mb2po_jax.envs.gym_dims`).

    Raises:
        GenerationError: not both spaces are flat Boxes, or actions are not
            in [-1, 1] (the tanh policy's range).
    """
    try:
        return gym_dims(env_id)
    except ValueError as error:
        # gym_dims's messages start with the id: this reads "--env=<id>: ...".
        raise GenerationError(f"--env={error}") from None


# ------------------------------------------------------------- validation


def validate_config(cfg: GenerationConfig, sac_kinds: Sequence[str] = ()) -> None:
    """Fails fast, naming the option, on settings that would break later.

    Args:
        sac_kinds: the kinds asked for that need the SAC run (their policies
            are picked by normalised score, so reference scores must be known);
            named in the error.
    """
    positive = {
        "batch_size": cfg.batch_size, "max_env_steps": cfg.max_env_steps,
        "update_every": cfg.update_every, "eval_every": cfg.eval_every,
        "eval_episodes": cfg.eval_episodes, "checkpoint_every": cfg.checkpoint_every,
        "keep_checkpoints": cfg.keep_checkpoints, "dataset_size": cfg.dataset_size,
    }
    for name, value in positive.items():
        if value < 1:
            raise GenerationError(f"--{name}={value}: must be >= 1.")
    if cfg.seed < 0:
        raise GenerationError(f"--seed={cfg.seed}: must be >= 0.")
    if cfg.learning_starts < 0:
        raise GenerationError(f"--learning_starts={cfg.learning_starts}: must be >= 0.")
    chunk = cfg.update_every
    for name in ("learning_starts", "eval_every", "checkpoint_every", "max_env_steps"):
        value = getattr(cfg, name)
        if value % chunk:
            raise GenerationError(
                f"--{name}={value} is not a multiple of --update_every={chunk}: SAC runs "
                f"in chunks of update_every env steps. Use a multiple of {chunk} (e.g. "
                f"{max(chunk, value // chunk * chunk)})."
            )
    if cfg.max_env_steps % cfg.eval_every:
        raise GenerationError(
            f"--max_env_steps={cfg.max_env_steps} is not a multiple of --eval_every="
            f"{cfg.eval_every}: the final policy must be evaluated. Use e.g. "
            f"{max(cfg.eval_every, cfg.max_env_steps // cfg.eval_every * cfg.eval_every)}."
        )
    if cfg.learning_starts >= cfg.max_env_steps:
        raise GenerationError(
            f"--learning_starts={cfg.learning_starts} must be below --max_env_steps="
            f"{cfg.max_env_steps}, or SAC never trains."
        )
    if cfg.expert_policy not in ("best", "final"):
        raise GenerationError(
            f"--expert_policy={cfg.expert_policy}: valid choices: best, final."
        )
    if cfg.medium_tolerance < 0:
        raise GenerationError(f"--medium_tolerance={cfg.medium_tolerance}: must be >= 0.")
    refs = cfg.resolved_ref_scores()
    if refs is not None and refs[0] == refs[1]:
        raise GenerationError(f"--ref_min_score and --ref_max_score must differ, got {refs}.")
    if refs is None and sac_kinds:
        raise GenerationError(
            f"No D4RL reference scores for {cfg.env_id}, so the medium threshold (a "
            f"normalised score) is undefined for kinds {list(sac_kinds)}; pass "
            f"--ref_min_score=<random policy return> and --ref_max_score=<expert return>."
        )


# ------------------------------------------------------------- randomness


def stream_seed(seed: int, stream: int) -> int:
    """A 32-bit env seed for one use of randomness, independent across streams."""
    return int(np.random.SeedSequence([seed, stream]).generate_state(1)[0])


def stream_key(seed: int, stream: int) -> jax.Array:
    """The jax key of one use of randomness: ``fold_in(PRNGKey(seed), stream)``."""
    return jax.random.fold_in(jax.random.PRNGKey(seed), stream)
