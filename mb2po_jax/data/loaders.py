"""Reads offline datasets (Minari, D4RL HDF5) into one :class:`Transitions`.

Both formats store trajectories, not transitions, and differ in how episode
ends are recorded. The loaders turn them into (s, a, r, s', terminal, timeout)
rows without ever pairing the last state of one episode with the first state
of the next, and keep true terminals (no bootstrapping) apart from time-limit
truncations (bootstrapping continues), because conflating the two biases the
critic.

Every loader also returns a :class:`DatasetInfo` saying exactly what was read,
with a content fingerprint so a resumed run can refuse a different dataset.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import gymnasium as gym
import h5py
import minari
import numpy as np
from minari.storage.datasets_root_dir import get_dataset_path

from mb2po_jax.transitions import Transitions
from mb2po_jax.data.validation import DatasetError, check_same_length

logger = logging.getLogger(__name__)

_FIELDS = ("observations", "actions", "rewards", "next_observations", "terminals", "timeouts")
_D4RL_REQUIRED = ("observations", "actions", "rewards", "terminals")


class DatasetNotFoundError(FileNotFoundError):
    """The requested dataset is in none of the places looked at."""


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What was loaded, from where, and a fingerprint of its contents.

    Attributes:
        name: the name the dataset was asked for by (registry name or id).
        source: human-readable origin, e.g. ``hdf5:/data/hopper_medium-v2.hdf5``.
        env_id: gymnasium id to evaluate in (e.g. ``Hopper-v5``), if known.
        num_transitions: number of rows in the returned transitions.
        num_episodes: number of episodes the transitions came from, if known.
        obs_dim: observation size.
        act_dim: action size.
        ref_min_score: return of a random policy, for normalised scores.
        ref_max_score: return of an expert policy, for normalised scores.
        fingerprint: sha256 hex of the transitions (see :func:`fingerprint`).
        next_observations_derived: True when the file held no
            ``next_observations`` and s' was built from the next row (old
            D4RL files): its terminal rows then hold the placeholder s' = s,
            harmless to the critic (terminals never bootstrap) but not a
            transition a dynamics model may learn from.
    """

    name: str
    source: str
    env_id: str | None
    num_transitions: int
    num_episodes: int | None
    obs_dim: int
    act_dim: int
    ref_min_score: float | None
    ref_max_score: float | None
    fingerprint: str
    next_observations_derived: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def fingerprint(data: Transitions) -> str:
    """Returns a sha256 hex digest over every field's name, dtype, shape and bytes.

    Deterministic across processes and machines (no pickling, no hash seeds); a
    single pass over the raw buffers, so ~1M transitions hash in well under 1 s.
    """
    digest = hashlib.sha256()
    for field in _FIELDS:
        array = np.ascontiguousarray(np.asarray(getattr(data, field)))
        digest.update(f"{field}|{array.dtype.str}|{array.shape};".encode())
        digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()


def _make_transitions(**arrays: np.ndarray) -> Transitions:
    """Casts to the library's on-disk convention: float32 values and 0/1 flags."""
    return Transitions(**{k: np.asarray(v, dtype=np.float32) for k, v in arrays.items()})


def _info(
    data: Transitions, *, name: str, source: str, env_id: str | None,
    num_episodes: int | None, ref_min_score: float | None = None,
    ref_max_score: float | None = None, next_observations_derived: bool = False,
) -> DatasetInfo:
    return DatasetInfo(
        name=name,
        source=source,
        env_id=env_id,
        num_transitions=len(data),
        num_episodes=num_episodes,
        obs_dim=data.obs_dim,
        act_dim=data.act_dim,
        ref_min_score=None if ref_min_score is None else float(ref_min_score),
        ref_max_score=None if ref_max_score is None else float(ref_max_score),
        fingerprint=fingerprint(data),
        next_observations_derived=next_observations_derived,
    )


# --------------------------------------------------------------------- Minari


def minari_store_path() -> Path:
    """The local Minari store (``$MINARI_DATASETS_PATH`` or ``~/.minari/datasets``)."""
    return get_dataset_path()


def minari_dataset_exists(dataset_id: str) -> bool:
    """Whether ``dataset_id`` is in the local store; never touches the network."""
    # Same test minari.load_dataset uses before deciding to download.
    return get_dataset_path(dataset_id).joinpath("data").exists()


def _check_flat_box(space: gym.Space, what: str, dataset_id: str) -> None:
    if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
        raise DatasetError(
            f"minari:{dataset_id}: the {what} space is {space}, but only flat Box "
            f"(vector) {what}s are supported; flatten it (e.g. with "
            f"gymnasium.wrappers.FlattenObservation) when recording the dataset."
        )


def _minari_env_id(dataset: minari.MinariDataset) -> str | None:
    """The evaluation env id, falling back to the env the data was collected in."""
    metadata = dataset.storage.metadata
    for key in ("eval_env_spec", "env_spec"):
        spec_json = metadata.get(key)
        if spec_json:
            # Only the id is needed; json avoids EnvSpec's cross-version quirks.
            return json.loads(spec_json)["id"]
    return None


def _minari_arrays(dataset: minari.MinariDataset, dataset_id: str) -> dict[str, np.ndarray]:
    """Concatenates per-episode transitions into preallocated arrays."""
    total = dataset.total_steps
    obs_dim = dataset.observation_space.shape[0]
    act_dim = dataset.action_space.shape[0]
    out = {
        "observations": np.empty((total, obs_dim), np.float32),
        "actions": np.empty((total, act_dim), np.float32),
        "rewards": np.empty((total,), np.float32),
        "next_observations": np.empty((total, obs_dim), np.float32),
        "terminals": np.empty((total,), np.float32),
        "timeouts": np.empty((total,), np.float32),
    }
    start = 0
    for episode in dataset.iterate_episodes():
        steps = len(episode.rewards)
        if episode.observations.shape[0] != steps + 1:
            raise DatasetError(
                f"minari:{dataset_id}: episode {episode.id} has "
                f"{episode.observations.shape[0]} observations for {steps} steps; "
                f"Minari episodes must hold T+1 observations for T steps."
            )
        if start + steps > total:
            raise DatasetError(
                f"minari:{dataset_id}: episodes hold more steps than the metadata's "
                f"total_steps={total}; the dataset metadata is stale or corrupt."
            )
        rows = slice(start, start + steps)
        # Within an episode s' is simply the next observation; the final
        # observation only ever appears as s', so nothing crosses episodes.
        out["observations"][rows] = episode.observations[:-1]
        out["next_observations"][rows] = episode.observations[1:]
        out["actions"][rows] = episode.actions
        out["rewards"][rows] = episode.rewards
        out["terminals"][rows] = episode.terminations
        out["timeouts"][rows] = episode.truncations
        start += steps
    if start != total:
        raise DatasetError(
            f"minari:{dataset_id}: episodes hold {start} steps but the metadata says "
            f"total_steps={total}; the dataset metadata is stale or corrupt."
        )
    return out


def load_minari(dataset_id: str, *, download: bool = False) -> tuple[Transitions, DatasetInfo]:
    """Loads a Minari dataset from the local store as transitions.

    Args:
        dataset_id: e.g. ``mujoco/hopper/medium-v0``.
        download: fetch it from Minari's remote server if it is not local.
            Without it no network access is attempted.

    Returns:
        ``(transitions, info)``; ``info.env_id`` comes from the dataset's
        evaluation env spec (else the collection env spec).

    Raises:
        DatasetNotFoundError: not in the local store and ``download`` is False.
        DatasetError: non-Box or non-flat spaces, or inconsistent episodes.
    """
    store = minari_store_path()
    if not download and not minari_dataset_exists(dataset_id):
        raise DatasetNotFoundError(
            f"Minari dataset '{dataset_id}' is not in the local store {store} "
            f"(set MINARI_DATASETS_PATH to use another store). Pass download=True "
            f"to fetch it from the Minari server."
        )
    dataset = minari.load_dataset(dataset_id, download=download)
    _check_flat_box(dataset.observation_space, "observation", dataset_id)
    _check_flat_box(dataset.action_space, "action", dataset_id)
    data = _make_transitions(**_minari_arrays(dataset, dataset_id))
    metadata = dataset.storage.metadata
    info = _info(
        data,
        name=dataset_id,
        source=f"minari:{dataset_id} (local store {store})",
        env_id=_minari_env_id(dataset),
        num_episodes=dataset.total_episodes,
        ref_min_score=metadata.get("ref_min_score"),
        ref_max_score=metadata.get("ref_max_score"),
    )
    return data, info


# ------------------------------------------------------------------ D4RL HDF5


def _as_vector(array: np.ndarray) -> np.ndarray:
    """Some D4RL writers store scalars as [N, 1]; the library wants [N]."""
    return array.reshape(-1) if array.ndim == 2 and array.shape[1] == 1 else array


def _read_d4rl(path: Path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as file:
        missing = [key for key in _D4RL_REQUIRED if key not in file]
        if missing:
            raise DatasetError(
                f"hdf5:{path}: missing dataset(s) {missing} (found {sorted(file.keys())}); "
                f"a D4RL file needs {list(_D4RL_REQUIRED)} and optionally "
                f"'timeouts' and 'next_observations'."
            )
        keys = [*_D4RL_REQUIRED, "timeouts", "next_observations"]
        arrays = {key: file[key][()] for key in keys if key in file}
    for key in ("rewards", "terminals", "timeouts"):
        if key in arrays:
            arrays[key] = _as_vector(arrays[key])
    if "timeouts" not in arrays:
        # Pre-v1 D4RL files have no timeouts; time-limit ends are then invisible.
        logger.warning("%s has no 'timeouts'; treating every timeout flag as 0.", path)
        arrays["timeouts"] = np.zeros(len(arrays["rewards"]), dtype=bool)
    return arrays


def _derive_next_observations(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Builds s' = obs[i + 1] within episodes, dropping rows whose s' is unknown."""
    obs = arrays["observations"]
    terminals = arrays["terminals"].astype(bool)
    timeouts = arrays["timeouts"].astype(bool)
    num = len(obs)
    next_obs = np.empty_like(obs)
    next_obs[:-1] = obs[1:]
    # After a terminal the next row is a reset; s' is unknowable but unused
    # by the critic (terminal rows do not bootstrap), so s' = s keeps the row.
    # The dynamics model leaves these rows out (``next_observations_derived``).
    next_obs[terminals] = obs[terminals]
    # After a timeout (or at the file's end) s' is unknown *and* bootstraps,
    # so those rows must go rather than borrow the next episode's first state.
    last_row = np.arange(num) == num - 1
    keep = terminals | ~(timeouts | last_row)
    derived = {key: value[keep] for key, value in arrays.items()}
    derived["next_observations"] = next_obs[keep]
    return derived


def _count_episodes(terminals: np.ndarray, timeouts: np.ndarray) -> int:
    ends = terminals.astype(bool) | timeouts.astype(bool)
    # A file that stops mid-episode still holds that (unfinished) episode.
    return int(ends.sum()) + int(len(ends) > 0 and not ends[-1])


def load_d4rl_hdf5(
    path: str | os.PathLike, *, env_id: str | None = None, name: str | None = None
) -> tuple[Transitions, DatasetInfo]:
    """Loads a D4RL-format HDF5 file as transitions.

    Stored ``next_observations`` are used as they are. Without them, s' is the
    next row within the same episode: rows followed by a new episode (a
    timeout, or the file's last row) are dropped, since their true s' was never
    recorded and they would bootstrap from it. Terminal rows are kept with
    ``s' = s`` (a placeholder: the next row is a reset and terminals never
    bootstrap, so s' is not used by the critic; the dynamics model is not
    trained on them, see ``DatasetInfo.next_observations_derived``). A file
    without ``timeouts`` (old D4RL) gets all-zero timeouts. Terminal and
    timeout flags are never merged.

    Args:
        path: the ``.hdf5`` file.
        env_id: gymnasium id to evaluate in, recorded in the info.
        name: name to record in the info (defaults to the file name).

    Returns:
        ``(transitions, info)``.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise DatasetNotFoundError(f"D4RL HDF5 file {path} does not exist.")
    arrays = _read_d4rl(path)
    check_same_length(arrays, f"hdf5:{path}")
    num_episodes = _count_episodes(arrays["terminals"], arrays["timeouts"])
    derived = "next_observations" not in arrays
    if derived:
        arrays = _derive_next_observations(arrays)
    data = _make_transitions(**arrays)
    info = _info(
        data,
        name=name or path.stem,
        source=f"hdf5:{path}",
        env_id=env_id,
        num_episodes=num_episodes,
        next_observations_derived=derived,
    )
    return data, info
