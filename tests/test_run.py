"""The experiment pipeline at a tiny scale: configs, runs, checkpoints, resume.

Runs record a small Hopper-v5 dataset into a temporary Minari store (once),
train tiny networks for a few dozen steps and evaluate short episodes. Two
runs (AWAC only; every phase) are made once per module and shared: most of a
run's time is compiling, so tests reuse them, or start from their
checkpoints, instead of training again.
"""

from __future__ import annotations

import csv
import io
import fcntl
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from experiments import common
from mb2po_jax import mb2po, runner as phase_runner
from mb2po_jax.agents import awac
from mb2po_jax.pipeline import (Settings, UsageError, ResourceError, evaluate_checkpoint,
                                prepare_dataset, run, validate_config)
from mb2po_jax.pipeline import builders, dynamics_phase, resources, seed_axis
from mb2po_jax.pipeline import awac_phase as awac_phase_module
from mb2po_jax.pipeline.awac_phase import awac_phase
from mb2po_jax.pipeline.config import PAPER_MB2PO_TABLE, get_base_config, smoke_scale
from mb2po_jax.checkpoint import Checkpointer, RunMismatchError, check_same_run

REPO = Path(__file__).resolve().parents[1]


def tiny_config(fine_tune: bool = False, **awac_overrides):
    """The harness's smoke scale (tiny networks, a few dozen updates) on a
    recorded 400-step dataset, with MB2PO at h = 2 and omega = 0.25 so that
    multi-step rollouts and mixed batches are exercised."""
    config = smoke_scale(get_base_config())
    config.dataset = "minari:mb2po/hopper/test-random-v0"
    config.make_dataset.enabled = True
    config.make_dataset.num_steps = 400
    for key, value in awac_overrides.items():
        config.awac[key] = value
    config.mb2po.num_iterations = 4 if fine_tune else 0
    config.mb2po.horizon = 2
    config.mb2po.rollout_samples = 64
    config.mb2po.updates_per_iteration = 3
    config.mb2po.omega = 0.25
    return config


@pytest.fixture(scope="module", autouse=True)
def minari_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # One store for the whole module so the dataset is recorded once.
    store = tmp_path_factory.mktemp("minari_store")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MINARI_DATASETS_PATH", str(store))
        yield store


@pytest.fixture(scope="module")
def awac_run(tmp_path_factory: pytest.TempPathFactory, minari_store: Path) -> Path:
    """An AWAC-only run of 20 steps (4 chunks, checkpoints at 10 and 20)."""
    workdir = tmp_path_factory.mktemp("awac_run")
    run(tiny_config(), workdir)
    return workdir


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory, minari_store: Path) -> Path:
    """Every phase: AWAC 20 steps, dynamics 10, MB2PO 4 iterations."""
    workdir = tmp_path_factory.mktemp("full_run")
    run(tiny_config(fine_tune=True), workdir)
    return workdir


def _from(source: Path, config):
    """``config`` starting its AWAC and dynamics phases from ``source``'s."""
    config.init.awac_workdir = str(source)
    config.init.dynamics_workdir = str(source)
    return config


def _restore_state(workdir: Path, config, step=None):
    data = prepare_dataset(Settings.from_config(config).data)
    phase = awac_phase(Settings.from_config(config), data, data.transitions)
    with Checkpointer(workdir / "checkpoints" / "awac") as checkpointer:
        return checkpointer.restore(phase.abstract(), step)


def _assert_trees_equal(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_run_writes_results_checkpoints_logs_and_plot(awac_run: Path) -> None:
    saved = json.loads((awac_run / "results.json").read_text())
    for key in ("normalized_score", "return_mean", "return_std", "env_id", "dataset",
                "steps", "wall_seconds"):
        assert key in saved
    assert saved["steps"] == 20 and saved["env_id"] == "Hopper-v5"
    assert np.isfinite(saved["normalized_score"]) and saved["mb2po_normalized_score"] is None
    assert (awac_run / "learning_curve.png").stat().st_size > 0
    train_rows = (awac_run / "awac" / "metrics_train.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in train_rows[1:]] == ["5", "10", "15", "20"]
    eval_rows = (awac_run / "awac" / "metrics_eval.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in eval_rows[1:]] == ["10", "20"]
    with Checkpointer(awac_run / "checkpoints" / "awac") as checkpointer:
        assert checkpointer.all_steps() == [10, 20]
    # The checkpoint is self-describing: evaluate needs only the workdir and
    # reproduces the run's final evaluation exactly.
    evaluated = evaluate_checkpoint(awac_run)
    assert evaluated["step"] == 20 and evaluated["phase"] == "awac"
    assert evaluated["returns"] == saved["returns"]


def test_resume_equals_uninterrupted_run(
        awac_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tiny_config()
    final_straight, _ = _restore_state(awac_run, config)

    # Interrupt a second run in its third chunk (after step 10 was saved).
    interrupted = tmp_path / "interrupted"
    real_make = awac.make_train_steps

    def make_interrupting(*args, **kwargs):
        train_steps, calls = real_make(*args, **kwargs), []

        def wrapped(*a):
            calls.append(1)
            if len(calls) == 3:
                raise KeyboardInterrupt
            return train_steps(*a)

        return wrapped

    monkeypatch.setattr(awac, "make_train_steps", make_interrupting)
    with pytest.raises(phase_runner.InterruptedRun, match="step 10"):
        run(config, interrupted)
    monkeypatch.setattr(awac, "make_train_steps", real_make)
    with Checkpointer(interrupted / "checkpoints" / "awac") as checkpointer:
        assert checkpointer.all_steps() == [10]
    resumed = run(config, interrupted)

    final_resumed, _ = _restore_state(interrupted, config)
    _assert_trees_equal(final_straight, final_resumed)
    straight_results = json.loads((awac_run / "results.json").read_text())
    assert resumed["returns"] == straight_results["returns"]
    # The resumed run's curve holds each step once, with the same numbers.
    rows = (interrupted / "awac" / "metrics_train.csv").read_text().splitlines()[1:]
    assert [row.split(",")[0] for row in rows] == ["5", "10", "15", "20"]
    assert rows == (awac_run / "awac" / "metrics_train.csv").read_text().splitlines()[1:]


def test_same_seed_same_metrics_other_seed_differs(awac_run: Path, tmp_path: Path) -> None:
    # Chunk keys depend on the seed and the chunk index only, so a 10-step run
    # repeats the first two chunks of the 20-step one; another seed does not.
    config = tiny_config(num_steps=10)
    run(config, tmp_path / "same")
    config.seed = 1
    run(config, tmp_path / "other")
    rows = lambda d: (d / "awac" / "metrics_train.csv").read_text().splitlines()  # noqa: E731
    assert rows(tmp_path / "same") == rows(awac_run)[:3]
    assert rows(tmp_path / "other")[1:] != rows(awac_run)[1:3]


def test_rerun_of_finished_run_changes_nothing(awac_run: Path) -> None:
    before = json.loads((awac_run / "results.json").read_text())
    assert json.loads(json.dumps(run(tiny_config(), awac_run))) == before


def test_a_run_stopped_in_its_final_evaluation_makes_it_again(
        awac_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C during the last step's evaluation saves that step with the
    previous (step 10) evaluation; the re-run must not report it as final."""
    real, calls = builders.evaluate_policy, []

    def interrupting(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # the evaluations at steps 10 and 20
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(awac_phase_module, "evaluate_policy", interrupting)
    with pytest.raises(phase_runner.InterruptedRun, match="step 20"):
        run(tiny_config(), tmp_path)
    with Checkpointer(tmp_path / "checkpoints" / "awac") as checkpointer:
        assert checkpointer.restore_meta(20)["last_eval_step"] == 10
    monkeypatch.setattr(awac_phase_module, "evaluate_policy", real)
    resumed = run(tiny_config(), tmp_path)
    assert resumed["returns"] == json.loads((awac_run / "results.json").read_text())["returns"]
    eval_rows = (tmp_path / "awac" / "metrics_eval.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in eval_rows[1:]] == ["10", "20"]


def test_workdir_refuses_other_config_or_dataset(awac_run: Path) -> None:
    other = tiny_config()
    other.awac.alpha = 2.0
    with pytest.raises(RunMismatchError, match=r"awac\.alpha: workdir has 1\.0, this command has 2\.0"):
        run(other, awac_run)
    # Display-only fields may change.
    cosmetic = tiny_config()
    cosmetic.train.progress_bar = True
    run(cosmetic, awac_run)
    with pytest.raises(RunMismatchError, match="different dataset"):
        check_same_run({"dataset": "x"}, {"dataset": "x"}, awac_run,
                       saved_fingerprint="aa" * 32, current_fingerprint="bb" * 32)


def test_divergence_stops_with_phase_step_and_statistic(tmp_path: Path) -> None:
    config = tiny_config(num_steps=10, critic_lr=1e30)
    with pytest.raises(phase_runner.TrainingDivergedError, match=r"'awac'.*step 5.*critic"):
        run(config, tmp_path)


def test_config_validation_names_field_and_fix() -> None:
    config = tiny_config()
    config.train.eval_every = 7
    with pytest.raises(UsageError, match=r"train\.eval_every=7: not a multiple of train\.steps_per_chunk=5"):
        validate_config(config)
    config = tiny_config()
    config.eval.num_episodes = 0
    with pytest.raises(UsageError, match=r"eval\.num_episodes=0"):
        validate_config(config)


def test_config_files_and_overrides_resolve() -> None:
    names = common.available_configs()
    for task in PAPER_MB2PO_TABLE:
        assert task.replace("-", "_") + ".py" in names
    for env in ("hopper", "walker2d", "halfcheetah"):
        for kind in ("mixed", "medium"):
            cpu = common.load_config_file(common.resolve_config_path(f"{env}_{kind}_cpu"))
            assert cpu.dataset == f"{env}-{kind}" and cpu.awac.hidden_dims == (256, 256, 256, 256)
            assert cpu.awac.num_steps == 50_000 and cpu.awac.batch_size == 256
            # The CPU scale's buffer (20 x 50k rows) is checkpointed as it is;
            # the paper's (100 x 1M) is rolled out again on restore.
            assert cpu.mb2po.buffer_checkpoint == "rows"
            paper = common.load_config_file(common.resolve_config_path(f"{env}_{kind}"))
            assert paper.mb2po.buffer_checkpoint == "regenerate"
    assert common.load_config_file(
        common.resolve_config_path("quickstart")).mb2po.buffer_checkpoint == "rows"
    for name in names:  # every shipped config passes validation as it is
        validate_config(common.load_config_file(common.resolve_config_path(name)))
    path = common.resolve_config_path("hopper_mixed.py")
    assert path == common.resolve_config_path("hopper_mixed")
    config = common.load_config_file(path)
    assert (config.dataset, config.mb2po.omega, config.mb2po.horizon) == ("hopper-mixed", 0.01, 1)
    assert config.awac.num_steps == 500_000 and config.awac.batch_size == 1024
    halfcheetah = common.load_config_file(common.resolve_config_path("halfcheetah_random"))
    assert halfcheetah.mb2po.horizon == 5
    with pytest.raises(UsageError, match="Valid configs: .*hopper_mixed.py"):
        common.resolve_config_path("hopper_mixd.py")
    with pytest.raises(UsageError, match="awac has no field 'alph'.*alpha"):
        common.resolve_config_argv(["run", "--config=quickstart.py", "--config.awac.alph=2"])
    argv = common.resolve_config_argv(["run", "--config=quickstart.py", "--config.awac.alpha=2"])
    assert argv[1] == f"--config={common.CONFIG_DIR / 'quickstart.py'}"


def _cli(*args: str, env_extra: dict[str, str]) -> subprocess.CompletedProcess:
    env = {**os.environ, **env_extra}
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


def test_cli_quickstart_at_tiny_scale_then_evaluate(tmp_path: Path, minari_store: Path) -> None:
    workdir = tmp_path / "run"
    overrides = [
        "--config.dataset=minari:mb2po/hopper/test-cli-v0",
        "--config.make_dataset.num_steps=300",
        "--config.awac.num_steps=4", "--config.awac.batch_size=16",
        "--config.awac.hidden_dims=(16,16)", "--config.awac.num_quantiles=4",
        "--config.awac.loss_chunk_size=16",
        "--config.train.steps_per_chunk=2", "--config.train.eval_every=4",
        "--config.train.checkpoint_every=2", "--config.eval.num_episodes=1",
        "--config.eval.num_envs=1", "--config.eval.max_episode_steps=20",
        "--config.dynamics.num_steps=4", "--config.dynamics.hidden_dims=(16,16)",
        "--config.dynamics.num_members=2", "--config.dynamics.num_elites=2",
        "--config.dynamics.max_holdout=20", "--config.mb2po.num_iterations=1",
        "--config.mb2po.rollout_samples=32", "--config.mb2po.updates_per_iteration=2",
        "--config.mb2po.buffer_iterations=2", "--config.mb2po.block_size=16",
    ]
    env = {"MINARI_DATASETS_PATH": str(minari_store)}
    done = _cli("experiments.run", "--config=quickstart.py", f"--workdir={workdir}",
                *overrides, env_extra=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "normalized score" in done.stdout
    results = json.loads((workdir / "results.json").read_text())
    assert results["steps"] == 4 and results["phases"]["mb2po"]["steps"] == 1
    evaluated = _cli("experiments.evaluate", f"--workdir={workdir}", env_extra=env)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert json.loads(evaluated.stdout.strip().splitlines()[-1])["returns"] == results["returns"]
    bad = _cli("experiments.run", "--config=quickstart.py", f"--workdir={workdir}",
               "--config.awac.bogus=1", env_extra=env)
    assert bad.returncode == 2 and "awac has no field 'bogus'" in bad.stderr


def test_every_phase_end_to_end_with_both_scores(full_run: Path) -> None:
    results = json.loads((full_run / "results.json").read_text())
    assert set(results["phases"]) == {"awac", "dynamics", "mb2po"}
    assert np.isfinite(results["awac_normalized_score"]) and np.isfinite(results["mb2po_normalized_score"])
    assert results["normalized_score"] == results["mb2po_normalized_score"]
    assert results["phases"]["mb2po"]["steps"] == 4
    assert len(results["phases"]["dynamics"]["elites"]) == 2
    header = (full_run / "mb2po" / "metrics_train.csv").read_text().splitlines()[0].split(",")
    for column in ("rollout_uncertainty_mean", "rollout_penalized_reward_mean",
                   "rollout_termination_rate", "rollout_disagreement_mean", "critic_loss"):
        assert column in header
    assert "val_mse_mean" in (full_run / "dynamics" / "metrics_eval.csv").read_text()
    evaluated = evaluate_checkpoint(full_run)
    assert evaluated["phase"] == "mb2po" and evaluated["returns"] == results["returns"]
    assert evaluate_checkpoint(full_run, phase="awac")["returns"] == results["phases"]["awac"]["returns"]


def _interrupt_third_iteration(monkeypatch: pytest.MonkeyPatch, call: int = 3):
    """Makes fine-tuning raise Ctrl-C on its ``call``-th iteration (after
    iteration ``call - 1`` was checkpointed); returns the real
    ``make_iteration`` to restore."""
    real_make = mb2po.make_iteration

    def make_interrupting(*args, **kwargs):
        iteration, calls = real_make(*args, **kwargs), []

        def wrapped(*a):
            calls.append(1)
            if len(calls) == call:
                raise KeyboardInterrupt
            return iteration(*a)

        return wrapped

    monkeypatch.setattr(mb2po, "make_iteration", make_interrupting)
    return real_make


def test_fine_tuning_starts_from_another_run_and_resumes_mid_mb2po(
        full_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    straight = json.loads((full_run / "results.json").read_text())
    config = _from(full_run, tiny_config(fine_tune=True))
    real_make = _interrupt_third_iteration(monkeypatch)
    with pytest.raises(phase_runner.InterruptedRun, match="'mb2po'.*step 2"):
        run(config, tmp_path)
    monkeypatch.setattr(mb2po, "make_iteration", real_make)
    resumed = run(config, tmp_path)
    # No AWAC or dynamics training happened here: both came from full_run ...
    assert not (tmp_path / "awac" / "metrics_train.csv").exists()
    assert not (tmp_path / "dynamics" / "metrics_train.csv").exists()
    assert resumed["phases"]["awac"]["returns"] == straight["phases"]["awac"]["returns"]
    # ... and fine-tuning, interrupted and resumed, repeats full_run's numbers.
    assert resumed["returns"] == straight["returns"]
    read = lambda d: (d / "mb2po" / "metrics_train.csv").read_text()  # noqa: E731
    assert read(tmp_path) == read(full_run)


def _saved_tree(step_dir: Path) -> dict:
    """The structure (shapes) of a checkpoint's saved state, read from Orbax's metadata."""
    import orbax.checkpoint as ocp
    return dict(ocp.StandardCheckpointer().metadata(step_dir / "state").item_metadata.tree)


def test_buffer_regenerating_checkpoints_resume_to_the_same_numbers(
        full_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """``mb2po.buffer_checkpoint='regenerate'``: the checkpoint leaves the
    model buffer's rows out, and the resumed run rolls them out again from
    the saved policies: the same numbers as an uninterrupted run keeping the
    rows, also after the ring of slots has wrapped (5 iterations, K = 2)."""
    def config(mode: str):
        config = _from(full_run, tiny_config(fine_tune=True))
        config.mb2po.num_iterations, config.mb2po.buffer_iterations = 6, 2
        config.mb2po.checkpoint_every = 1
        config.mb2po.buffer_checkpoint = mode
        return config

    straight = run(config("rows"), tmp_path / "rows")
    real_make = _interrupt_third_iteration(monkeypatch, call=6)
    with pytest.raises(phase_runner.InterruptedRun, match="'mb2po'.*step 5"):
        run(config("regenerate"), tmp_path / "regen")
    # No K x S-row array in the checkpoint: K policies and K-slot summaries.
    saved = _saved_tree(tmp_path / "regen" / "checkpoints" / "mb2po" / "5")
    assert "buffer" not in saved and saved["slot_checksums"].shape == (2,)
    assert all(leaf.shape[0] == 2 for leaf in jax.tree.leaves(saved["policies"]))
    monkeypatch.setattr(mb2po, "make_iteration", real_make)
    with caplog.at_level(logging.INFO, logger="mb2po_jax.pipeline.buffer_checkpointing"):
        resumed = run(config("regenerate"), tmp_path / "regen")
    assert "rolled the model buffer's 2 filled slots out again" in caplog.text
    assert "differs from the saved one" not in caplog.text
    assert resumed["returns"] == straight["returns"]
    read = lambda d: (d / "mb2po" / "metrics_train.csv").read_text()  # noqa: E731
    assert read(tmp_path / "regen") == read(tmp_path / "rows")
    # A finished run read again is only reported: its slots are not rolled out.
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="mb2po_jax.pipeline.buffer_checkpointing"):
        again = run(config("regenerate"), tmp_path / "regen")
    assert "finished; its model buffer is not rolled out again" in caplog.text
    assert "rolled the model buffer's" not in caplog.text
    assert again["returns"] == straight["returns"]
    # Evaluation reads only the agent from either form of checkpoint.
    assert evaluate_checkpoint(tmp_path / "regen")["returns"] == straight["returns"]


def test_refill_checkpoints_keep_no_buffer_and_count_the_approximation(
        full_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """``mb2po.buffer_checkpoint='refill'`` (a named approximation): the
    checkpoint holds the agent and the counts only; a resume rolls the filled
    slots out again with the current policy, so training after it departs
    from the uninterrupted run's, and results.json counts the refill."""
    def config():
        config = _from(full_run, tiny_config(fine_tune=True))
        config.mb2po.num_iterations, config.mb2po.buffer_iterations = 6, 2
        config.mb2po.checkpoint_every = 1
        config.mb2po.buffer_checkpoint = "refill"
        return config

    straight = run(config(), tmp_path / "straight")
    assert straight["buffer_refills"] == 0
    real_make = _interrupt_third_iteration(monkeypatch, call=6)
    with pytest.raises(phase_runner.InterruptedRun, match="'mb2po'.*step 5"):
        run(config(), tmp_path / "refill")
    saved = _saved_tree(tmp_path / "refill" / "checkpoints" / "mb2po" / "5")
    assert set(saved) == {"agent", "iteration", "refills"}
    monkeypatch.setattr(mb2po, "make_iteration", real_make)
    with caplog.at_level(logging.WARNING, logger="mb2po_jax.pipeline.buffer_checkpointing"):
        resumed = run(config(), tmp_path / "refill")
    assert "buffer_checkpoint='refill' (an approximation)" in caplog.text
    assert resumed["buffer_refills"] == 1
    train = lambda d: (d / "mb2po" / "metrics_train.csv").read_text().splitlines()  # noqa: E731
    # Iterations 1-5 ran before the stop, as in the straight run; the sixth
    # trained on refilled slots.
    assert train(tmp_path / "refill")[:6] == train(tmp_path / "straight")[:6]
    assert train(tmp_path / "refill")[6] != train(tmp_path / "straight")[6]


def test_rows_checkpoints_that_cannot_fit_the_disk_are_refused_before_training(
        tmp_path: Path) -> None:
    config = tiny_config(fine_tune=True)
    assert resources.checkpoint_disk_problem(Settings.from_config(config), 11, 3, tmp_path) is None
    # 10^11 rows of hopper (obs 11, act 3: 112 bytes) per checkpoint: no disk holds 3.
    config.mb2po.rollout_samples, config.mb2po.buffer_iterations = 10**10, 10
    problem = resources.checkpoint_disk_problem(Settings.from_config(config), 11, 3, tmp_path)
    assert problem and "--config.mb2po.buffer_checkpoint='rows'" in problem
    assert "11200.0 GB" in problem and "buffer_checkpoint=regenerate" in problem
    config.mb2po.buffer_checkpoint = "regenerate"
    assert resources.checkpoint_disk_problem(Settings.from_config(config), 11, 3, tmp_path) is None
    # A run says so at its start, before AWAC trains (no work is lost).
    config.mb2po.buffer_checkpoint = "rows"
    with pytest.raises(ResourceError, match=r"buffer_checkpoint='rows'.*GB free"):
        run(config, tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoints" / "awac").exists()
    # Nor is the workdir bound to the refused config: the named fix re-runs there.
    assert not (tmp_path / "run" / "run.json").exists()
    config.mb2po.buffer_checkpoint = "buffer"
    with pytest.raises(UsageError, match=r"mb2po\.buffer_checkpoint='buffer'.*regenerate"):
        validate_config(config)


def test_model_buffers_that_cannot_fit_in_memory_are_refused_before_training(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    # Paper-scale halfcheetah (obs 17, act 6: 172 bytes a row) on a GPU whose
    # allocator allows 60 GB (75 % of an 80 GB card): 3 seeds fit, 4 do not.
    config = tiny_config(fine_tune=True)
    config.mb2po.rollout_samples, config.mb2po.buffer_iterations = 10**6, 100
    monkeypatch.setattr(resources, "_memory_limit", lambda: (60 * 10**9, 1, "test limit", True))
    config.num_seeds = 2
    assert resources.buffer_memory_problem(Settings.from_config(config), 17, 6) is None
    config.num_seeds = 3
    message, fatal = resources.buffer_memory_problem(Settings.from_config(config), 17, 6)
    assert not fatal and "51.6 GB) takes more than 80 % of 60.0 GB" in message
    config.num_seeds = 4
    message, fatal = resources.buffer_memory_problem(Settings.from_config(config), 17, 6)
    assert fatal and "100 x 1,000,000 rows x 4 seed(s) per device = 68.8 GB) exceeds" in message
    # A preallocating GPU pool may grow past its reported limit: then a warning.
    monkeypatch.setattr(resources, "_memory_limit", lambda: (60 * 10**9, 1, "test limit", False))
    assert resources.buffer_memory_problem(Settings.from_config(config), 17, 6)[1] is False
    # Two devices hold two seeds each.
    monkeypatch.setattr(resources, "_memory_limit", lambda: (60 * 10**9, 2, "test limit", True))
    assert resources.buffer_memory_problem(Settings.from_config(config), 17, 6) is None
    # A run says so at its start, before AWAC trains (no work is lost); a
    # tight fit is run with a warning.
    monkeypatch.setattr(resources, "_memory_limit", lambda: (1000, 1, "test limit", True))
    small = tiny_config(fine_tune=True)
    with pytest.raises(ResourceError, match=r"mb2po model buffer .* exceeds .*num_seeds"):
        run(small, tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoints" / "awac").exists()
    assert not (tmp_path / "run" / "run.json").exists()  # a fixed config may use the workdir
    row = 4 * (2 * 11 + 3 + 3)
    needed = small.mb2po.buffer_iterations * small.mb2po.rollout_samples * row
    monkeypatch.setattr(resources, "_memory_limit", lambda: (int(needed / 0.9), 1, "test limit", True))
    with caplog.at_level(logging.WARNING, logger="mb2po_jax.pipeline.run"):
        run(small, tmp_path / "tight")
    assert "takes more than 80 %" in caplog.text


def test_the_memory_limit_is_read_from_this_machine() -> None:
    capacity, devices, what, exact = resources._memory_limit()
    assert capacity > 10**8 and devices >= 1 and what and isinstance(exact, bool)


def test_guard_stops_mb2po_on_runaway_q_and_keeps_last_checkpoint(full_run: Path, tmp_path: Path) -> None:
    config = _from(full_run, tiny_config(fine_tune=True))
    config.mb2po.penalty_coef = -1e6  # a "bonus" that makes model rewards explode
    with pytest.raises(phase_runner.TrainingDivergedError, match=r"'mb2po'.*step 1.*exceeds the Q limit"):
        run(config, tmp_path)
    with Checkpointer(tmp_path / "checkpoints" / "mb2po") as checkpointer:
        assert checkpointer.all_steps() == []  # nothing diverged was saved


def test_init_from_a_run_on_other_data_is_refused(full_run: Path, tmp_path: Path) -> None:
    config = _from(full_run, tiny_config(fine_tune=True))
    config.dataset = "minari:mb2po/hopper/test-other-v0"
    config.make_dataset.seed = 7
    with pytest.raises(RunMismatchError, match="init.awac_workdir=.*different dataset"):
        run(config, tmp_path)


def _csv(path: Path) -> tuple[list[str], list[dict[str, float]]]:
    """(header, rows as floats) of a metrics CSV."""
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    return header, [dict(zip(header, map(float, line.split(",")))) for line in lines[1:]]


def test_train_metrics_carry_validation_and_fine_tuning_diagnostics(full_run: Path) -> None:
    results = json.loads((full_run / "results.json").read_text())
    # Dynamics: held-out error after every chunk. Without early stopping the
    # final model is the last chunk's, so the last row is the final evaluation.
    header, rows = _csv(full_run / "dynamics" / "metrics_train.csv")
    assert {"val_mse_mean", "val_nll_mean"} <= set(header)
    assert [row["step"] for row in rows] == [5.0, 10.0]
    dyn = results["phases"]["dynamics"]
    assert "stopped_early" not in dyn  # only reported with early stopping
    np.testing.assert_allclose(rows[-1]["val_mse_mean"], dyn["val_mse_mean"], rtol=1e-5)
    np.testing.assert_allclose(rows[-1]["val_nll_mean"], dyn["val_nll_mean"], rtol=1e-5)
    assert rows[0]["val_mse_mean"] != rows[1]["val_mse_mean"]  # measured per chunk
    # MB2PO: Q on real vs model rows and the policy's distance from the
    # pretrained one, every iteration.
    header, rows = _csv(full_run / "mb2po" / "metrics_train.csv")
    assert {"q_real_mean", "q_model_mean", "policy_shift"} <= set(header)
    assert [row["step"] for row in rows] == [1.0, 2.0, 3.0, 4.0]
    for row in rows:
        assert all(np.isfinite(row[k]) for k in ("q_real_mean", "q_model_mean", "policy_shift"))
        assert row["policy_shift"] > 0.0  # the policy moved from the pretrained one
        assert row["q_real_mean"] != row["q_model_mean"]
    # Each iteration's own numbers, not a constant.
    assert len({row["q_real_mean"] for row in rows}) == 4


def test_dynamics_reports_the_penalty_beside_the_reward_on_held_out_rows(full_run: Path) -> None:
    """lambda * u on the dataset's own held-out rows and their mean reward,
    against a NumPy reference on the restored final model (elites only)."""
    from mb2po_jax.model import dynamics

    config = tiny_config(fine_tune=True)
    config.mb2po.penalty_coef = 1.0  # what full_run used (the paper config's)
    dyn = json.loads((full_run / "results.json").read_text())["phases"]["dynamics"]
    data = prepare_dataset(Settings.from_config(config).data)
    phase = dynamics_phase.dynamics_phase(Settings.from_config(config), data, data.transitions)
    with Checkpointer(full_run / "checkpoints" / "dynamics") as checkpointer:
        state, _ = checkpointer.restore(phase.abstract())
    _, holdout = dynamics.split_holdout(
        dynamics.make_dynamics_data(data.transitions), seed_axis.SeedAxis(config.seed).key(seed_axis.DYN_SPLIT),
        config.dynamics.holdout_fraction, config.dynamics.max_holdout)
    obs_dim = data.info.obs_dim
    model = builders.build_dynamics(Settings.from_config(config), obs_dim, data.info.act_dim)
    _, logvar = model.predict(state, holdout.inputs[:, :obs_dim], holdout.inputs[:, obs_dim:])
    logvar = np.asarray(logvar, np.float64)[np.asarray(state.elites)]  # [E, rows, D]
    u = np.sqrt(np.exp(logvar).sum(-1)).max(0)  # MOPO: max over elites of ||sigma||_2
    np.testing.assert_allclose(dyn["holdout_penalty_mean"], 1.0 * u.mean(), rtol=1e-4)
    # lambda scales it: the same model evaluated for a run with lambda = 0.5.
    config.mb2po.penalty_coef = 0.5
    half = dynamics_phase.dynamics_phase(Settings.from_config(config), data, data.transitions).evaluate(state)
    np.testing.assert_allclose(half["holdout_penalty_mean"], 0.5 * u.mean(), rtol=1e-4)
    np.testing.assert_allclose(dyn["holdout_reward_mean"],
                               np.asarray(holdout.targets)[:, -1].mean(), rtol=1e-5)
    header, _ = _csv(full_run / "dynamics" / "metrics_eval.csv")
    assert {"holdout_penalty_mean", "holdout_reward_mean"} <= set(header)


def test_mb2po_evaluations_check_the_model_against_the_simulator(full_run: Path) -> None:
    """Every MB2PO evaluation carries the model-vs-simulator scalars; at the
    dataset's actions (a fixed model, fixed rows) they are the same each time."""
    header, rows = _csv(full_run / "mb2po" / "metrics_eval.csv")
    names = [f"sim_{what}_{actions}" for what in ("reward_bias", "reward_abs_error",
                                                  "true_reward", "state_mse", "penalty",
                                                  "termination")
             for actions in ("policy", "data")]
    assert set(names) <= set(header) and len(rows) >= 2
    for row in rows:
        assert all(np.isfinite(float(row[name])) for name in names)
    for name in names:
        if name.endswith("_data"):
            assert len({row[name] for row in rows}) == 1, name
    assert all(float(row["sim_state_mse_data"]) > 0 for row in rows)


def test_penalty_at_least_the_reward_is_warned(caplog) -> None:
    tuning = get_base_config().mb2po
    below = [{"holdout_penalty_mean": 0.2, "holdout_reward_mean": 2.0}]
    above = [*below, {"holdout_penalty_mean": 2.77, "holdout_reward_mean": 1.98}]
    with caplog.at_level("WARNING", logger="mb2po_jax.pipeline.dynamics_phase"):
        dynamics_phase._warn_if_penalty_dominates(below, tuning, "mb2po")
        assert not caplog.records
        dynamics_phase._warn_if_penalty_dominates(above, tuning, "mb2po")  # the worst seed counts
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert "mb2po.penalty_coef" in message and "2.77" in message and "1.98" in message


def test_dynamics_early_stopping_ends_the_phase_and_resumes_as_finished(
        full_run: Path, tmp_path: Path) -> None:
    """patience = 1 and a 20 % threshold: 5-step chunks improve the held-out
    MSE by a few % (every member improves at the first check, over inf), so
    the second check is stale and the phase stops at step 10 of 1000. The
    final model is the snapshot of the first check."""
    config = tiny_config(fine_tune=True)
    config.init.awac_workdir = str(full_run)  # AWAC is not what is tested here
    config.dynamics.num_steps = 1000
    config.dynamics.early_stopping = True
    config.dynamics.patience = 1
    config.dynamics.improvement_threshold = 0.2
    config.mb2po.num_iterations = 1
    results = run(config, tmp_path)
    dyn = results["phases"]["dynamics"]
    assert dyn["steps"] == 10 and dyn["stopped_early"] is True
    header, rows = _csv(tmp_path / "dynamics" / "metrics_train.csv")
    assert {"val_mse_mean", "val_nll_mean"} <= set(header)
    assert [row["step"] for row in rows] == [5.0, 10.0]
    # The second chunk still improved the live model, by less than 20 %: the
    # final model is the step-5 snapshot, not the last chunk's parameters.
    first, last = rows[0]["val_mse_mean"], rows[1]["val_mse_mean"]
    assert 0.8 * first < last < first
    np.testing.assert_allclose(dyn["val_mse_mean"], first, rtol=1e-5)
    assert results["phases"]["mb2po"]["steps"] == 1

    data = prepare_dataset(Settings.from_config(config).data)
    phase = dynamics_phase.dynamics_phase(Settings.from_config(config), data, data.transitions)
    with Checkpointer(tmp_path / "checkpoints" / "dynamics") as checkpointer:
        assert checkpointer.all_steps() == [10]
        state, _ = checkpointer.restore(phase.abstract())
    assert int(state.step) == 10 and int(state.stale_checks) == 1
    _assert_trees_equal(state.params, state.best_params)  # use_best was applied
    for i in range(config.dynamics.num_members):
        np.testing.assert_allclose(dyn[f"val_mse_{i}"], float(state.best_val_mse[i]), rtol=1e-5)

    # The same command again: the stopped phase is finished, nothing trains.
    train_csv = (tmp_path / "dynamics" / "metrics_train.csv").read_text()
    again = run(config, tmp_path)
    assert json.loads(json.dumps(again)) == json.loads((tmp_path / "results.json").read_text())
    assert again["phases"] == json.loads(json.dumps(results["phases"]))
    assert (tmp_path / "dynamics" / "metrics_train.csv").read_text() == train_csv
    with Checkpointer(tmp_path / "checkpoints" / "dynamics") as checkpointer:
        assert checkpointer.all_steps() == [10]


def tiny_mopo_config(source: Path):
    """MOPO at a tiny scale, its dynamics phase taken from ``source``."""
    config = _from(source, tiny_config(fine_tune=True))
    config.init.awac_workdir = None  # MOPO has no AWAC phase
    config.algorithm = "mopo"
    # The smoke scale's MOPO lengths (4 epochs, buffer 3, evaluated and
    # checkpointed every 2), with multi-step rollouts and a smaller SAC.
    config.mopo.horizon = 2
    config.mopo.rollout_samples = 64
    config.mopo.updates_per_iteration = 3
    config.mopo.batch_size = 16
    config.mopo.sac.hidden_dims = (16, 16)
    return config


def test_mopo_runs_from_config_resumes_exactly_and_evaluates(
        full_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tiny_mopo_config(full_run)
    straight = run(config, tmp_path / "straight")
    assert straight["algorithm"] == "mopo" and straight["steps"] == 4
    assert straight["awac_normalized_score"] is None and straight["mb2po_normalized_score"] is None
    assert straight["mopo_normalized_score"] == straight["normalized_score"]
    assert set(straight["phases"]) == {"dynamics", "mopo"}
    assert not (tmp_path / "straight" / "checkpoints" / "awac").exists()
    header = (tmp_path / "straight" / "mopo" / "metrics_train.csv").read_text().splitlines()[0]
    for column in ("critic_loss", "actor_loss", "temperature", "rollout_uncertainty_mean",
                   "q_real_mean", "q_model_mean", "policy_shift", "buffer_valid_rows"):
        assert column in header
    assert (tmp_path / "straight" / "learning_curve.png").stat().st_size > 0
    evaluated = evaluate_checkpoint(tmp_path / "straight")
    assert evaluated["phase"] == "mopo" and evaluated["returns"] == straight["returns"]
    # The agent's own counter: 4 iterations x 3 SAC updates.
    assert evaluated["updates"] == 12

    real_make = _interrupt_third_iteration(monkeypatch)
    with pytest.raises(phase_runner.InterruptedRun, match="'mopo'.*step 2"):
        run(config, tmp_path / "resumed")
    monkeypatch.setattr(mb2po, "make_iteration", real_make)
    resumed = run(config, tmp_path / "resumed")
    assert resumed["returns"] == straight["returns"]
    read = lambda d: (d / "mopo" / "metrics_train.csv").read_text()  # noqa: E731
    assert read(tmp_path / "resumed") == read(tmp_path / "straight")


def test_the_quickstart_is_a_quickstart_for_mopo_too() -> None:
    """`--config=quickstart.py --config.algorithm=mopo` is minutes, not
    MOPO's 1,000 epochs: the mopo section shrinks as the mb2po one does."""
    quick = common.load_config_file(common.resolve_config_path("quickstart"))
    for section in (quick.mb2po, quick.mopo):
        assert section.num_iterations * section.updates_per_iteration <= 2_500
        assert section.rollout_samples <= 10_000 and section.buffer_iterations <= 5
    assert quick.mopo.rollout_samples % quick.mopo.horizon == 0
    quick.algorithm = "mopo"
    validate_config(quick)


def test_mb2po_scale_applies_after_the_file_and_before_the_overrides(
        caplog: pytest.LogCaptureFixture) -> None:
    from mb2po_jax.pipeline.config import SCALE_ENV, apply_scale

    config = common.load_config_file(common.resolve_config_path("hopper_mixed"))
    with caplog.at_level(logging.WARNING, logger="mb2po_jax.pipeline.config"):
        scaled = apply_scale(config, "smoke", {"awac.num_steps": 40, "seed": 3})
    assert f"{SCALE_ENV}=smoke" in caplog.text and "smoke_scale" in caplog.text
    smoke = smoke_scale(common.load_config_file(common.resolve_config_path("hopper_mixed")))
    assert scaled.awac.num_steps == 40 and scaled.seed == 3  # the command line wins
    assert scaled.awac.hidden_dims == smoke.awac.hidden_dims == (32, 32)
    assert scaled.mb2po.rollout_samples == smoke.mb2po.rollout_samples
    assert (scaled.dataset, scaled.mb2po.omega) == ("hopper-mixed", 0.01)  # the file's task
    validate_config(scaled)
    with pytest.raises(UsageError, match="MB2PO_SCALE='tiny'.*cpu.*paper.*smoke"):
        apply_scale(config, "tiny", {})


def test_the_learning_curve_title_fits_the_figure(tmp_path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from mb2po_jax.pipeline.results import _short_dataset
    from mb2po_jax import metrics_logger

    assert _short_dataset("hdf5:/data/d4rl/hopper_medium_replay-v2.hdf5") == \
        "hdf5:hopper_medium_replay-v2.hdf5"
    assert _short_dataset("minari:mb2po/hopper/mixed-v0") == "minari:mb2po/hopper/mixed-v0"
    fig = Figure(figsize=(6.4, 4.0), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot([1, 2], [3, 4])
    long = "hopper_mixed_cpu_seed0_a_workdir_name_far_too_long_for_one_line_of_title: eval"
    metrics_logger._fit_title(fig, ax, long)
    box = ax.title.get_window_extent(fig.canvas.get_renderer())
    assert 0 <= box.x0 and box.x1 <= fig.bbox.width
    squeeze = lambda s: s.replace("\n", "").replace(" ", "")  # noqa: E731
    assert "\n" in ax.get_title() and squeeze(ax.get_title()) == squeeze(long)


def test_config_field_nothing_reads_is_refused_by_name() -> None:
    config = tiny_config()
    config.mb2po.horizn = 3  # a typo: nothing reads it
    with pytest.raises(UsageError, match=r"\['mb2po\.horizn'\].*not read by anything"):
        validate_config(config)
    config = tiny_config()
    config.algorithm = "cql"
    with pytest.raises(UsageError, match=r"--config\.algorithm='cql'.*mb2po.*mopo"):
        validate_config(config)


def test_second_process_on_a_busy_workdir_is_refused_naming_the_holder(awac_run: Path) -> None:
    # The lock is an flock on an open file: another open file holding it (as
    # another process would) makes the run refuse before touching anything.
    holder = open(awac_run / ".lock", "a+")
    try:
        fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        holder.truncate(0)
        holder.write("pid 4242 on elsewhere\n")
        holder.flush()
        before = (awac_run / "results.json").read_text()
        with pytest.raises(phase_runner.WorkdirBusyError, match=r"in use by another process \(pid 4242 on elsewhere\)"):
            run(tiny_config(), awac_run)
        assert (awac_run / "results.json").read_text() == before
    finally:
        fcntl.flock(holder, fcntl.LOCK_UN)
        holder.close()
    # Released (as when the holder exits): the same command runs again.
    assert run(tiny_config(), awac_run)["steps"] == 20


# Orbax's failed read leaves an asyncio callback behind; it is harmless.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_unreadable_latest_checkpoint_falls_back_to_the_previous_one(
        awac_run: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import logging
    import shutil

    workdir = tmp_path / "copy"
    shutil.copytree(awac_run, workdir)
    straight = json.loads((awac_run / "results.json").read_text())
    latest = workdir / "checkpoints" / "awac" / "20"
    for path in (latest / "state").rglob("*"):
        if path.is_file() and (path.parent.name == "d" or path.name == "manifest.ocdbt"):
            path.write_bytes(b"truncated")  # what a full disk or a cut copy leaves
    with caplog.at_level(logging.WARNING):
        resumed = run(tiny_config(), workdir)
    assert "checkpoints/awac/20 does not read back" in caplog.text
    assert "resuming from step 10 instead" in caplog.text
    assert (workdir / "checkpoints" / "awac.unreadable" / "20").is_dir()
    # Steps 10 -> 20 trained again from checkpoint 10 repeat the same numbers.
    assert resumed["returns"] == straight["returns"]
    with Checkpointer(workdir / "checkpoints" / "awac") as checkpointer:
        assert checkpointer.all_steps() == [10, 20]


def test_extend_continues_a_finished_run_to_a_longer_one(
        awac_run: Path, full_run: Path, tmp_path: Path) -> None:
    import shutil

    workdir = tmp_path / "extended"
    shutil.copytree(awac_run, workdir)
    longer = tiny_config(num_steps=30)
    with pytest.raises(RunMismatchError, match="awac.num_steps"):
        run(longer, workdir)  # without --extend a longer run is another run
    extended = run(longer, workdir, extend=True)
    straight = run(longer, tmp_path / "straight")
    assert extended["steps"] == 30 and extended["returns"] == straight["returns"]
    saved = json.loads((workdir / "run.json").read_text())
    assert saved["config"]["awac"]["num_steps"] == 30
    assert saved["extended"] == [{"awac.num_steps": 30, "mb2po.num_iterations": 0,
                                  "mopo.num_iterations": longer.mopo.num_iterations}]
    assert run(longer, workdir)["returns"] == straight["returns"]  # now the workdir's length

    with pytest.raises(UsageError, match=r"only be made longer"):
        run(tiny_config(num_steps=25), workdir, extend=True)
    other = tiny_config(num_steps=40)
    other.awac.batch_size = 16
    with pytest.raises(RunMismatchError, match=r"awac\.batch_size"):
        run(other, workdir, extend=True)
    copy = tmp_path / "fine_tuned"
    shutil.copytree(full_run, copy)
    with pytest.raises(UsageError, match=r"\['dynamics', 'mb2po'\] phase\(s\) already started"):
        run(tiny_config(fine_tune=True, num_steps=30), copy, extend=True)


def test_a_stored_config_from_before_next_state_rebuilds_with_the_papers_sampling() -> None:
    """experiments.evaluate rebuilds the fine-tuning state from a checkpoint's
    stored config, which lacks fields added later: they take the paper's value."""
    import ml_collections

    legacy = ml_collections.ConfigDict(tiny_config(fine_tune=True).to_dict())
    del legacy.mb2po["next_state"]
    assert "next_state" not in legacy.mb2po
    assert Settings.from_config(legacy).fine_tuning.loop.next_state == "sample"
    current = tiny_config(fine_tune=True)
    current.mb2po.next_state = "mean"
    assert Settings.from_config(current).fine_tuning.loop.next_state == "mean"


def test_simulator_as_model_fine_tunes_on_true_transitions(full_run: Path, tmp_path: Path) -> None:
    """mb2po.model='simulator' (a diagnostic): the same loop, its rollouts
    stepped by MuJoCo, no penalty, from restorable dataset rows only."""
    config = _from(full_run, tiny_config(fine_tune=True))
    config.mb2po.model = "simulator"
    with pytest.raises(UsageError, match=r"mb2po\.horizon=2.*'simulator'.*horizon=1"):
        validate_config(config)
    config.mb2po.horizon = 1
    with pytest.raises(UsageError, match=r"mb2po\.start_states='dataset'.*'restorable'"):
        validate_config(config)
    config.mb2po.start_states = "restorable"
    run(config, tmp_path)
    rows = list(csv.DictReader((tmp_path / "mb2po" / "metrics_train.csv").open()))
    learned = list(csv.DictReader((full_run / "mb2po" / "metrics_train.csv").open()))
    assert len(rows) == len(learned) == 4
    assert all(float(row["rollout_uncertainty_mean"]) > 0 for row in learned)
    for row in rows:
        assert float(row["rollout_uncertainty_mean"]) == 0.0
        assert float(row["rollout_penalized_reward_mean"]) == float(row["rollout_model_reward_mean"])
        assert float(row["rollout_valid_fraction"]) == 1.0
    config.mb2po.model = "perfect"
    with pytest.raises(UsageError, match=r"mb2po\.model='perfect'.*ensemble.*simulator"):
        validate_config(config)


def test_resume_ignores_the_config_sections_the_algorithm_never_reads(tmp_path: Path) -> None:
    """A new scale may give MOPO other lengths: an MB2PO workdir made before
    still resumes (its run never reads config.mopo), a MOPO one is refused,
    and a difference in what the run does read is refused as before."""
    from mb2po_jax.pipeline import workdir as workdir_module

    saved = json.loads(get_base_config().to_json())
    changed = json.loads(json.dumps(saved))
    changed["mopo"]["num_iterations"] = saved["mopo"]["num_iterations"] // 10
    workdir_module.check_same_run_in(saved, changed, tmp_path)  # MB2PO: config.mopo unused
    as_mopo = lambda c: {**c, "algorithm": "mopo"}  # noqa: E731
    with pytest.raises(RunMismatchError, match="mopo.num_iterations"):
        workdir_module.check_same_run_in(as_mopo(saved), as_mopo(changed), tmp_path)
    changed["awac"]["critic_lr"] = 1e-5
    with pytest.raises(RunMismatchError, match="awac.critic_lr") as refused:
        workdir_module.check_same_run_in(saved, changed, tmp_path)
    assert "mopo.num_iterations" not in str(refused.value)
    workdir_module.check_same_run_in(as_mopo(saved), as_mopo({**changed, "mopo": saved["mopo"]}),
                               tmp_path)  # MOPO: config.awac unused
    with pytest.raises(RunMismatchError, match="algorithm"):
        workdir_module.check_same_run_in(saved, as_mopo(saved), tmp_path)


def test_a_stop_request_checkpoints_at_the_boundary_and_the_rerun_continues_exactly(
        full_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGTERM / SIGUSR1 or a time limit (mb2po_jax.stopping) during
    fine-tuning: the iteration in flight finishes, its state is checkpointed,
    StoppedAtLimit names the phase and step; the same command continues to
    the same numbers as an uninterrupted run."""
    from mb2po_jax.stopping import STOP, StoppedAtLimit

    config = _from(full_run, tiny_config(fine_tune=True))
    real_make = mb2po.make_iteration

    def make_requesting(*args, **kwargs):
        iteration, calls = real_make(*args, **kwargs), []

        def wrapped(*a):
            calls.append(1)
            if len(calls) == 3:
                STOP.request("SIGTERM signal")  # arrives while iteration 3 runs
            return iteration(*a)

        return wrapped

    monkeypatch.setattr(mb2po, "make_iteration", make_requesting)
    try:
        with pytest.raises(StoppedAtLimit, match=r"SIGTERM signal \(phase 'mb2po', step 3"):
            run(config, tmp_path)
    finally:
        STOP.reset()
    assert Checkpointer(tmp_path / "checkpoints" / "mb2po", 2).latest_step() == 3
    monkeypatch.setattr(mb2po, "make_iteration", real_make)
    resumed = run(config, tmp_path)
    straight = json.loads((full_run / "results.json").read_text())
    assert resumed["returns"] == straight["returns"]
    read = lambda d: (d / "mb2po" / "metrics_train.csv").read_text()  # noqa: E731
    assert read(tmp_path) == read(full_run)


def test_cli_time_limit_stops_cleanly_with_exit_0_then_continues(
        tmp_path: Path, minari_store: Path) -> None:
    """--time_limit far shorter than the start-up (10 ms, so a fast machine
    cannot reach a later boundary first): the run stops at its first
    boundary with one line and exit code 0; the same command without the
    limit finishes. The harness leaves the cell unfinished, not failed."""
    env = {"MINARI_DATASETS_PATH": str(minari_store), "MB2PO_SCALE": "smoke"}
    args = ["experiments.run", "--config=quickstart.py", f"--workdir={tmp_path / 'run'}",
            "--config.dataset=minari:mb2po/hopper/test-limit-v0",
            "--config.make_dataset.num_steps=300", "--config.mb2po.num_iterations=0",
            "--config.train.progress_bar=False"]
    stopped = _cli(*args, "--time_limit=0.01", env_extra=env)
    assert stopped.returncode == 0, stopped.stderr[-2000:]
    assert ("stopped at the time limit (phase 'awac', step 0, checkpoint saved); re-run the "
            "same command to continue.") in stopped.stdout
    assert not (tmp_path / "run" / "results.json").exists()
    finished = _cli(*args, env_extra=env)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert (tmp_path / "run" / "results.json").is_file()
    bad = _cli(*args, "--time_limit=soon", env_extra=env)
    assert bad.returncode == 1 and "--time_limit='soon'" in bad.stderr

    sweep = _cli("experiments.reproduce", "--tasks=hopper-mixed", "--seeds=0",
                 f"--workdir={tmp_path / 'sweep'}", "--time_limit=0.01", env_extra=env)
    assert sweep.returncode == 0, sweep.stderr[-2000:]
    assert "sweep stopped at the time limit (phase 'awac', step 0" in sweep.stdout
    pretrain = tmp_path / "sweep" / "hopper-mixed" / "seed0" / "pretrain"
    assert (pretrain / "checkpoints" / "awac").is_dir() and not (pretrain / "cell.json").exists()


def test_a_stopped_run_exported_and_imported_elsewhere_continues_exactly(
        full_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pieces workflow: stop mid fine-tuning, export the workdir to one
    checksummed file, import it into another directory, re-run there: the
    same numbers as the uninterrupted run. A damaged archive or a used
    destination is refused before anything is written."""
    import tarfile

    from mb2po_jax import snapshot

    config = _from(full_run, tiny_config(fine_tune=True))
    real_make = _interrupt_third_iteration(monkeypatch)
    with pytest.raises(phase_runner.InterruptedRun, match="'mb2po'.*step 2"):
        run(config, tmp_path / "first")
    monkeypatch.setattr(mb2po, "make_iteration", real_make)
    archive = tmp_path / "piece.tar.gz"
    manifest = snapshot.export_runs(tmp_path / "first", archive)
    paths = {e["path"] for e in manifest["files"]}
    assert "run.json" in paths and "mb2po/metrics_train.csv" in paths
    # Only the newest checkpoint of each phase travels.
    assert {p.split("/")[2] for p in paths if p.startswith("checkpoints/mb2po/")} == {"2"}
    assert not any("/tb/" in p for p in paths)

    snapshot.import_runs(archive, tmp_path / "second")
    resumed = run(config, tmp_path / "second")
    straight = json.loads((full_run / "results.json").read_text())
    assert resumed["returns"] == straight["returns"]
    read = lambda d: (d / "mb2po" / "metrics_train.csv").read_text()  # noqa: E731
    assert read(tmp_path / "second") == read(full_run)

    with pytest.raises(snapshot.SnapshotError, match="already holds files"):
        snapshot.import_runs(archive, tmp_path / "second")
    # One altered member: refused, and nothing is written.
    damaged = tmp_path / "damaged.tar.gz"
    with tarfile.open(archive, "r:gz") as src, tarfile.open(damaged, "w:gz") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read()
            if member.name == "run.json":
                data = data.replace(b"hopper", b"hoppeR", 1)
            member.size = len(data)
            dst.addfile(member, io.BytesIO(data))
    with pytest.raises(snapshot.SnapshotError, match="run.json does not match its checksum"):
        snapshot.import_runs(damaged, tmp_path / "third")
    assert not (tmp_path / "third").exists()
