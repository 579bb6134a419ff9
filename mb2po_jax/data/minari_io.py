"""Writes episodes as a local Minari dataset, and reads them back as episodes.

The one Minari writer of the project: the small recorder
(:func:`mb2po_jax.datagen.make_minari_dataset`) and the SAC dataset kinds
(:func:`mb2po_jax.datagen.make_datasets`) both write through
:func:`write_minari_dataset`, so every locally made dataset follows the same
conventions: :func:`minari.create_dataset_from_buffers` (no per-step
``DataCollector`` bookkeeping), the plain env id as the evaluation env spec
(its own time limit), and reference scores written into the metadata
directly.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import gymnasium as gym
import minari
import numpy as np
from minari.data_collector import EpisodeBuffer
from minari.dataset.minari_dataset import parse_dataset_id
from minari.storage.datasets_root_dir import get_dataset_path


def check_writable(dataset_id: str, overwrite: bool) -> Path:
    """The dataset's directory, after checking that it may be written.

    Called before any data is collected, so that a bad id or an existing
    dataset fails in milliseconds rather than after the collection.

    Raises:
        ValueError: a malformed id (checked here: minari creates the
            directory before it parses the id).
        FileExistsError: the dataset exists and ``overwrite`` is False.
    """
    parse_dataset_id(dataset_id)
    path = get_dataset_path(dataset_id)
    if path.exists() and not overwrite:
        raise FileExistsError(
            f"Minari dataset '{dataset_id}' already exists at {path}; pass "
            f"overwrite=True (--overwrite) to replace it or choose another id/version."
        )
    return path


def write_minari_dataset(
    dataset_id: str,
    episodes: list[EpisodeBuffer],
    env_id: str,
    *,
    algorithm_name: str,
    description: str,
    max_episode_steps: int | None = None,
    ref_min_score: float | None = None,
    ref_max_score: float | None = None,
    overwrite: bool = False,
) -> Path:
    """Writes ``episodes`` to the local Minari store as ``dataset_id``.

    Args:
        episodes: one buffer per episode; an episode of T steps holds T + 1
            observations ``[T + 1, obs_dim]``, actions ``[T, act_dim]``,
            rewards, terminations and truncations ``[T]``.
        env_id: the gymnasium id the data was collected in; it is also the
            evaluation env spec (with its default time limit).
        max_episode_steps: the time limit during collection, recorded in the
            collection env spec (default: the env's).
        ref_min_score, ref_max_score: reference returns to record, each if given.
        overwrite: replace an existing dataset with the same id.

    Returns:
        The dataset's directory.
    """
    path = check_writable(dataset_id, overwrite)
    if path.exists():
        shutil.rmtree(path)
    env = gym.make(env_id, max_episode_steps=max_episode_steps)
    try:
        with warnings.catch_warnings():
            # Provenance fields minari nags about; this is locally generated data.
            warnings.filterwarnings("ignore", message=r"`(author|author_email|code_permalink)`")
            minari.create_dataset_from_buffers(
                dataset_id, episodes, env=env, eval_env=env_id,
                algorithm_name=algorithm_name, description=description,
            )
    finally:
        env.close()
    # Written directly: minari would otherwise estimate a missing ref_min_score
    # by running 100 random episodes whenever ref_max_score is given.
    scores = {key: float(value)
              for key, value in (("ref_min_score", ref_min_score), ("ref_max_score", ref_max_score))
              if value is not None}
    if scores:
        minari.load_dataset(dataset_id).storage.update_metadata(scores)
    return path


def read_episode_buffers(dataset_id: str, start_id: int = 0) -> list[EpisodeBuffer]:
    """A local Minari dataset's episodes as buffers :func:`write_minari_dataset`
    takes back (ids from ``start_id``; rewards float64, flags bool), e.g. to
    concatenate two datasets into a third."""
    dataset = minari.load_dataset(dataset_id)
    out = []
    for i, episode in enumerate(dataset.iterate_episodes()):
        out.append(EpisodeBuffer(
            id=start_id + i, seed=None,
            observations=np.asarray(episode.observations),
            actions=np.asarray(episode.actions),
            rewards=np.asarray(episode.rewards, dtype=np.float64),
            terminations=np.asarray(episode.terminations, dtype=bool),
            truncations=np.asarray(episode.truncations, dtype=bool),
        ))
    return out
