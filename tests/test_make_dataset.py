"""Dataset making (mb2po_jax.datagen) at a tiny scale: every kind from one SAC
run in Hopper-v5, a kind added through the table, and the small recorder.

Each test makes its own data in a temporary Minari store: SAC with 2 x 16
networks for about a thousand env steps, rollouts of a few hundred to a few
thousand steps. The checks are on the machinery (valid Minari datasets the
project's loader reads back, flags, references, cards, reuse, exact resume,
the random policy's statistics), not on the learning: SAC at this scale is
still the random policy, so the medium threshold is set below its score.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import sys
import time
import types
from pathlib import Path

import jax
import minari
import numpy as np
import pytest

from mb2po_jax import datagen, envs
from mb2po_jax.agents.sac import SACConfig
from mb2po_jax.checkpoint import Checkpointer
from mb2po_jax.data import load_minari, read_episode_buffers, resolve_dataset
from mb2po_jax.data.registry import KINDS, local_minari_id
from mb2po_jax.datagen import rollouts

REPO = Path(__file__).resolve().parents[1]
HOPPER_REFS = envs.D4RL_REF_SCORES["hopper"]
OBS_DIM, ACT_DIM = 11, 3


def tiny_config(**overrides) -> datagen.GenerationConfig:
    values = dict(
        env_id="Hopper-v5", seed=0, sac=SACConfig(hidden_dims=(16, 16)), batch_size=32,
        max_env_steps=400, learning_starts=100, update_every=50, eval_every=200,
        eval_episodes=2, medium_target=-100.0, medium_tolerance=200.0, checkpoint_every=200,
        dataset_size=500,
    )
    values.update(overrides)
    return datagen.GenerationConfig(**values)


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(path))
    monkeypatch.delenv("D4RL_DATASET_DIR", raising=False)
    return path


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory):
    """Every kind from one tiny SAC run, in a store shared by this module's tests."""
    root = tmp_path_factory.mktemp("made")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MINARI_DATASETS_PATH", str(root / "minari"))
        results = datagen.make_datasets(tiny_config(), "all", progress=False)
    return root, results


@pytest.fixture
def made_store(made, monkeypatch: pytest.MonkeyPatch) -> Path:
    root, _ = made
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root / "minari"))
    monkeypatch.delenv("D4RL_DATASET_DIR", raising=False)
    return root / "minari"


def test_every_kind_is_a_valid_minari_dataset_the_loader_reads(made, made_store: Path) -> None:
    _, results = made
    assert list(results) == list(KINDS)
    cfg = tiny_config()
    expected_size = {"random": 500, "medium": 500, "expert": 500, "mixed": 200,
                     "medium-expert": 1000}
    for kind, result in results.items():
        assert result.dataset_id == local_minari_id("hopper", kind) and not result.reused
        data, info = resolve_dataset(f"hopper-{kind}")  # registry lookup, validated
        n = expected_size[kind]
        assert len(data) == info.num_transitions == result.card["size"] == n, kind
        assert data.observations.shape == data.next_observations.shape == (n, OBS_DIM)
        assert data.actions.shape == (n, ACT_DIM) and data.rewards.shape == (n,)
        assert (info.ref_min_score, info.ref_max_score) == HOPPER_REFS
        assert info.env_id == "Hopper-v5"
        # Flags: 0/1, never both, exactly one per episode end.
        terminals, timeouts = np.asarray(data.terminals), np.asarray(data.timeouts)
        assert not np.any((terminals == 1) & (timeouts == 1))
        assert terminals.sum() + timeouts.sum() == info.num_episodes == result.card["episodes"]
        assert terminals.sum() == result.card["terminated_episodes"]
        assert terminals[-1] + timeouts[-1] == 1

        dataset = minari.load_dataset(result.dataset_id)
        assert json.loads(dataset.storage.metadata["eval_env_spec"])["id"] == "Hopper-v5"
        assert json.loads(dataset.storage.metadata["eval_env_spec"])["max_episode_steps"] == 1000
        for episode in dataset.iterate_episodes():
            ends = episode.terminations | episode.truncations
            assert ends[-1] and not ends[:-1].any()
            assert episode.observations.shape == (len(episode.rewards) + 1, OBS_DIM)

        card = json.loads((result.path / datagen.CARD_FILE).read_text())
        for key in ("size", "episodes", "return_mean", "return_min", "return_max",
                    "normalized_return_mean", "behaviour_policy", "wall_seconds", "seed",
                    "ref_min_score", "ref_max_score", "env_id", "kind", "created"):
            assert key in card, (kind, key)
        assert card["return_min"] <= card["return_mean"] <= card["return_max"]
        assert card["seed"] == 0 and card["env_id"] == "Hopper-v5"
        assert card["machine"]["cpu_count"] == os.cpu_count(), card["machine"]

    # The medium policy is the first evaluation at or above the band's bottom.
    evals = results["medium"].card["sac_run"]["evals"]
    first = next(e for e in evals if e["normalized_score"] >= cfg.medium_target - cfg.medium_tolerance)
    assert results["medium"].card["behaviour_policy"]["sac_env_steps"] == first["env_steps"] == 200
    # The expert trained for the whole budget and is the best-evaluated actor.
    expert = results["expert"].card["behaviour_policy"]
    assert expert["sac_trained_env_steps"] == cfg.max_env_steps
    assert expert["eval_normalized_score"] == max(e["normalized_score"] for e in evals)


def test_mixed_is_the_replay_buffer_up_to_the_medium_policy(made, made_store: Path) -> None:
    root, results = made
    mixed, _ = load_minari(local_minari_id("hopper", "mixed"))
    workdir = Path(results["mixed"].card["behaviour_workdir"])
    cfg = tiny_config()
    state, meta = datagen.load_run_checkpoint(cfg, workdir)
    n = results["mixed"].card["size"]
    assert meta["medium"]["env_steps"] == n
    buffer = jax.tree.map(lambda x: np.asarray(x)[:n], state.buffer)
    for field in ("observations", "actions", "rewards", "next_observations", "terminals"):
        np.testing.assert_array_equal(getattr(mixed, field), getattr(buffer, field), field)
    # The episode running at the snapshot is cut there: a truncation.
    np.testing.assert_array_equal(mixed.timeouts[:-1], buffer.timeouts[:-1])
    assert mixed.timeouts[-1] == 1 or mixed.terminals[-1] == 1


def test_medium_expert_is_medium_then_expert(made_store: Path) -> None:
    parts = [load_minari(local_minari_id("hopper", k))[0] for k in ("medium", "expert")]
    both, _ = load_minari(local_minari_id("hopper", "medium-expert"))
    for field in ("observations", "actions", "rewards", "terminals", "timeouts"):
        np.testing.assert_array_equal(
            getattr(both, field), np.concatenate([getattr(p, field) for p in parts]), field)


def test_existing_datasets_are_reused_never_silently_overwritten(
        made, made_store: Path, caplog: pytest.LogCaptureFixture) -> None:
    _, first = made
    mtimes = {k: (r.path / datagen.CARD_FILE).stat().st_mtime_ns for k, r in first.items()}
    with caplog.at_level(logging.INFO, logger="mb2po_jax"):
        again = datagen.make_datasets(tiny_config(), ["mixed", "medium"], progress=False)
    assert all(r.reused for r in again.values()) and list(again) == ["medium", "mixed"]
    assert "reusing it" in caplog.text
    assert {k: (r.path / datagen.CARD_FILE).stat().st_mtime_ns for k, r in again.items()} == {
        k: mtimes[k] for k in again}
    # A dataset without its card (an interrupted write) is refused, not reused.
    card = first["random"].path / datagen.CARD_FILE
    saved = card.read_text()
    card.unlink()
    try:
        with pytest.raises(datagen.GenerationError, match="no data_card.json.*--overwrite"):
            datagen.make_datasets(tiny_config(), "random", progress=False)
    finally:
        card.write_text(saved)


def test_experiments_find_the_generated_dataset_by_task_name(
        made_store: Path, caplog: pytest.LogCaptureFixture) -> None:
    from mb2po_jax.pipeline import Settings, get_base_config, prepare_dataset

    config = get_base_config()
    config.dataset = "hopper-mixed"
    with caplog.at_level(logging.INFO):
        data = prepare_dataset(Settings.from_config(config).data)
    assert data.env_id == "Hopper-v5" and data.ref_scores == HOPPER_REFS
    assert "project-generated Minari dataset mb2po/hopper/mixed-v0" in caplog.text


def test_random_data_has_the_statistics_of_the_random_policy(store: Path, tmp_path: Path) -> None:
    cfg = tiny_config(dataset_size=3000)
    workdir = tmp_path / "behaviour"
    result = datagen.make_datasets(cfg, "random", workdir=workdir, progress=False)["random"]
    data, _ = load_minari(result.dataset_id)
    agent, params, meta = datagen.load_behaviour_policy(workdir, "random")
    assert meta["kind"] == "random" and meta["env_steps"] == 0
    # The randomly initialised SAC actor of this seed (not uniform noise) ...
    expected = datagen.initial_actor(cfg)
    jax.tree.map(np.testing.assert_array_equal, params, expected)
    # ... with sampled actions: the standardised pre-tanh actions are N(0, 1).
    mean, log_std = jax.jit(agent.actor.apply)(params, np.asarray(data.observations))
    u = np.arctanh(np.clip(np.asarray(data.actions), -1 + 1e-6, 1 - 1e-6))
    z = (u - np.asarray(mean)) / np.exp(np.asarray(log_std))
    assert abs(z.mean()) < 0.05 and abs(z.std() - 1.0) < 0.05
    # A random policy's returns: normalised score near 0, short episodes.
    card = result.card
    assert -5.0 < card["normalized_return_mean"] < 10.0
    assert card["episode_length_mean"] < 100 and card["terminated_episodes"] > 20
    assert card["behaviour_policy"]["sac_env_steps"] == 0


def test_same_seed_same_dataset_other_seed_differs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    arrays = []
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / name))
        cfg = tiny_config(seed=seed, dataset_size=300)
        datagen.make_datasets(cfg, "random", workdir=tmp_path / f"w{name}", progress=False)
        arrays.append(load_minari(local_minari_id("hopper", "random"))[0])
    jax.tree.map(np.testing.assert_array_equal, arrays[0], arrays[1])
    assert not np.array_equal(arrays[0].actions, arrays[2].actions)


def _final_state(cfg, workdir: Path):
    return datagen.load_run_checkpoint(cfg, workdir)


def test_resume_after_interruption_continues_from_the_saved_step(
        store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    cfg = tiny_config(checkpoint_every=100)
    straight = datagen.train_behaviour(cfg, tmp_path / "straight", "expert", progress=False)
    assert straight.env_steps == cfg.max_env_steps

    # A crash (no chance to save) in chunk 4 (steps 150-200); resumed from the
    # periodic checkpoint at 100, Ctrl-C in the 4th chunk saves at 250. The
    # SAC run steps its env once per chunk through rollouts.run_policy, so
    # failing there fails a chunk before it changes anything.
    workdir, real_run_policy = tmp_path / "interrupted", rollouts.run_policy
    for exc, at in ((RuntimeError("killed"), 4), (KeyboardInterrupt(), 4)):
        calls = []

        def run_policy(*args, exc=exc, at=at, **kwargs):
            calls.append(1)
            if len(calls) == at:
                raise exc
            return real_run_policy(*args, **kwargs)

        monkeypatch.setattr(rollouts, "run_policy", run_policy)
        if isinstance(exc, RuntimeError):
            with pytest.raises(RuntimeError):
                datagen.train_behaviour(cfg, workdir, "expert", progress=False)
            # Only the periodic checkpoint survives a crash.
            with Checkpointer(workdir / "checkpoints") as checkpointer:
                assert checkpointer.latest_step() == 100
        else:
            with caplog.at_level(logging.INFO, logger="mb2po_jax"):
                with pytest.raises(datagen.InterruptedGeneration, match="env step 250"):
                    datagen.train_behaviour(cfg, workdir, "expert", progress=False)
            assert "from env step 100" in caplog.text
            with Checkpointer(workdir / "checkpoints") as checkpointer:
                assert checkpointer.latest_step() == 250
    monkeypatch.setattr(rollouts, "run_policy", real_run_policy)
    with caplog.at_level(logging.INFO, logger="mb2po_jax"):
        resumed = datagen.train_behaviour(cfg, workdir, "expert", progress=False)
    assert "from env step 250" in caplog.text

    # Exact resume: the same replay buffer, agent, evaluations and episodes.
    (a, meta_a), (b, meta_b) = _final_state(cfg, tmp_path / "straight"), _final_state(cfg, workdir)
    assert meta_a["env_steps"] == meta_b["env_steps"] == cfg.max_env_steps
    jax.tree.map(np.testing.assert_array_equal, a, b)
    assert meta_a["evals"] == meta_b["evals"] == resumed.evals == straight.evals
    assert meta_a["episode_log"] == meta_b["episode_log"]
    assert resumed.expert == {**straight.expert, "wall_seconds": resumed.expert["wall_seconds"]}


def test_a_finished_run_is_not_retrained_and_a_different_one_is_refused(
        store: Path, tmp_path: Path) -> None:
    cfg = tiny_config(max_env_steps=400, eval_every=200)
    first = datagen.train_behaviour(cfg, tmp_path / "w", "medium", progress=False)
    assert first.medium["env_steps"] == 200 and first.env_steps == 200
    again = datagen.train_behaviour(cfg, tmp_path / "w", "medium", progress=False)
    assert again.env_steps == 200 and again.wall_seconds == pytest.approx(first.wall_seconds)
    with pytest.raises(datagen.GenerationError, match=r"(?s)batch_size: workdir has 32.*--workdir"):
        datagen.train_behaviour(tiny_config(max_env_steps=400, batch_size=64),
                                   tmp_path / "w", "medium", progress=False)


def test_bad_env_kind_or_option_fails_at_once_with_the_choices(store: Path) -> None:
    with pytest.raises(datagen.GenerationError, match=r"--kind=bogus.*random, medium, mixed, "
                       r"expert, medium-expert, all"):
        datagen.expand_kinds("bogus")
    with pytest.raises(datagen.GenerationError, match=r"--env=hoper.*halfcheetah, hopper, "
                       r"walker2d.*Ant-v5"):
        datagen.resolve_env("hoper")
    with pytest.raises(datagen.GenerationError, match=r"Humanoid-v5: actions span"):
        datagen.env_dims("Humanoid-v5")
    assert datagen.resolve_env("Walker2d-v5") == ("walker2d", "Walker2d-v5")
    assert datagen.resolve_env("Ant-v5") == ("ant", "Ant-v5")
    # Only exact ids match a project env: another version stays itself.
    assert datagen.resolve_env("Hopper-v4") == ("hopper", "Hopper-v4")
    assert datagen.expand_kinds("medium-replay") == ["mixed"]
    assert datagen.expand_kinds(["all"]) == list(KINDS)
    with pytest.raises(datagen.GenerationError, match=r"--eval_every=210.*--update_every=50"):
        datagen.validate_config(tiny_config(eval_every=210))
    with pytest.raises(datagen.GenerationError, match=r"Ant-v5.*--ref_min_score"):
        datagen.validate_request(tiny_config(env_id="Ant-v5"), ["mixed"])
    # The random kind needs no SAC run, so no reference scores either.
    datagen.validate_request(tiny_config(env_id="Ant-v5"), ["random"])

    flags = dict(env="hopper", kind="mixed", seed=0, scale=0.1, size=None, max_env_steps=300_000,
                 learning_starts=5000, update_every=50, batch_size=256, hidden_dims=["256", "256"],
                 eval_every=5000, eval_episodes=10, medium_target=33.0, medium_tolerance=5.0,
                 expert_target=None, expert_policy="best", checkpoint_every=25_000,
                 ref_min_score=None, ref_max_score=None)
    cfg, kinds, env_name = datagen.build_request(types.SimpleNamespace(**flags))
    assert (cfg.env_id, kinds, env_name, cfg.dataset_size) == ("Hopper-v5", ["mixed"], "hopper",
                                                               100_000)
    with pytest.raises(datagen.GenerationError, match="--scale=0"):
        datagen.build_request(types.SimpleNamespace(**{**flags, "scale": 0.0}))
    with pytest.raises(datagen.GenerationError, match="--expert_policy=last.*best, final"):
        datagen.build_request(types.SimpleNamespace(**{**flags, "expert_policy": "last"}))


def test_cli_makes_a_dataset_then_reuses_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            caplog: pytest.LogCaptureFixture) -> None:
    env = {**os.environ, "MINARI_DATASETS_PATH": str(tmp_path / "minari"),
           "JAX_PLATFORMS": "cpu"}
    workdir = tmp_path / "w"
    command = [sys.executable, "-m", "experiments.make_dataset", "--env=hopper", "--kind=random",
               "--size=300", "--hidden_dims=16,16", "--eval_episodes=2", "--noprogress_bar",
               f"--workdir={workdir}"]
    made = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    assert "mb2po/hopper/random-v0" in made.stdout and "made" in made.stdout
    assert (tmp_path / "minari" / "mb2po" / "hopper" / "random-v0" / "data_card.json").is_file()
    # The same request again (in-process, as the CLI builds it) reuses it.
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    cfg = tiny_config(sac=SACConfig(hidden_dims=(16, 16)), batch_size=256, max_env_steps=1_000_000,
                      learning_starts=5000, eval_every=5000, eval_episodes=2, medium_target=33.0,
                      medium_tolerance=5.0, checkpoint_every=25_000, dataset_size=300)
    with caplog.at_level(logging.INFO, logger="mb2po_jax"):
        again = datagen.make_datasets(cfg, "random", workdir=workdir, progress=False)
    assert again["random"].reused and "reusing it" in caplog.text


# ------------------------------------------------------------ the kind table


def test_the_kind_table_holds_the_registry_kinds() -> None:
    assert tuple(datagen.KIND_TABLE) == KINDS  # what is made is what is read by name
    assert [k for k in KINDS if datagen.kinds.needs_sac(k)] == [
        "medium", "mixed", "expert", "medium-expert"]


def test_a_new_kind_is_one_builder_and_one_table_entry(
        store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A kind that exists only as a builder and a table entry: its part is made
    first, then it is written, carded, read back and reused."""

    def terminated_only(ctx: datagen.KindContext) -> datagen.Built:
        (part,) = ctx.parts
        kept = [e for e in read_episode_buffers(ctx.ids[part]) if e.terminations[-1]]
        episodes = [dataclasses.replace(e, id=i) for i, e in enumerate(kept)]
        return datagen.Built(episodes, False, {
            "behaviour_policy": {"description": f"the terminated episodes of {ctx.ids[part]}"},
            "wall_seconds": {"sac": 0.0, "collection": 0.0}})

    monkeypatch.setitem(datagen.KIND_TABLE, "toy",
                        datagen.Kind(terminated_only, parts=("random",)))
    cfg, workdir = tiny_config(dataset_size=300), tmp_path / "w"
    assert datagen.expand_kinds("all")[-1] == "toy"
    made = datagen.make_datasets(cfg, "toy", workdir=workdir, progress=False)
    assert list(made) == ["random", "toy"] and not made["toy"].reused
    assert not (workdir / "checkpoints").exists()  # no part needs SAC: none ran

    random_data, _ = load_minari(local_minari_id("hopper", "random"))
    toy, info = load_minari(local_minari_id("hopper", "toy"))
    ends = np.flatnonzero((random_data.terminals + random_data.timeouts) > 0)
    starts = np.concatenate([[0], ends[:-1] + 1])
    rows = np.concatenate([np.arange(a, b + 1) for a, b in zip(starts, ends)
                           if random_data.terminals[b]])
    for field in ("observations", "actions", "rewards", "next_observations", "terminals",
                  "timeouts"):
        np.testing.assert_array_equal(getattr(toy, field), getattr(random_data, field)[rows])
    card = made["toy"].card
    assert card["kind"] == "toy" and card["d4rl_equivalent"] == "hopper-toy"
    assert card["size"] == len(rows) == info.num_transitions
    assert card["episodes"] == card["terminated_episodes"] == int(toy.terminals.sum()) > 0
    assert datagen.read_card(local_minari_id("hopper", "toy")) == card
    again = datagen.make_datasets(cfg, "toy", workdir=workdir, progress=False)
    assert list(again) == ["toy"] and again["toy"].reused


# ------------------------------------------------------- the small recorder


def test_maker_and_minari_loader_roundtrip(store: Path) -> None:
    start = time.perf_counter()
    made = datagen.make_minari_dataset(
        "mb2po/hopper/mixed-v0", "Hopper-v5", 300, seed=0, max_episode_steps=25,
        ref_min_score=-1.5,
    )
    assert time.perf_counter() - start < 10
    assert made.path == store / "mb2po/hopper/mixed-v0"
    data, info = load_minari("mb2po/hopper/mixed-v0")

    assert data.observations.shape == (300, 11) and data.next_observations.shape == (300, 11)
    assert data.actions.shape == (300, 3) and data.rewards.shape == (300,)
    assert data.observations.dtype == np.float32
    assert np.abs(data.actions).max() <= 1.0
    ends = (data.terminals == 1) | (data.timeouts == 1)
    assert data.terminals.sum() > 0 and data.timeouts.sum() > 0  # both kinds of end
    assert ends[-1]  # the step budget ends the last episode
    assert info.num_episodes == made.num_episodes == ends.sum()
    # Within an episode s'[t] == s[t + 1]; at an episode end s[t + 1] is a reset.
    within = ~ends[:-1]
    np.testing.assert_array_equal(
        data.next_observations[:-1][within], data.observations[1:][within]
    )
    assert not np.allclose(data.next_observations[:-1][~within], data.observations[1:][~within])
    assert info.env_id == "Hopper-v5"
    assert info.ref_min_score == -1.5 and info.ref_max_score is None
    assert info.source == f"minari:mb2po/hopper/mixed-v0 (local store {store})"

    # The same steps, read episode by episode straight from minari.
    episodes = list(minari.load_dataset("mb2po/hopper/mixed-v0").iterate_episodes())
    np.testing.assert_allclose(
        data.observations, np.concatenate([e.observations[:-1] for e in episodes]), rtol=1e-6
    )
    np.testing.assert_array_equal(data.timeouts, np.concatenate([e.truncations for e in episodes]))


def test_maker_refuses_to_overwrite(store: Path) -> None:
    datagen.make_minari_dataset("mb2po/hopper/random-v0", "Hopper-v5", 20, max_episode_steps=10)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        datagen.make_minari_dataset("mb2po/hopper/random-v0", "Hopper-v5", 20)
    made = datagen.make_minari_dataset(
        "mb2po/hopper/random-v0", "Hopper-v5", 30, overwrite=True,
        policy=lambda obs: np.zeros((len(obs), 3)),
    )
    data, _ = load_minari(made.dataset_id)
    assert len(data) == 30 and np.all(data.actions == 0)
