"""Pieces shared by the launchers: config files, datasets, environments.

Config files are resolved before absl parses the flags so that a bare name
(``--config=hopper_mixed.py``) finds ``experiments/configs/``, and so that an
unknown config name or field fails at once with the valid choices instead of
a traceback from deep inside ml_collections.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
from pathlib import Path
from typing import Any

import ml_collections

from mb2po_jax import envs, stopping
from mb2po_jax.data import (
    DatasetError,
    DatasetInfo,
    DatasetNotFoundError,
    resolve_dataset,
    validate_transitions,
)
from mb2po_jax.datagen import make_minari_dataset
from mb2po_jax.transitions import Transitions

from experiments.configs.base import SCALES

logger = logging.getLogger(__name__)

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
# Modules in configs/ that are helpers, not runnable configs.
_NOT_CONFIGS = {"__init__.py"}


def setup_logging() -> None:
    """Our INFO messages on stderr; Orbax's and JAX's per-save chatter hidden."""
    from absl import logging as absl_logging

    # absl routes every library's python logging through its own handler at
    # INFO; warnings and errors still show.
    absl_logging.set_verbosity(absl_logging.WARNING)
    for name in ("experiments", "mb2po_jax"):
        logging.getLogger(name).setLevel(logging.INFO)


class UsageError(ValueError):
    """A command-line mistake: printed without a traceback."""


class ResourceError(UsageError):
    """A run refused before training because this machine cannot hold it
    (model buffers past memory, checkpoints past the disk). Another machine,
    or the fix the message names, can run the same config."""


def available_configs() -> list[str]:
    return sorted(p.name for p in CONFIG_DIR.glob("*.py") if p.name not in _NOT_CONFIGS)


def resolve_config_path(value: str) -> Path:
    """``hopper_mixed.py``, ``hopper_mixed`` or a path -> an existing config file."""
    path = Path(value).expanduser()
    candidates = [path]
    if not path.is_absolute() and len(path.parts) == 1:
        name = path.name if path.suffix == ".py" else f"{path.name}.py"
        candidates.append(CONFIG_DIR / name)
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    raise UsageError(
        f"Unknown config '{value}': no such file, and not a config in {CONFIG_DIR}. "
        f"Valid configs: {', '.join(available_configs())}."
    )


def load_config_file(path: Path) -> ml_collections.ConfigDict:
    spec = importlib.util.spec_from_file_location(f"_mb2po_config_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise UsageError(f"Config file {path} defines no get_config().")
    return module.get_config()


def _check_override(config: ml_collections.ConfigDict, dotted: str) -> None:
    node: Any = config
    walked = []
    for part in dotted.split("."):
        if not isinstance(node, ml_collections.ConfigDict) or part not in node:
            where = ".".join(walked) or "the config"
            choices = sorted(node.keys()) if isinstance(node, ml_collections.ConfigDict) else []
            raise UsageError(
                f"Unknown config field '--config.{dotted}': {where} has no field '{part}'. "
                f"Valid fields of {where}: {', '.join(choices)}."
            )
        walked.append(part)
        node = node[part]


def resolve_config_argv(argv: list[str], flag: str = "config") -> list[str]:
    """Rewrites ``--config=<name>`` to the config file's path and checks every
    ``--config.<field>=...`` override names an existing field.

    Raises:
        UsageError: unknown config file or field, with the valid choices.
    """
    out, config, overrides = [], None, []
    for arg in argv:
        if arg.startswith(f"--{flag}="):
            path = resolve_config_path(arg.split("=", 1)[1])
            config = load_config_file(path)
            arg = f"--{flag}={path}"
        elif arg.startswith(f"--{flag}."):
            overrides.append(arg[len(f"--{flag}.") :].split("=", 1)[0])
        out.append(arg)
    if config is None and overrides:
        raise UsageError(f"--{flag}.<field> overrides need --{flag}=<file> first.")
    for dotted in overrides:
        _check_override(config, dotted)
    return out


@dataclasses.dataclass(frozen=True)
class PreparedData:
    """A validated dataset on the host plus what the run needs to know about it."""

    transitions: Transitions
    info: DatasetInfo
    env_id: str
    ref_scores: tuple[float, float] | None


def _make_missing_dataset(config: ml_collections.ConfigDict) -> None:
    scheme, _, dataset_id = config.dataset.partition(":")
    if scheme != "minari" or not dataset_id:
        raise UsageError(
            f"make_dataset.enabled only records Minari datasets named 'minari:<id>', "
            f"but dataset is '{config.dataset}'."
        )
    spec = config.make_dataset
    refs = envs.lookup_ref_scores(spec.env_id)
    logger.info(
        "Dataset %s not found: recording %d steps of a %s policy in %s.",
        dataset_id, spec.num_steps, spec.policy, spec.env_id,
    )
    make_minari_dataset(
        dataset_id,
        spec.env_id,
        spec.num_steps,
        seed=spec.seed,
        policy=spec.policy,
        ref_min_score=refs[0] if refs else None,
        ref_max_score=refs[1] if refs else None,
    )


def prepare_dataset(config: ml_collections.ConfigDict) -> PreparedData:
    """Finds (or, where the config allows, records) and validates the dataset,
    and picks the evaluation env and the score references."""
    try:
        data, info = resolve_dataset(
            config.dataset, d4rl_dir=config.d4rl_dir, download=config.download
        )
    except DatasetNotFoundError:
        if not config.make_dataset.enabled:
            raise
        _make_missing_dataset(config)
        data, info = resolve_dataset(config.dataset)
    env_id = config.env_id or info.env_id
    if not env_id:
        raise UsageError(
            f"Dataset '{config.dataset}' ({info.source}) does not say which environment "
            f"it comes from; pass --config.env_id=<gymnasium id>, e.g. Hopper-v5."
        )
    try:
        obs_dim, act_dim = envs.gym_dims(env_id)
    except ValueError as error:
        raise DatasetError(f"Dataset {config.dataset}: cannot evaluate in {error}") from None
    validate_transitions(
        data, obs_dim=obs_dim, act_dim=act_dim, name=config.dataset, env_id=env_id
    )
    if info.ref_min_score is not None and info.ref_max_score is not None:
        refs = (info.ref_min_score, info.ref_max_score)
    else:
        refs = envs.lookup_ref_scores(env_id)
    logger.info(
        "Dataset %s: %d transitions from %s (fingerprint %s); evaluating in %s.",
        config.dataset, info.num_transitions, info.source, info.fingerprint[:12], env_id,
    )
    return PreparedData(transitions=data, info=info, env_id=env_id, ref_scores=refs)


# The environment variable that rescales any config (module doc).
SCALE_ENV = "MB2PO_SCALE"


def apply_scale(config: ml_collections.ConfigDict, scale: str,
                overrides: dict[str, Any]) -> ml_collections.ConfigDict:
    """``config`` (a loaded config file) at ``scale`` (a name in
    :data:`experiments.configs.base.SCALES`), with the command line's
    ``overrides`` (dotted field -> value) set again on top, so they still win."""
    if scale not in SCALES:
        raise UsageError(f"{SCALE_ENV}={scale!r}: valid scales are {sorted(SCALES)} "
                         f"(or leave it unset to run the config as it is).")
    SCALES[scale](config)
    for dotted, value in overrides.items():
        *parents, leaf = dotted.split(".")
        node = config
        for part in parents:
            node = node[part]
        node[leaf] = value
    logger.warning("%s=%s: applied experiments.configs.base.%s_scale to the config file "
                   "(then %d command-line override(s)).", SCALE_ENV, scale, scale, len(overrides))
    return config


TIME_LIMIT_HELP = ("Stop cleanly at this wall-clock limit (e.g. 45s, 90m, 2h, 1h30m): checkpoint "
                   "at the last chunk boundary that leaves room for the next, exit 0; re-running "
                   "the same command continues. SIGTERM and SIGUSR1 stop the same way.")


def install_stop_controls(time_limit: str | None) -> None:
    """SIGTERM / SIGUSR1 stop the run at the next chunk boundary, and so does
    ``time_limit`` (a duration, :func:`mb2po_jax.stopping.parse_duration`)."""
    try:
        seconds = None if time_limit is None else stopping.parse_duration(time_limit)
    except ValueError as error:
        raise UsageError(str(error)) from None
    stopping.STOP.install_signal_handlers()
    stopping.STOP.set_time_limit(seconds)
