"""Seeds side by side (``num_seeds``): one vmapped program equals the
single-seed runs, resumes exactly, evaluates every seed, and shards the seed
axis over devices."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import numpy as np
import pytest

from mb2po_jax.pipeline import (Settings, UsageError, evaluate_checkpoint, prepare_dataset, run,
                                validate_config)
from mb2po_jax.pipeline.dynamics_phase import dynamics_phase
from mb2po_jax.pipeline import fine_tuning_phase as fine_tuning_module
from mb2po_jax.pipeline.builders import abstract_policy_state
from mb2po_jax import runner, seeds
from mb2po_jax.checkpoint import Checkpointer, RunMismatchError

# The run tests' tiny config and their module-wide Minari store (an autouse
# fixture: imported, it applies to this module too).
from tests.test_run import minari_store, tiny_config  # noqa: F401

REPO = Path(__file__).resolve().parents[1]
# One program over the seeds (vmap sums batched matmuls in another order;
# lax.map fuses its loop body its own way) agrees with the single-seed runs
# to float32 rounding, not bit for bit. A wrong key or a seed mixed up with
# another differs by O(0.1).
RTOL, ATOL = 1e-3, 1e-4


def seeds_config(num_seeds: int = 2, seed: int = 0):
    config = tiny_config(fine_tune=True)
    config.seed, config.num_seeds = seed, num_seeds
    return config


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, minari_store: Path) -> dict[str, Path]:
    """Seeds 0 and 1 as one vmapped run, and each alone (AWAC, dynamics, MB2PO)."""
    out = {}
    for name, config in (("both", seeds_config()), ("seed0", seeds_config(1, 0)),
                         ("seed1", seeds_config(1, 1))):
        out[name] = tmp_path_factory.mktemp(name)
        run(config, out[name])
    return out


def _state(workdir: Path, phase: str, config):
    with Checkpointer(workdir / "checkpoints" / phase) as checkpointer:
        meta = checkpointer.restore_meta()
        obs_dim, act_dim = meta["dataset"]["obs_dim"], meta["dataset"]["act_dim"]
        abstract = abstract_policy_state(Settings.from_config(config), phase, obs_dim, act_dim)
        return checkpointer.restore(abstract)[0]


def _assert_close(stacked, index: int, single) -> None:
    for x, y in zip(jax.tree.leaves(stacked), jax.tree.leaves(single), strict=True):
        np.testing.assert_allclose(np.asarray(x)[index], np.asarray(y), rtol=RTOL, atol=ATOL)


def _rows(path: Path) -> list[dict[str, float]]:
    header, *rows = path.read_text().splitlines()
    names = header.split(",")
    return [{n: float(v) for n, v in zip(names, row.split(",")) if v} for row in rows]


def test_each_seed_equals_its_single_seed_run(runs: dict[str, Path]) -> None:
    both = seeds_config()
    for index, name in enumerate(("seed0", "seed1")):
        single = seeds_config(1, index)
        for phase in ("awac", "mb2po"):
            _assert_close(_state(runs["both"], phase, both), index,
                          _state(runs[name], phase, single))
        # The per-seed curves are the single runs' curves.
        for phase in ("awac", "dynamics", "mb2po"):
            mine = _rows(runs["both"] / phase / f"seed_{index}" / "metrics_train.csv")
            alone = _rows(runs[name] / phase / "metrics_train.csv")
            assert [r["step"] for r in mine] == [r["step"] for r in alone]
            for a, b in zip(mine, alone):
                assert a.keys() == b.keys()
                np.testing.assert_allclose([a[k] for k in a], [b[k] for k in a], rtol=1e-2,
                                           atol=1e-3)
    # The two seeds really differ.
    first = jax.tree.leaves(_state(runs["both"], "awac", both).policy_params)[-1]
    assert not np.allclose(first[0], first[1])


def test_results_hold_each_seed_and_the_mean(runs: dict[str, Path]) -> None:
    results = json.loads((runs["both"] / "results.json").read_text())
    assert results["seeds"] == [0, 1] and results["num_seeds"] == 2
    per_seed = results["per_seed"]
    assert [r["seed"] for r in per_seed] == [0, 1]
    for one in per_seed:
        assert len(one["returns"]) == results["eval_episodes"]
        assert set(one["phases"]) == {"awac", "dynamics", "mb2po"}
    scores = [r["mb2po_normalized_score"] for r in per_seed]
    assert results["mb2po_normalized_score_per_seed"] == scores
    assert results["normalized_score"] == pytest.approx(np.mean(scores))
    assert results["normalized_score_over_seeds_std"] == pytest.approx(np.std(scores))
    assert results["awac_normalized_score"] == pytest.approx(
        np.mean([r["awac_normalized_score"] for r in per_seed]))
    assert (runs["both"] / "learning_curve.png").stat().st_size > 0
    # Evaluating the checkpoint reproduces every seed's final evaluation.
    evaluated = evaluate_checkpoint(runs["both"])
    assert evaluated["seeds"] == [0, 1]
    for mine, one in zip(evaluated["per_seed"], per_seed):
        assert mine["returns"] == one["returns"]
    assert evaluated["per_seed"][0]["updates"] == evaluated["per_seed"][1]["updates"]


@pytest.mark.parametrize("buffer_checkpoint", ["rows", "regenerate"])
def test_seeds_resume_exactly(runs: dict[str, Path], tmp_path: Path,
                              monkeypatch: pytest.MonkeyPatch, buffer_checkpoint: str) -> None:
    """Also when the checkpoint leaves the model buffer out and the resumed
    run rolls every seed's slots out again: then with K = 2 slots and the
    interruption after 3 iterations (the ring has wrapped), against a
    straight run that kept the rows."""
    config = seeds_config()
    reference = runs["both"]
    stop_at = 3
    if buffer_checkpoint == "regenerate":
        config.mb2po.buffer_iterations, config.mb2po.checkpoint_every = 2, 1
        stop_at, reference = 4, tmp_path / "rows"
        run(config, reference)
        config.mb2po.buffer_checkpoint = "regenerate"
    real = fine_tuning_module.fine_tuning_phase

    def interrupting(*args, **kwargs):
        phase, calls = real(*args, **kwargs), []

        def advance(state, chunk):
            calls.append(chunk)
            if len(calls) == stop_at:
                raise KeyboardInterrupt
            return phase.advance(state, chunk)

        return dataclasses.replace(phase, advance=advance)

    monkeypatch.setattr(fine_tuning_module, "fine_tuning_phase", interrupting)
    with pytest.raises(runner.InterruptedRun, match=f"'mb2po'.*step {stop_at - 1}"):
        run(config, tmp_path / "resumed")
    monkeypatch.setattr(fine_tuning_module, "fine_tuning_phase", real)
    resumed = run(config, tmp_path / "resumed")
    straight = json.loads((reference / "results.json").read_text())
    assert [r["returns"] for r in resumed["per_seed"]] == [r["returns"] for r in straight["per_seed"]]
    for index in (0, 1):
        path = f"mb2po/seed_{index}/metrics_train.csv"
        assert (tmp_path / "resumed" / path).read_text() == (reference / path).read_text()


def test_num_seeds_and_batching_are_checked() -> None:
    with pytest.raises(UsageError, match="num_seeds"):
        validate_config(seeds_config(0))
    config = seeds_config()
    config.seed_batching = "pmap"
    with pytest.raises(UsageError, match="seed_batching='pmap'"):
        validate_config(config)


def test_seed_keys_are_the_single_runs_keys() -> None:
    keys = seeds.stream_keys([3, 7], 5)
    for row, seed in zip(keys, (3, 7)):
        np.testing.assert_array_equal(row, jax.random.fold_in(jax.random.PRNGKey(seed), 5))
    np.testing.assert_array_equal(seeds.fold_in(keys, 2)[1],
                                  jax.random.fold_in(keys[1], 2))
    assert seeds.seed_list(4, 3) == (4, 5, 6)
    with pytest.raises(ValueError, match="num_seeds"):
        seeds.seed_list(0, 0)


def test_seed_axis_sharded_over_two_devices(runs: dict[str, Path], tmp_path: Path,
                                            minari_store: Path) -> None:
    """In a process with two (forced host) devices the seed axis is split over
    both, one program, and the seeds' numbers are those of the one-device run."""
    script = textwrap.dedent(f"""
        import json, jax, numpy as np
        from jax.sharding import PartitionSpec
        assert len(jax.devices()) == 2, jax.devices()
        from mb2po_jax.pipeline import Settings, prepare_dataset, run
        from mb2po_jax.pipeline.awac_phase import awac_phase
        from mb2po_jax.pipeline.dynamics_phase import dynamics_phase
        from tests.test_seeds import seeds_config
        config = seeds_config()
        config.mb2po.num_iterations = 0
        data = prepare_dataset(Settings.from_config(config).data)
        phase = awac_phase(Settings.from_config(config), data, data.transitions)
        state = phase.init()
        state, metrics = phase.advance(state, 0)
        leaf = jax.tree.leaves(state)[0]
        print("RESULT", json.dumps({{"devices": len(leaf.sharding.device_set),
                           "seed_axis_split": leaf.sharding.spec == PartitionSpec("seed"),
                           "shard_rows": [s.data.shape[0] for s in leaf.addressable_shards]}}))
        results = run(config, {str(tmp_path / 'sharded')!r})
        print("RESULT", json.dumps(results["awac_normalized_score_per_seed"]))
    """)
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
           "JAX_PLATFORMS": "cpu", "MINARI_DATASETS_PATH": str(minari_store)}
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    placement, scores = [json.loads(line.split(" ", 1)[1]) for line in out.stdout.splitlines()
                         if line.startswith("RESULT ")]
    assert placement == {"devices": 2, "seed_axis_split": True, "shard_rows": [1, 1]}
    straight = json.loads((runs["both"] / "results.json").read_text())
    np.testing.assert_allclose(scores, [r["awac_normalized_score"] for r in straight["per_seed"]],
                               rtol=1e-2)


def test_early_stopped_seed_is_frozen_as_its_own_run_would_stop(tmp_path: Path) -> None:
    """With MOPO's early stopping the seeds stop at different chunks: a seed
    that has stopped keeps its state (and logs nothing more) while the others
    train on, so each ends where its own run ends."""
    def config_of(num_seeds: int, seed: int = 0):
        config = seeds_config(num_seeds, seed)
        config.dynamics.early_stopping, config.dynamics.patience = True, 2
        config.dynamics.improvement_threshold = 0.05  # seed 1 stops at 145, seed 0 runs on
        config.dynamics.num_steps = 200  # 40 chunks: room to stop early
        config.seed_batching = "vmap"  # the accelerators' way, here on CPU
        config.train.eval_every = config.train.checkpoint_every = 200
        return config

    def train(config, name: str):
        data = prepare_dataset(Settings.from_config(config).data)
        phase = dynamics_phase(Settings.from_config(config), data, data.transitions)
        return runner.run_phase(phase, tmp_path / name, meta={}, progress_bar=False,
                                tensorboard=False)

    both = train(config_of(2), "both")
    stopped_at = []
    for index in (0, 1):
        alone = train(config_of(1, index), f"seed{index}")
        stopped_at.append(alone.steps)
        assert int(np.asarray(both.state.step)[index]) == alone.steps
        _assert_close(both.state.params, index, alone.state.params)
        np.testing.assert_array_equal(np.asarray(both.state.elites)[index], alone.state.elites)
        rows = _rows(tmp_path / "both" / "dynamics" / f"seed_{index}" / "metrics_train.csv")
        assert rows[-1]["step"] == alone.steps and "active" not in rows[-1]
    # One seed stopped while the other trained on: the freeze was exercised.
    assert stopped_at[0] != stopped_at[1] and min(stopped_at) < 200, stopped_at


def test_a_seed_group_starts_only_from_its_own_seeds(runs: dict[str, Path],
                                                     tmp_path: Path) -> None:
    """Seeds are matched by position on the axis: a 2-seed run from seeds 1-2
    must not start from seeds 0-1's pretraining (seed 1 would start from
    seed 0's policy and be reported as seed 1)."""
    config = seeds_config(2, seed=1)
    config.init.awac_workdir = str(runs["both"])
    with pytest.raises(RunMismatchError, match=r"trained seeds 0\.\.1, this run seeds 1\.\.2"):
        run(config, tmp_path / "shifted")
