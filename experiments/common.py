"""What the command lines share: config files, logging, the stop controls.

Config files are resolved before absl parses the flags so that a bare name
(``--config=hopper_mixed.py``) finds ``experiments/configs/``, and so that an
unknown config name or field fails at once with the valid choices instead of
a traceback from deep inside ml_collections.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import ml_collections

from mb2po_jax import stopping
from mb2po_jax.pipeline.config import check_field
from mb2po_jax.pipeline.errors import UsageError


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
        check_field(config, dotted)
    return out


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
