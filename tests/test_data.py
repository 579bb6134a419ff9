"""Tests for dataset loading, validation, the task registry and Minari I/O.

All data is made here (no downloads): a hand-built D4RL HDF5 file whose exact
transitions are known, hand-built Minari episodes, and a tiny Hopper-v5 Minari
dataset from the recorder (its own tests are in tests/test_make_dataset.py).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import gymnasium as gym
import h5py
import minari
import numpy as np
import pytest
from minari.data_collector import EpisodeBuffer

from mb2po_jax.data import (
    DatasetError,
    DatasetNotFoundError,
    d4rl_filename,
    env_name_from_id,
    fingerprint,
    load_d4rl_hdf5,
    load_minari,
    parse_task_name,
    read_episode_buffers,
    resolve_dataset,
    validate_transitions,
    write_minari_dataset,
)
from mb2po_jax.datagen import make_minari_dataset
from mb2po_jax.transitions import Transitions

OBS_DIM, ACT_DIM = 3, 2
# Three episodes in one file: rows 0-2 end in a terminal, rows 3-6 end in a
# timeout, rows 7-8 are cut off by the end of the file.
TERMINALS = np.array([0, 0, 1, 0, 0, 0, 0, 0, 0], dtype=bool)
TIMEOUTS = np.array([0, 0, 0, 0, 0, 0, 1, 0, 0], dtype=bool)
NUM_ROWS = len(TERMINALS)


def _d4rl_arrays() -> dict[str, np.ndarray]:
    rows = np.arange(NUM_ROWS, dtype=np.float32)
    return {
        # Row i holds [i, 10 + i, 20 + i]: every value identifies its row.
        "observations": rows[:, None] + np.array([0.0, 10.0, 20.0], dtype=np.float32),
        "actions": np.stack([rows / 10, -rows / 10], axis=1).astype(np.float32),
        "rewards": rows * 100,
        "terminals": TERMINALS,
        "timeouts": TIMEOUTS,
    }


def _write_hdf5(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as file:
        for key, value in arrays.items():
            file.create_dataset(key, data=value)
    return path


@pytest.fixture
def minari_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    store = tmp_path / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(store))
    monkeypatch.delenv("D4RL_DATASET_DIR", raising=False)
    return store


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(minari.storage.hosting, "download_dataset", refuse)


def _valid_transitions(n: int = 5) -> Transitions:
    rng = np.random.default_rng(0)
    return Transitions(
        observations=rng.standard_normal((n, OBS_DIM)).astype(np.float32),
        actions=rng.uniform(-1, 1, (n, ACT_DIM)).astype(np.float32),
        rewards=rng.standard_normal(n).astype(np.float32),
        next_observations=rng.standard_normal((n, OBS_DIM)).astype(np.float32),
        terminals=np.zeros(n, np.float32),
        timeouts=np.zeros(n, np.float32),
    )


# ------------------------------------------------------------------ D4RL HDF5


def test_d4rl_without_next_observations_stays_within_episodes(tmp_path: Path) -> None:
    path = _write_hdf5(tmp_path / "data.hdf5", _d4rl_arrays())
    data, info = load_d4rl_hdf5(path)
    obs = _d4rl_arrays()["observations"]

    # Kept: every row except the timeout row 6 and the file's last row 8.
    kept = np.array([0, 1, 2, 3, 4, 5, 7])
    # s' is the next row, except at the terminal row 2 where it is s itself.
    next_rows = np.array([1, 2, 2, 4, 5, 6, 8])
    np.testing.assert_array_equal(data.observations, obs[kept])
    np.testing.assert_array_equal(data.next_observations, obs[next_rows])
    np.testing.assert_array_equal(data.rewards, kept * 100.0)
    np.testing.assert_array_equal(data.terminals, [0, 0, 1, 0, 0, 0, 0])
    np.testing.assert_array_equal(data.timeouts, np.zeros(7))
    for field in dataclasses.fields(data):
        assert getattr(data, field.name).dtype == np.float32
    assert info.num_transitions == 7
    assert info.num_episodes == 3
    assert info.source == f"hdf5:{path}"
    assert (info.obs_dim, info.act_dim) == (OBS_DIM, ACT_DIM)


def test_d4rl_no_transition_crosses_an_episode(tmp_path: Path) -> None:
    data, _ = load_d4rl_hdf5(_write_hdf5(tmp_path / "data.hdf5", _d4rl_arrays()))
    episode_of_row = np.cumsum(np.r_[0, (TERMINALS | TIMEOUTS)[:-1]])
    s_rows = data.observations[:, 0].astype(int)
    s_next_rows = data.next_observations[:, 0].astype(int)
    np.testing.assert_array_equal(episode_of_row[s_rows], episode_of_row[s_next_rows])


def test_d4rl_uses_stored_next_observations(tmp_path: Path) -> None:
    arrays = _d4rl_arrays()
    arrays["next_observations"] = arrays["observations"] + 0.5
    data, info = load_d4rl_hdf5(_write_hdf5(tmp_path / "data.hdf5", arrays))

    assert len(data) == NUM_ROWS  # nothing needs to be dropped
    np.testing.assert_array_equal(data.next_observations, arrays["observations"] + 0.5)
    # Terminal (row 2) and timeout (row 6) stay separate flags.
    np.testing.assert_array_equal(data.terminals, TERMINALS.astype(np.float32))
    np.testing.assert_array_equal(data.timeouts, TIMEOUTS.astype(np.float32))
    assert not np.any((data.terminals == 1) & (data.timeouts == 1))
    assert info.num_episodes == 3


def test_dynamics_model_leaves_out_rows_whose_next_state_was_never_recorded(
        tmp_path: Path) -> None:
    """Without stored s', a terminal row's s' = s is a placeholder: the
    critic may keep it (it never bootstraps), the dynamics model must not
    learn "zero change" from it. With stored s' every row is a transition."""
    from mb2po_jax.pipeline.dataset import PreparedData
    from mb2po_jax.pipeline.dynamics_phase import dynamics_rows
    from mb2po_jax.model.dynamics import make_dynamics_data

    derived, derived_info = load_d4rl_hdf5(_write_hdf5(tmp_path / "a.hdf5", _d4rl_arrays()))
    arrays = _d4rl_arrays()
    arrays["next_observations"] = arrays["observations"] + 0.5
    stored, stored_info = load_d4rl_hdf5(_write_hdf5(tmp_path / "b.hdf5", arrays))
    assert derived_info.next_observations_derived and not stored_info.next_observations_derived

    rows = dynamics_rows(PreparedData(derived, derived_info, "Hopper-v5", None), derived)
    # Kept rows 0, 1, 3, 4, 5, 7 (row 2 is the terminal): each s' is its successor.
    np.testing.assert_array_equal(rows.observations[:, 0], [0, 1, 3, 4, 5, 7])
    targets = np.asarray(make_dynamics_data(rows).targets)
    np.testing.assert_array_equal(targets[:, :OBS_DIM], np.ones((6, OBS_DIM)))
    assert len(dynamics_rows(PreparedData(stored, stored_info, "Hopper-v5", None),
                             stored)) == NUM_ROWS


def test_d4rl_missing_timeouts_means_zeros(tmp_path: Path) -> None:
    arrays = _d4rl_arrays()
    del arrays["timeouts"]
    arrays["next_observations"] = arrays["observations"] + 0.5
    data, _ = load_d4rl_hdf5(_write_hdf5(tmp_path / "old.hdf5", arrays))
    np.testing.assert_array_equal(data.timeouts, np.zeros(NUM_ROWS))
    np.testing.assert_array_equal(data.terminals, TERMINALS.astype(np.float32))


def test_d4rl_missing_key_and_length_mismatch_are_reported(tmp_path: Path) -> None:
    arrays = _d4rl_arrays()
    del arrays["actions"]
    with pytest.raises(DatasetError, match="actions"):
        load_d4rl_hdf5(_write_hdf5(tmp_path / "a.hdf5", arrays))
    arrays = _d4rl_arrays()
    arrays["rewards"] = arrays["rewards"][:-1]
    with pytest.raises(DatasetError, match="rewards"):
        load_d4rl_hdf5(_write_hdf5(tmp_path / "b.hdf5", arrays))


# --------------------------------------------------------------------- Minari


def _episodes(lengths: list[int], ends: str) -> list[EpisodeBuffer]:
    """Hopper-shaped episodes whose values identify (episode, step); each ends
    in a termination ('t') or a truncation ('x')."""
    out = []
    for i, (steps, end) in enumerate(zip(lengths, ends)):
        flags = np.zeros(steps, bool)
        observations = (100 * i + np.arange(steps + 1, dtype=np.float64))[:, None] * np.ones(11)
        out.append(EpisodeBuffer(
            id=i, seed=7 if i == 0 else None, observations=observations,
            actions=np.full((steps, 3), 0.1 * i, np.float32),
            rewards=np.arange(steps, dtype=np.float64) + i,
            terminations=np.r_[flags[:-1], end == "t"], truncations=np.r_[flags[:-1], end == "x"],
        ))
    return out


def test_minari_writer_and_readers_roundtrip(minari_store: Path) -> None:
    episodes = _episodes([3, 5, 2], "txt")
    path = write_minari_dataset("tests/io-v0", episodes, "Hopper-v5", algorithm_name="test",
                                description="test", max_episode_steps=25, ref_max_score=9.0)
    assert path == minari_store / "tests/io-v0"
    data, info = load_minari("tests/io-v0")
    assert len(data) == 10 and info.num_episodes == 3 and info.env_id == "Hopper-v5"
    assert (info.ref_min_score, info.ref_max_score) == (None, 9.0)  # only what was given
    np.testing.assert_array_equal(data.terminals, [0, 0, 1, 0, 0, 0, 0, 0, 0, 1])
    np.testing.assert_array_equal(data.timeouts, [0, 0, 0, 0, 0, 0, 0, 1, 0, 0])
    np.testing.assert_array_equal(data.next_observations[:3, 0], [1, 2, 3])
    metadata = minari.load_dataset("tests/io-v0").storage.metadata
    assert '"max_episode_steps": 25' in metadata["env_spec"]  # the collection limit
    assert '"max_episode_steps": 1000' in metadata["eval_env_spec"]  # the env's own

    back = read_episode_buffers("tests/io-v0", start_id=4)
    assert [e.id for e in back] == [4, 5, 6]
    for a, b in zip(episodes, back):
        for field in ("observations", "actions", "rewards", "terminations", "truncations"):
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field), field)


def test_minari_writer_refuses_to_overwrite(minari_store: Path) -> None:
    write_minari_dataset("tests/io-v0", _episodes([2], "t"), "Hopper-v5",
                         algorithm_name="test", description="test")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_minari_dataset("tests/io-v0", _episodes([4], "t"), "Hopper-v5",
                             algorithm_name="test", description="test")
    write_minari_dataset("tests/io-v0", _episodes([4], "t"), "Hopper-v5",
                         algorithm_name="test", description="test", overwrite=True)
    assert len(load_minari("tests/io-v0")[0]) == 4


@pytest.mark.filterwarnings("ignore:.*(eval_env|env_spec).*:UserWarning")
def test_minari_rejects_dict_observations(minari_store: Path) -> None:
    space = gym.spaces.Dict({"x": gym.spaces.Box(-1, 1, (2,))})
    buffer = EpisodeBuffer(
        observations={"x": np.zeros((3, 2))}, actions=np.zeros((2, 1)),
        rewards=np.zeros(2), terminations=np.array([0, 1], bool), truncations=np.zeros(2, bool),
    )
    minari.create_dataset_from_buffers(
        "tests/dict-v0", [buffer], observation_space=space,
        action_space=gym.spaces.Box(-1, 1, (1,)), algorithm_name="test",
        author="test", author_email="test", code_permalink="test", description="test",
    )
    with pytest.raises(DatasetError, match="observation space"):
        load_minari("tests/dict-v0")


def test_minari_missing_locally_does_not_download(minari_store: Path, no_network: None) -> None:
    with pytest.raises(DatasetNotFoundError, match="download=True"):
        load_minari("mujoco/hopper/medium-v0")


# ----------------------------------------------------------------- validation


def test_valid_transitions_pass() -> None:
    validate_transitions(_valid_transitions(), obs_dim=OBS_DIM, act_dim=ACT_DIM)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("observations", np.nan, r"'observations'.*NaN: 1.*1 rows, first at row 2"),
        ("next_observations", np.inf, r"'next_observations'.*inf: 1.*first at row 2"),
        ("rewards", np.nan, r"'rewards'.*NaN"),
        ("actions", 1.5, r"'actions'.*1\.5.*normalised to \[-1, 1\]"),
        ("terminals", 0.5, r"'terminals'.*0/1"),
        ("timeouts", 2.0, r"'timeouts'.*0/1"),
    ],
)
def test_bad_values_are_rejected(field: str, value: float, message: str) -> None:
    data = _valid_transitions()
    array = np.array(getattr(data, field))
    array[(2, 0) if array.ndim == 2 else 2] = value
    with pytest.raises(DatasetError, match=message):
        validate_transitions(data.replace(**{field: array}))


def test_empty_dataset_is_rejected() -> None:
    data = _valid_transitions(0)
    with pytest.raises(DatasetError, match="empty"):
        validate_transitions(data)


def test_dim_mismatch_names_both_sizes_and_env() -> None:
    with pytest.raises(DatasetError, match=r"'observations' have dim 3 .*Hopper-v5 has obs_dim 11"):
        validate_transitions(_valid_transitions(), obs_dim=11, env_id="Hopper-v5")
    with pytest.raises(DatasetError, match=r"'actions' have dim 2 .*act_dim 3"):
        validate_transitions(_valid_transitions(), act_dim=3)


def test_mismatched_lengths_and_rank_are_rejected() -> None:
    data = _valid_transitions()
    with pytest.raises(DatasetError, match=r"'rewards' has 4 rows"):
        validate_transitions(data.replace(rewards=data.rewards[:4]))
    with pytest.raises(DatasetError, match=r"'rewards' has shape \(5, 2\)"):
        validate_transitions(data.replace(rewards=np.zeros((5, 2), np.float32)))


# ------------------------------------------------------------------- registry


def test_task_names() -> None:
    assert parse_task_name("hopper-mixed") == ("hopper", "mixed")
    assert parse_task_name("halfcheetah-medium-expert") == ("halfcheetah", "medium-expert")
    assert parse_task_name("walker2d-medium-replay") == ("walker2d", "mixed")
    assert d4rl_filename("hopper", "mixed") == "hopper_medium_replay-v2.hdf5"
    assert d4rl_filename("halfcheetah", "medium-expert") == "halfcheetah_medium_expert-v2.hdf5"
    assert d4rl_filename("walker2d", "random") == "walker2d_random-v2.hdf5"
    assert env_name_from_id("Hopper-v5") == "hopper"
    assert env_name_from_id("HalfCheetah-v5") == "halfcheetah"


def test_unknown_env_or_kind_lists_choices() -> None:
    with pytest.raises(ValueError, match=r"'ant'.*halfcheetah.*hopper.*walker2d"):
        parse_task_name("ant-medium")
    with pytest.raises(ValueError, match=r"'bogus'.*random.*medium.*mixed.*expert"):
        resolve_dataset("hopper-bogus")
    with pytest.raises(ValueError, match="minari:"):
        resolve_dataset("s3:bucket/file")


def test_not_found_is_fast_and_lists_every_place(
    minari_store: Path, tmp_path: Path, no_network: None
) -> None:
    d4rl_dir = tmp_path / "d4rl"
    start = time.perf_counter()
    with pytest.raises(DatasetNotFoundError) as error:
        resolve_dataset("hopper-medium", d4rl_dir=d4rl_dir)
    assert time.perf_counter() - start < 1.0
    message = str(error.value)
    for expected in (
        f"'mb2po/hopper/medium-v0' in the local store {minari_store}",
        str(d4rl_dir / "hopper_medium-v2.hdf5"),
        f"'mujoco/hopper/medium-v0' in the local store {minari_store}",
        "download=True",
        "--config.download=True",
        "python -m experiments.make_dataset --env=hopper --kind=medium",
    ):
        assert expected in message

    # No hosted port of replay data: the message says so and names no mujoco/ id.
    with pytest.raises(DatasetNotFoundError) as error:
        resolve_dataset("walker2d-mixed", d4rl_dir=d4rl_dir)
    assert str(d4rl_dir / "walker2d_medium_replay-v2.hdf5") in str(error.value)
    assert "mujoco/walker2d" not in str(error.value)


def test_d4rl_file_is_found_by_task_name(
    minari_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = _write_hdf5(tmp_path / "d4rl" / "hopper_medium_replay-v2.hdf5", _d4rl_arrays())
    with caplog.at_level(logging.INFO, logger="mb2po_jax.data"):
        data, info = resolve_dataset("hopper-mixed", d4rl_dir=tmp_path / "d4rl")
    assert len(data) == 7
    assert (info.name, info.env_id, info.source) == ("hopper-mixed", "Hopper-v5", f"hdf5:{path}")
    assert str(path) in caplog.text

    # The same file through $D4RL_DATASET_DIR and through an explicit hdf5: name.
    monkeypatch.setenv("D4RL_DATASET_DIR", str(tmp_path / "d4rl"))
    _, via_env = resolve_dataset("hopper-mixed")
    _, via_path = resolve_dataset(f"hdf5:{path}")
    assert via_env.fingerprint == via_path.fingerprint == info.fingerprint
    assert via_path.env_id == "Hopper-v5"


def test_local_minari_dataset_takes_precedence(minari_store: Path, tmp_path: Path) -> None:
    _write_hdf5(tmp_path / "d4rl" / "hopper_random-v2.hdf5", _d4rl_arrays())
    make_minari_dataset("mb2po/hopper/random-v0", "Hopper-v5", 40, max_episode_steps=20)
    data, info = resolve_dataset("hopper-random", d4rl_dir=tmp_path / "d4rl")
    assert len(data) == 40 and info.source.startswith("minari:mb2po/hopper/random-v0")
    _, by_id = resolve_dataset("minari:mb2po/hopper/random-v0")
    assert by_id.fingerprint == info.fingerprint


def test_resolve_validates(minari_store: Path, tmp_path: Path) -> None:
    arrays = _d4rl_arrays()
    # Up to +-0.7 * 10 = +-7 in the kept rows (the last row is dropped).
    arrays["actions"] = arrays["actions"] * 10
    path = _write_hdf5(tmp_path / "hopper_expert-v2.hdf5", arrays)
    with pytest.raises(DatasetError, match=r"'actions' spans \[-7, 7\]"):
        resolve_dataset(f"hdf5:{path}")


# ---------------------------------------------------------------- fingerprint


def test_fingerprint_tracks_content(tmp_path: Path) -> None:
    first, info = load_d4rl_hdf5(_write_hdf5(tmp_path / "a.hdf5", _d4rl_arrays()))
    again, info_again = load_d4rl_hdf5(_write_hdf5(tmp_path / "b.hdf5", _d4rl_arrays()))
    assert info.fingerprint == info_again.fingerprint == fingerprint(again)
    assert len(info.fingerprint) == 64

    rewards = np.array(first.rewards)
    rewards[3] += 1e-3
    assert fingerprint(first.replace(rewards=rewards)) != info.fingerprint
    flags = np.array(first.timeouts)
    flags[0] = 1.0
    assert fingerprint(first.replace(timeouts=flags)) != info.fingerprint
