"""Maps the paper's task names (``hopper-mixed``) to a dataset on this machine.

The paper evaluates on D4RL MuJoCo datasets, which are not all available for
the Gymnasium-v5 environments this library runs in. A task name is therefore
resolved by looking, in order, at: the project's own generated dataset in the
local Minari store; a D4RL HDF5 file; and (medium/expert only) Minari's hosted
Gymnasium-v5 ports. Nothing touches the network unless ``download=True``, so a
missing dataset fails in milliseconds with a list of every place looked at.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from pathlib import Path

from mb2po_jax.data.loaders import (
    DatasetInfo,
    DatasetNotFoundError,
    load_d4rl_hdf5,
    load_minari,
    minari_dataset_exists,
    minari_store_path,
)
from mb2po_jax.envs import ENV_IDS
from mb2po_jax.transitions import Transitions
from mb2po_jax.data.validation import validate_transitions

logger = logging.getLogger(__name__)

KINDS: tuple[str, ...] = ("random", "medium", "mixed", "expert", "medium-expert")

# D4RL's name of each kind where it differs from the paper's: the paper's
# "-mixed" is D4RL's replay buffer of a medium agent. The one table of D4RL
# spellings: dataset names (hopper-medium-replay) use it as it is, D4RL's file
# names (hopper_medium_replay-v2.hdf5) with underscores.
_D4RL_NAME = {"mixed": "medium-replay"}


def d4rl_kind(kind: str) -> str:
    """D4RL's dataset-name spelling of a kind: ``'mixed'`` -> ``'medium-replay'``."""
    return _D4RL_NAME.get(kind, kind)


def _d4rl_file_kind(kind: str) -> str:
    """D4RL's file-name spelling: ``'mixed'`` -> ``'medium_replay'``."""
    return d4rl_kind(kind).replace("-", "_")


# D4RL spellings accepted as aliases of the paper's kinds (medium-replay,
# medium_replay, medium_expert), derived from the table above.
KIND_ALIASES: dict[str, str] = {
    spelling: kind
    for kind in KINDS
    for spelling in (d4rl_kind(kind), _d4rl_file_kind(kind))
    if spelling != kind
}
# Minari hosts Gymnasium-v5 re-collections of these kinds only.
MINARI_HOSTED_KINDS: tuple[str, ...] = ("medium", "expert")
D4RL_VERSION = "v2"
_DEFAULT_D4RL_DIR = "~/.d4rl/datasets"
_D4RL_FILE_RE = re.compile(r"^(?P<env>[a-z0-9]+)_(?P<kind>[a-z_]+)-v\d+$")


def parse_task_name(name: str) -> tuple[str, str]:
    """Splits ``'hopper-medium-expert'`` into ``('hopper', 'medium-expert')``.

    Raises:
        ValueError: unknown env or kind, listing the valid choices.
    """
    env, _, kind = name.strip().lower().partition("-")
    if env not in ENV_IDS:
        raise ValueError(
            f"Unknown environment '{env}' in dataset name '{name}'; valid environments: "
            f"{sorted(ENV_IDS)}. Names look like 'hopper-mixed', or use "
            f"'minari:<dataset id>' / 'hdf5:<path>'."
        )
    kind = KIND_ALIASES.get(kind, kind)
    if kind not in KINDS:
        raise ValueError(
            f"Unknown dataset kind '{kind}' in dataset name '{name}'; valid kinds: "
            f"{list(KINDS)} (the paper's 'mixed' is D4RL's 'medium-replay')."
        )
    return env, kind


def env_name_from_id(env_id: str) -> str:
    """``'Hopper-v5'`` -> ``'hopper'``."""
    for name, known_id in ENV_IDS.items():
        if known_id.lower() == env_id.lower():
            return name
    raise ValueError(f"Unknown environment id '{env_id}'; valid ids: {sorted(ENV_IDS.values())}.")


def d4rl_filename(env: str, kind: str) -> str:
    """The file name D4RL downloads to, e.g. ``hopper_medium_replay-v2.hdf5`` for mixed."""
    env, kind = parse_task_name(f"{env}-{kind}")
    return f"{env}_{_d4rl_file_kind(kind)}-{D4RL_VERSION}.hdf5"


def local_minari_id(env: str, kind: str) -> str:
    """The id of the project's own generated dataset, e.g. ``mb2po/hopper/mixed-v0``."""
    return f"mb2po/{env}/{kind}-v0"


def hosted_minari_id(env: str, kind: str) -> str | None:
    """Minari's hosted Gymnasium-v5 port (``mujoco/hopper/medium-v0``), if one exists."""
    return f"mujoco/{env}/{kind}-v0" if kind in MINARI_HOSTED_KINDS else None


def d4rl_search_dir(explicit: str | os.PathLike | None = None) -> Path:
    """``explicit``, else ``$D4RL_DATASET_DIR``, else ``~/.d4rl/datasets`` (as D4RL)."""
    chosen = explicit or os.environ.get("D4RL_DATASET_DIR") or _DEFAULT_D4RL_DIR
    return Path(chosen).expanduser()


def _env_id_from_d4rl_path(path: Path) -> str | None:
    match = _D4RL_FILE_RE.match(path.stem)
    return ENV_IDS.get(match["env"]) if match else None


def _not_found(name: str, env: str, kind: str, looked: list[str]) -> DatasetNotFoundError:
    hosted = hosted_minari_id(env, kind)
    ways = []
    if hosted:
        ways.append(
            f"download Minari's hosted port '{hosted}' with download=True "
            f"(--config.download=True)"
        )
    else:
        ways.append(f"Minari hosts no Gymnasium-v5 port of '{kind}' data")
    ways += [
        f"pass a D4RL HDF5 file: 'hdf5:/path/to/{d4rl_filename(env, kind)}', or put it "
        f"in d4rl_dir / $D4RL_DATASET_DIR (default {_DEFAULT_D4RL_DIR})",
        "generate it locally with SAC, as D4RL did: "
        f"`python -m experiments.make_dataset --env={env} --kind={kind}` "
        "(--scale=0.1 for a smaller CPU-sized set; see docs/datasets.md)",
    ]
    return DatasetNotFoundError(
        f"No dataset found for '{name}' ({ENV_IDS[env]}, kind '{kind}'). Looked at:\n"
        + "".join(f"  - {place}\n" for place in looked)
        + "Ways to get it:\n"
        + "".join(f"  - {way}\n" for way in ways)
    )


def _resolve_task(
    name: str, d4rl_path: str | os.PathLike | None, download: bool
) -> tuple[Transitions, DatasetInfo]:
    env, kind = parse_task_name(name)
    env_id, store = ENV_IDS[env], minari_store_path()
    looked = []

    own_id = local_minari_id(env, kind)
    if minari_dataset_exists(own_id):
        logger.info("Dataset %s: project-generated Minari dataset %s", name, own_id)
        return load_minari(own_id)
    looked.append(f"Minari dataset '{own_id}' in the local store {store}: not found")

    hdf5_path = d4rl_search_dir(d4rl_path) / d4rl_filename(env, kind)
    if hdf5_path.is_file():
        logger.info("Dataset %s: D4RL HDF5 file %s", name, hdf5_path)
        return load_d4rl_hdf5(hdf5_path, env_id=env_id)
    looked.append(f"D4RL HDF5 file {hdf5_path}: not found")

    hosted = hosted_minari_id(env, kind)
    if hosted and (download or minari_dataset_exists(hosted)):
        logger.info("Dataset %s: Minari-hosted dataset %s (download=%s)", name, hosted, download)
        return load_minari(hosted, download=download)
    if hosted:
        looked.append(f"Minari dataset '{hosted}' in the local store {store}: not found")
    raise _not_found(name, env, kind, looked)


def resolve_dataset(
    name: str,
    *,
    d4rl_dir: str | os.PathLike | None = None,
    download: bool = False,
) -> tuple[Transitions, DatasetInfo]:
    """Finds, loads and validates a dataset by name.

    Args:
        name: a paper task name (``hopper-mixed``), ``minari:<dataset id>``, or
            ``hdf5:<path to a D4RL file>``.
        d4rl_dir: where D4RL HDF5 files live (default ``$D4RL_DATASET_DIR``,
            else ``~/.d4rl/datasets``).
        download: allow fetching Minari-hosted datasets (medium/expert only).

    Returns:
        ``(transitions, info)`` with ``info.name == name``.

    Raises:
        DatasetNotFoundError: nowhere to be found; the message lists each place
            looked at and how to get the dataset.
        ValueError: a malformed name, unknown env or kind.
        DatasetError: the dataset fails validation.
    """
    scheme, sep, rest = name.partition(":")
    if sep and scheme == "minari":
        data, info = load_minari(rest, download=download)
    elif sep and scheme == "hdf5":
        path = Path(rest).expanduser()
        data, info = load_d4rl_hdf5(path, env_id=_env_id_from_d4rl_path(path))
    elif sep:
        raise ValueError(
            f"Unknown dataset scheme '{scheme}:' in '{name}'; use 'minari:' or 'hdf5:'."
        )
    else:
        data, info = _resolve_task(name, d4rl_dir, download)
    info = dataclasses.replace(info, name=name)
    label = name if name == info.source else f"{name} ({info.source})"
    validate_transitions(data, name=label, env_id=info.env_id)
    return data, info
