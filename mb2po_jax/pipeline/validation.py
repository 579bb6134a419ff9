"""The config checked before anything runs: every refusal names the field,
the value and the fix, so a wrong setting fails at once, not hours in."""

from __future__ import annotations

import json
from typing import Any

import ml_collections

from mb2po_jax import seeds
from mb2po_jax.agents.awac import AWACConfig
from mb2po_jax.agents.sac import SACConfig
from mb2po_jax.checkpoint import flatten_config
from mb2po_jax.mb2po import BUFFER_CHECKPOINTS
from mb2po_jax.model.dynamics import DynamicsConfig
from mb2po_jax.model.penalties import PENALTIES
from mb2po_jax.model.rollout import NEXT_STATE_CHOICES
from mb2po_jax.pipeline.errors import UsageError
from mb2po_jax.pipeline.rollout_model import model_choice_problem
from mb2po_jax.pipeline.settings import ALGORITHMS, DEFAULTS, MB2PO, MOPO


def _fail(field: str, value: Any, why: str) -> UsageError:
    return UsageError(f"--config.{field}={value!r}: {why}")


def validate_config(config: ml_collections.ConfigDict) -> None:
    """Fails fast on settings that would only break hours into a run."""
    unknown = sorted(set(flatten_config(config_json(config))) - set(flatten_config(DEFAULTS)))
    if unknown:
        raise UsageError(
            f"Config field(s) {unknown} are not read by anything (a typo, or a setting "
            f"from another version); every field a run reads is in "
            f"mb2po_jax/pipeline/config.py. Remove or rename them.")
    if config.seed_batching not in seeds.BATCHINGS:
        raise _fail("seed_batching", config.seed_batching, f"valid: {list(seeds.BATCHINGS)}.")
    if config.algorithm not in ALGORITHMS:
        raise _fail("algorithm", config.algorithm, f"valid: {list(ALGORITHMS)}.")
    for section, cls in (("awac", AWACConfig), ("dynamics", DynamicsConfig),
                         ("mopo.sac", SACConfig)):
        try:
            cls.from_dict(config[section] if "." not in section else config.mopo.sac)
        except (TypeError, ValueError) as error:
            raise UsageError(f"--config.{section}: {error}") from None
    chunk = config.train.steps_per_chunk
    mopo = config.algorithm == MOPO
    name = MOPO if mopo else MB2PO
    mb = config[name]
    fine_tune = mb.num_iterations > 0
    positive = {
        "num_seeds": config.num_seeds,
        "train.steps_per_chunk": chunk,
        "train.eval_every": config.train.eval_every,
        "train.checkpoint_every": config.train.checkpoint_every,
        "train.keep_checkpoints": config.train.keep_checkpoints,
        "eval.num_episodes": config.eval.num_episodes,
        "eval.num_envs": config.eval.num_envs,
    }
    if not mopo:  # MOPO trains SAC from scratch: no AWAC phase
        positive.update({"awac.num_steps": config.awac.num_steps,
                         "awac.batch_size": config.awac.batch_size})
    if fine_tune:
        positive.update({
            "dynamics.num_steps": config.dynamics.num_steps,
            "dynamics.batch_size": config.dynamics.batch_size,
            f"{name}.horizon": mb.horizon,
            f"{name}.rollout_samples": mb.rollout_samples,
            f"{name}.updates_per_iteration": mb.updates_per_iteration,
            f"{name}.buffer_iterations": mb.buffer_iterations,
            f"{name}.block_size": mb.block_size,
            f"{name}.eval_every": mb.eval_every,
            f"{name}.checkpoint_every": mb.checkpoint_every,
            f"{name}.keep_checkpoints": mb.keep_checkpoints,
        })
        if mopo:
            positive["mopo.batch_size"] = mb.batch_size
    for field, value in positive.items():
        if value < 1:
            raise _fail(field, value, "must be >= 1.")
    if fine_tune:
        if mb.next_state not in NEXT_STATE_CHOICES:
            raise _fail(f"{name}.next_state", mb.next_state,
                        f"valid: {list(NEXT_STATE_CHOICES)}.")
        if mb.buffer_checkpoint not in BUFFER_CHECKPOINTS:
            raise _fail(f"{name}.buffer_checkpoint", mb.buffer_checkpoint,
                        f"valid: {list(BUFFER_CHECKPOINTS)}.")
        problem = model_choice_problem(name, mb.model, mb.start_states, mb.horizon)
        if problem:
            raise _fail(*problem)
    if mopo and mb.num_iterations < 1:
        raise _fail("mopo.num_iterations", mb.num_iterations, "must be >= 1 (MOPO is the whole run).")
    if mb.num_iterations < 0:
        raise _fail("mb2po.num_iterations", mb.num_iterations, "must be >= 0 (0 runs AWAC only).")
    multiples = ["train.eval_every", "train.checkpoint_every"]
    multiples += [] if mopo else ["awac.num_steps"]
    multiples += ["dynamics.num_steps"] if fine_tune else []
    for field in multiples:
        value = positive[field]
        if value % chunk:
            raise _fail(field, value,
                        f"not a multiple of train.steps_per_chunk={chunk}: training runs in whole "
                        f"chunks. Use a multiple of {chunk} (e.g. {max(chunk, value // chunk * chunk)}) "
                        f"or change the chunk size.")
    if not fine_tune:
        return
    if mb.rollout_samples % mb.horizon:
        raise _fail(f"{name}.rollout_samples", mb.rollout_samples,
                    f"must be a multiple of {name}.horizon={mb.horizon} (samples / h start states).")
    fraction, field = (mb.real_ratio, "mopo.real_ratio") if mopo else (mb.omega, "mb2po.omega")
    if not 0.0 <= fraction <= 1.0:
        raise _fail(field, fraction, "the real-data fraction must lie in [0, 1].")
    if mb.uncertainty not in PENALTIES:
        raise _fail(f"{name}.uncertainty", mb.uncertainty,
                    f"valid penalties: {sorted(PENALTIES)} (register more in "
                    f"mb2po_jax/model/penalties.py).")
    if not 1 <= config.dynamics.num_elites <= config.dynamics.num_members:
        raise _fail("dynamics.num_elites", config.dynamics.num_elites,
                    f"must lie in [1, dynamics.num_members={config.dynamics.num_members}].")


def config_json(config: ml_collections.ConfigDict) -> dict[str, Any]:
    """The config as a workdir stores it (through JSON, so tuples become lists,
    as they will read back from disk)."""
    return json.loads(config.to_json())
