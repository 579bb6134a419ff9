"""The reproduction harness at smoke scale: outputs, the fair control, resume,
divergence, and the report's statistics.

One real sweep (1 task, 2 seeds, both arms: 6 cells on a tiny recorded
dataset) is made once per module and shared; the sweep logic around it
(skipping, interruption, divergence) is tested with stand-ins for the
training so it costs no compute.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from mb2po_jax import harness
from mb2po_jax.harness import cells, sweep as sweep_module
from mb2po_jax.pipeline import UsageError, paper_config
from mb2po_jax.runner import InterruptedRun, TrainingDivergedError

TASK = "hopper-mixed"
SEEDS = [0, 1]


@pytest.fixture(scope="module", autouse=True)
def minari_store(tmp_path_factory: pytest.TempPathFactory):
    store = tmp_path_factory.mktemp("minari_store")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MINARI_DATASETS_PATH", str(store))
        patch.setenv("D4RL_DATASET_DIR", str(store / "no-d4rl"))
        yield store


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sweep")
    records = harness.run_sweep(root, [TASK], SEEDS, ["awac", "mb2po"], "smoke",
                                  seed_programs="each")
    assert [r["status"] for r in records] == ["done"] * 6
    return root


def _rows(root: Path) -> list[dict[str, str]]:
    with (root / harness.RESULTS_FILE).open() as f:
        return list(csv.DictReader(f))


def test_smoke_sweep_writes_csv_table_and_png(sweep: Path):
    rows = _rows(sweep)
    assert [(r["seed"], r["arm"]) for r in rows] == [
        ("0", "pretrain"), ("0", "awac"), ("0", "mb2po"),
        ("1", "pretrain"), ("1", "awac"), ("1", "mb2po")]
    for row in rows:
        assert row["status"] == "done" and row["scale"] == "smoke"
        assert row["final_episodes"] == "2"
        assert math.isfinite(float(row["final_score"]))
        assert math.isfinite(float(row["best_periodic_score"]))
        assert len(row["dataset_fingerprint"]) == 64
        assert row["commit"]
    table = (sweep / harness.TABLE_FILE).read_text()
    assert "| hopper-mixed | AWAC+MB2PO | 2 |" in table
    lift_row = next(line for line in table.splitlines()
                    if line.startswith("| hopper-mixed | 2 |"))
    assert "[" in lift_row and "n/a" not in lift_row.split("|")[4]  # an interval, 2 seeds
    assert "AWAC+MB2PO 72.6" in table  # the paper's Table 1 beside
    png = (sweep / f"{TASK}.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5_000
    summary = (sweep / harness.SUMMARY_FILE).read_bytes()
    assert summary[:8] == b"\x89PNG\r\n\x1a\n" and len(summary) > 5_000


def test_final_and_best_are_named_apart_and_consistent(sweep: Path):
    for row in _rows(sweep):
        cell = json.loads((sweep / TASK / f"seed{row['seed']}" / row["arm"]
                           / harness.CELL_FILE).read_text())
        assert len(cell["final_returns"]) == cell["final_episodes"]
        # The best periodic evaluation is the maximum of the logged curve.
        curve = harness.eval_curve(sweep / TASK / f"seed{row['seed']}" / row["arm"], cell)
        assert float(row["best_periodic_score"]) == pytest.approx(max(s for _, s in curve), abs=1e-3)


def test_control_gets_exactly_as_many_updates_as_mb2po(sweep: Path):
    config = harness.task_config(TASK, "smoke", {}, {})
    pretrain, extra = config.awac.num_steps, harness.finetune_updates(config)
    assert extra == config.mb2po.num_iterations * config.mb2po.updates_per_iteration > 0
    for seed in SEEDS:
        rows = {r["arm"]: r for r in _rows(sweep) if r["seed"] == str(seed)}
        # The agents' own update counters, read back from the final checkpoints.
        assert rows["pretrain"]["total_updates"] == str(pretrain)
        assert rows["awac"]["total_updates"] == rows["mb2po"]["total_updates"] == str(pretrain + extra)
        assert rows["awac"]["finetune_updates"] == rows["mb2po"]["finetune_updates"] == str(extra)
        assert rows["awac"]["batch_size"] == rows["mb2po"]["batch_size"]


def test_rerun_skips_finished_cells_and_resumes_a_killed_one(sweep: Path, monkeypatch):
    cell_dir = sweep / TASK / "seed1" / "mb2po"
    before = json.loads((cell_dir / harness.CELL_FILE).read_text())
    # As if killed after its last checkpoint but before its record was written.
    (cell_dir / harness.CELL_FILE).unlink()
    ran = []
    real_run_cell = harness.run_cell
    monkeypatch.setattr(sweep_module, "run_cell",
                        lambda cell, *args: ran.append(cell.label) or real_run_cell(cell, *args))
    harness.run_sweep(sweep, [TASK], SEEDS, ["awac", "mb2po"], "smoke", seed_programs="each")
    assert ran == [f"{TASK} seed 1 mb2po"]
    after = json.loads((cell_dir / harness.CELL_FILE).read_text())
    assert after["final_returns"] == before["final_returns"]  # resumed, not retrained


def _fake_cell(cell, config, final_episodes, arms=None):
    cell.workdir.mkdir(parents=True, exist_ok=True)
    record = {"task": cell.task, "seed": cell.seed, "arm": cell.arm, "status": "done",
              "final_score": 1.0 + cell.seed, "final_episodes": final_episodes}
    cells._write_cell(cell.workdir, record)
    return record


def test_interrupted_sweep_continues_where_it_stopped(tmp_path: Path, monkeypatch):
    calls = []

    def interrupt_third(cell, config, final_episodes, arms):
        calls.append(cell.label)
        if len(calls) == 3:
            raise InterruptedRun("mb2po", 2)
        return _fake_cell(cell, config, final_episodes, arms)

    monkeypatch.setattr(sweep_module, "run_cell", interrupt_third)
    with pytest.raises(InterruptedRun):
        harness.run_sweep(tmp_path, [TASK], [3, 4], ["awac", "mb2po"], "smoke", report=False, seed_programs="each")
    assert calls == [f"{TASK} seed 3 pretrain", f"{TASK} seed 3 awac", f"{TASK} seed 3 mb2po"]
    calls.clear()
    monkeypatch.setattr(sweep_module, "run_cell",
                        lambda cell, *a: calls.append(cell.label) or _fake_cell(cell, *a))
    records = harness.run_sweep(tmp_path, [TASK], [3, 4], ["awac", "mb2po"], "smoke",
                                  report=False, seed_programs="each")
    assert calls == [f"{TASK} seed 3 mb2po", f"{TASK} seed 4 pretrain", f"{TASK} seed 4 awac",
                     f"{TASK} seed 4 mb2po"]
    assert [r["status"] for r in records] == ["done"] * 6


def test_diverged_pretraining_is_recorded_and_the_sweep_goes_on(tmp_path: Path, monkeypatch):
    def diverge(config, workdir):
        raise TrainingDivergedError(f"Phase 'awac' diverged at step 10 (seed {config.seed})")

    monkeypatch.setattr(cells, "run_experiment", diverge)
    records = harness.run_sweep(tmp_path, [TASK], [7, 8], ["awac", "mb2po"], "smoke", seed_programs="each")
    assert [(r["seed"], r["arm"], r["status"]) for r in records] == [
        (7, "pretrain", "diverged"), (7, "awac", "skipped"), (7, "mb2po", "skipped"),
        (8, "pretrain", "diverged"), (8, "awac", "skipped"), (8, "mb2po", "skipped")]
    assert "seed 7" in records[0]["message"]
    table = (tmp_path / harness.TABLE_FILE).read_text()
    assert "seed 7 diverged, seed 8 diverged" in table
    # Finished (diverged) cells are not run again.
    monkeypatch.setattr(cells, "run_experiment", lambda *a: pytest.fail("ran again"))
    harness.run_sweep(tmp_path, [TASK], [7, 8], ["awac", "mb2po"], "smoke", seed_programs="each")


def test_mopo_alone_pretrains_nothing(tmp_path: Path, monkeypatch):
    calls = []
    monkeypatch.setattr(sweep_module, "run_cell",
                        lambda cell, *a: calls.append(cell.label) or _fake_cell(cell, *a))
    harness.run_sweep(tmp_path, [TASK], [0, 1], ["mopo"], "smoke", report=False,
                        seed_programs="each")
    assert calls == [f"{TASK} seed 0 mopo", f"{TASK} seed 1 mopo"]
    calls.clear()  # an arm that starts from the pretraining brings it back, first
    harness.run_sweep(tmp_path, [TASK], [0], ["mopo", "awac"], "smoke", report=False,
                        seed_programs="each")
    assert calls == [f"{TASK} seed 0 pretrain", f"{TASK} seed 0 awac"]


def test_overlapping_seed_groups_are_refused(tmp_path: Path):
    (tmp_path / TASK / "seeds0-2").mkdir(parents=True)
    assert len(harness.plan(tmp_path, [TASK], [0, 1, 2], ["awac"], vmap_seeds=True)) == 2
    assert len(harness.plan(tmp_path, [TASK], [3, 4], ["awac"], vmap_seeds=True)) == 2
    with pytest.raises(UsageError, match=r"seeds0-2 already holds seeds 0\.\.2 .* seeds 2\.\.2 "
                                         r"would run twice"):
        harness.plan(tmp_path, [TASK], [2, 3], ["awac"], vmap_seeds=True)


def test_shards_split_units_and_cover_the_grid(tmp_path: Path):
    tasks, seeds = ["hopper-mixed", "walker2d-mixed"], [0, 1, 2]
    full = harness.plan(tmp_path, tasks, seeds, ["awac", "mb2po"])
    parts = [harness.plan(tmp_path, tasks, seeds, ["awac", "mb2po"], (i, 4)) for i in range(4)]
    assert sorted(c.workdir for part in parts for c in part) == sorted(c.workdir for c in full)
    for part in parts:  # a unit's cells stay together, pretraining first
        for i in range(0, len(part), 3):
            assert [c.arm for c in part[i:i + 3]] == ["pretrain", "awac", "mb2po"]
            assert len({(c.task, c.seed) for c in part[i:i + 3]}) == 1
    with pytest.raises(UsageError, match="I/N"):
        sweep_module.parse_shard("2")
    with pytest.raises(UsageError, match="0 <= I < N"):
        sweep_module.parse_shard("2/2")


def test_a_sweep_directory_refuses_another_scale_or_overrides(sweep: Path):
    with pytest.raises(UsageError, match="scale='cpu'"):
        harness.run_sweep(sweep, [TASK], SEEDS, ["awac", "mb2po"], "cpu")


def test_overrides_are_checked_and_parsed():
    base = paper_config(TASK)
    parsed = harness.parse_overrides(
        ["dynamics.early_stopping=True", "awac.num_steps=1000", "mb2po.uncertainty=max_frobenius",
         "awac.hidden_dims=(64, 64)"], base)
    assert parsed == {"dynamics.early_stopping": True, "awac.num_steps": 1000,
                      "mb2po.uncertainty": "max_frobenius", "awac.hidden_dims": (64, 64)}
    with pytest.raises(UsageError, match="awac has no field 'num_stepz'"):
        harness.parse_overrides(["awac.num_stepz=3"], base)
    with pytest.raises(UsageError, match="FIELD=VALUE"):
        harness.parse_overrides(["awac.num_steps"], base)
    config = harness.task_config(TASK, "cpu", parsed, {TASK: "hdf5:/data/x.hdf5"})
    assert config.awac.num_steps == 1000 and config.dynamics.early_stopping
    assert config.dataset == "hdf5:/data/x.hdf5"
    assert config.mb2po.omega == 0.01  # the task's paper value survives the scale


def test_bootstrap_interval_against_its_definition():
    low, high = harness.bootstrap_interval([2.0, 2.0, 2.0])
    assert low == high == 2.0
    diffs = [1.0, 5.0, 12.0]
    low, high = harness.bootstrap_interval(diffs, num_resamples=20_000)
    # Independent reference: the exact distribution of the resampled mean
    # over all 27 equally likely resamples of 3 seeds.
    grid = np.array(np.meshgrid(diffs, diffs, diffs)).reshape(3, -1).mean(axis=0)
    assert low == pytest.approx(np.quantile(grid, 0.025, method="inverted_cdf"), abs=0.5)
    assert high == pytest.approx(np.quantile(grid, 0.975, method="inverted_cdf"), abs=0.5)
    assert low < np.mean(diffs) < high
    assert all(math.isnan(v) for v in harness.bootstrap_interval([3.0]))


def test_lift_pairs_seeds():
    records = [
        {"task": TASK, "seed": s, "arm": arm, "status": "done", "final_score": score}
        for s, arm, score in [(0, "awac", 10.0), (0, "mb2po", 25.0), (1, "awac", 20.0),
                              (1, "mb2po", 21.0), (2, "awac", 5.0)]  # seed 2 has no MB2PO
    ]
    mean, (low, high), seeds = harness.lift(records, TASK)
    assert seeds == [0, 1] and mean == pytest.approx(8.0)
    assert 1.0 <= low <= high <= 15.0


def test_dataset_scores_count_episodes_and_returns(monkeypatch):
    from mb2po_jax.pipeline import PreparedData
    from mb2po_jax.transitions import Transitions

    rewards = np.array([1, 1, 1, 2, 2, 3, 3, 3, 3], np.float32)
    terminals = np.array([0, 0, 1, 0, 0, 0, 0, 0, 0], np.float32)
    timeouts = np.array([0, 0, 0, 0, 1, 0, 0, 0, 0], np.float32)  # last episode cut
    zeros = np.zeros((9, 2), np.float32)
    transitions = Transitions(observations=zeros, actions=zeros, rewards=rewards,
                              next_observations=zeros, terminals=terminals, timeouts=timeouts)
    data = PreparedData(transitions,
                        info=type("Info", (), {"source": "hdf5:/x"})(), env_id="Hopper-v5",
                        ref_scores=(0.0, 100.0))
    monkeypatch.setattr(cells, "prepare_dataset", lambda config: data)
    scores = harness.dataset_scores(None)
    assert scores["dataset_episodes"] == 3
    assert scores["dataset_episode_score"] == pytest.approx(np.mean([3.0, 4.0, 12.0]))
    assert scores["behaviour_score"] is None


def test_sweep_identity_ignores_display_only_overrides(tmp_path: Path):
    sweep_module._write_sweep_file(tmp_path, [TASK], [0], ["awac"], "cpu", {}, {})
    # Another shard with its progress bar off joins the same sweep, seeds merge.
    sweep_module._write_sweep_file(tmp_path, [TASK], [1], ["awac"], "cpu",
                                {"train.progress_bar": False}, {})
    sweep = json.loads((tmp_path / harness.SWEEP_FILE).read_text())
    assert sweep["seeds"] == [0, 1] and sweep["overrides"] == {}
    with pytest.raises(UsageError, match="awac.num_steps"):
        sweep_module._write_sweep_file(tmp_path, [TASK], [1], ["awac"], "cpu",
                                    {"awac.num_steps": 5}, {})


def _fake_cells(monkeypatch, error_for) -> list[str]:
    """Fakes every cell (for tests of the scheduling only): a cell raises
    ``error_for(cell)`` where that is not None, else is recorded done.
    Returns the labels of the cells run, in order."""
    ran = []

    def fake_cell(cell, config, final_episodes, arms):
        error = error_for(cell)
        if error is not None:
            raise error
        ran.append(cell.label)
        record = {"task": cell.task, "seed": cell.seed, "arm": cell.arm, "status": "done"}
        cells._write_cell(cell.workdir, record)
        return record

    monkeypatch.setattr(cells, "_run_cell_locked", fake_cell)
    monkeypatch.setattr(sweep_module, "write_report", lambda root: None)
    return ran


def test_any_shard_leaves_busy_cells_and_missing_data_for_later(tmp_path: Path, monkeypatch):
    """--shard=any: every process walks every unit; a cell another process
    holds is left to it (and so are the arms of a unit whose pretraining is
    unfinished); a task with no dataset does not stop the others and is
    reported at the end. Cells are faked: this checks the scheduling only."""
    import fcntl

    from mb2po_jax.data import DatasetNotFoundError

    ran = _fake_cells(monkeypatch, lambda cell: (
        DatasetNotFoundError("no walker2d-mixed dataset here")
        if cell.task == "walker2d-mixed" and "walker" not in ran else None))
    busy = harness.unit_dir(tmp_path, "hopper-mixed", 1) / harness.PRETRAIN
    busy.mkdir(parents=True)
    holder = open(busy / ".cell-lock", "a+")  # another process training it
    fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        with pytest.raises(DatasetNotFoundError, match=r"walker2d-mixed: no walker2d-mixed dataset"):
            harness.run_sweep(tmp_path, ["hopper-mixed", "walker2d-mixed"], [0, 1], ["awac"],
                                "cpu", shard=None, seed_programs="each")
    finally:
        fcntl.flock(holder, fcntl.LOCK_UN)
        holder.close()
    assert ran == ["hopper-mixed seed 0 pretrain", "hopper-mixed seed 0 awac"]
    assert harness.read_cell(busy) is None  # left to its holder, arms not started
    ran.append("walker")  # the dataset was made; the same command finishes the grid
    records = harness.run_sweep(tmp_path, ["hopper-mixed", "walker2d-mixed"], [0, 1],
                                  ["awac"], "cpu", shard=None, seed_programs="each")
    assert [r["status"] for r in records] == ["done"] * 8
    assert ran[3:] == ["hopper-mixed seed 1 pretrain", "hopper-mixed seed 1 awac",
                       "walker2d-mixed seed 0 pretrain", "walker2d-mixed seed 0 awac",
                       "walker2d-mixed seed 1 pretrain", "walker2d-mixed seed 1 awac"]


def test_a_cell_this_machine_refuses_stays_pending_and_the_sweep_goes_on(
        tmp_path: Path, monkeypatch):
    """A pre-flight refusal (memory, disk) is about the machine, not the
    method: the cell is not recorded (a larger machine or the named fix runs
    it later), the other cells run, and the sweep ends with the message."""
    from mb2po_jax.pipeline import ResourceError

    refuse = {"hopper-mixed seed 0 mb2po"}
    ran = _fake_cells(monkeypatch, lambda cell: (
        ResourceError("The mb2po model buffer (...) exceeds 1.0 GB, test limit.")
        if cell.label in refuse else None))
    grid = dict(tasks=[TASK], seeds=[0, 1], arms=["awac", "mb2po"], scale="cpu",
                seed_programs="each")
    with pytest.raises(ResourceError, match=r"refused these cells.*\n  hopper-mixed seed 0 "
                       r"mb2po: The mb2po model buffer"):
        harness.run_sweep(tmp_path, **grid)
    assert ran == [f"{TASK} seed 0 pretrain", f"{TASK} seed 0 awac", f"{TASK} seed 1 pretrain",
                   f"{TASK} seed 1 awac", f"{TASK} seed 1 mb2po"]
    assert harness.read_cell(harness.unit_dir(tmp_path, TASK, 0) / "mb2po") is None
    refuse.clear()  # e.g. fewer seeds per program, or a larger machine
    records = harness.run_sweep(tmp_path, **grid)
    assert [r["status"] for r in records] == ["done"] * 6
    assert ran[5:] == [f"{TASK} seed 0 mb2po"]


def test_seeds_as_one_vmapped_program_give_per_seed_rows(tmp_path: Path, sweep: Path):
    # A new sweep of consecutive seeds runs them as one program per cell
    # (seed_programs='auto' -> 'one'); the report is still per seed.
    records = harness.run_sweep(tmp_path, [TASK], SEEDS, ["awac", "mb2po"], "smoke")
    assert [r["status"] for r in records] == ["done"] * 3
    assert json.loads((tmp_path / "sweep.json").read_text())["seed_programs"] == "one"
    unit = tmp_path / TASK / "seeds0-1"
    assert sorted(p.name for p in unit.iterdir()) == ["awac", "mb2po", "pretrain"]
    rows, separate = _rows(tmp_path), _rows(sweep)
    key = lambda r: (r["seed"], r["arm"])  # noqa: E731
    assert sorted(map(key, rows)) == sorted(map(key, separate))
    for row in rows:
        assert row["status"] == "done" and row["seeds_in_program"] == "2"
        assert row["final_score"] and row["best_periodic_score"]
    by_key = {key(r): r for r in rows}
    for seed in ("0", "1"):  # the fair control holds per seed
        assert by_key[(seed, "awac")]["total_updates"] == by_key[(seed, "mb2po")]["total_updates"]
        assert by_key[(seed, "mb2po")]["total_updates"] == {key(r): r for r in separate}[
            (seed, "mb2po")]["total_updates"]
    assert (tmp_path / harness.TABLE_FILE).is_file()
    assert (tmp_path / f"{TASK}.png").stat().st_size > 0
    # The layout is the sweep's: another choice is refused, not mixed in.
    with pytest.raises(UsageError, match="seed_programs=one"):
        harness.run_sweep(tmp_path, [TASK], SEEDS, ["awac"], "smoke", seed_programs="each")
    with pytest.raises(UsageError, match="consecutive"):
        harness.plan(tmp_path, [TASK], [0, 2], ["awac"], vmap_seeds=True)
    assert harness.resolve_seed_programs(tmp_path / "new", "auto", [0, 2]) == "each"


def test_a_variant_arm_reuses_the_pretraining_and_applies_its_overrides(tmp_path: Path,
                                                                       sweep: Path):
    """--variant adds an MB2PO arm with overrides to an existing sweep: only
    its cells run (pretraining and the other arms are reused), from the same
    pretrained checkpoint, with the control's update count, and the report
    gives its lift over the control in a table of its own."""
    import shutil

    root = tmp_path / "sweep"
    shutil.copytree(sweep, root)
    name, overrides = harness.parse_variant("lam0:mb2po.penalty_coef=0.0",
                                              paper_config(TASK))
    assert (name, overrides) == ("lam0", {"mb2po.penalty_coef": 0.0})
    ran = []
    real_run_cell = harness.run_cell
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sweep_module, "run_cell",
                      lambda cell, *a: ran.append(cell.label) or real_run_cell(cell, *a))
        records = harness.run_sweep(root, [TASK], SEEDS, ["awac", "mb2po", "lam0"], "smoke",
                                      variants={name: overrides})
    assert ran == [f"{TASK} seed 0 lam0", f"{TASK} seed 1 lam0"]
    assert [r["status"] for r in records] == ["done"] * 8
    for seed in SEEDS:
        unit = harness.unit_dir(root, TASK, seed)
        config = json.loads((unit / "lam0" / "run.json").read_text())["config"]
        assert config["mb2po"]["penalty_coef"] == 0.0
        assert config["init"]["awac_workdir"] == str(unit / harness.PRETRAIN)
        # No penalty: the penalised model reward is the model reward, which
        # the default arm (lambda = 1) does not give.
        for arm, equal in (("lam0", True), ("mb2po", False)):
            with (unit / arm / "mb2po" / "metrics_train.csv").open() as f:
                row = next(csv.DictReader(f))
            same = math.isclose(float(row["rollout_penalized_reward_mean"]),
                                float(row["rollout_model_reward_mean"]), rel_tol=1e-6)
            assert same == equal, arm
    rows = {(r["seed"], r["arm"]): r for r in _rows(root)}
    for seed in ("0", "1"):
        assert rows[(seed, "lam0")]["total_updates"] == rows[(seed, "awac")]["total_updates"]
    table = (root / harness.TABLE_FILE).read_text()
    label = "AWAC+MB2PO, lam0 (mb2po.penalty_coef=0.0)"
    assert f"| {TASK} | {label} | 2 |" in table
    lift_table = table[table.index("## Lift of each variant"):]
    variant_row = next(line for line in lift_table.splitlines()
                       if line.startswith(f"| {TASK} | {label} | 2 | "))
    control = {r["seed"]: float(r["final_score"]) for r in rows.values() if r["arm"] == "awac"}
    variant = {r["seed"]: float(r["final_score"]) for r in rows.values() if r["arm"] == "lam0"}
    expected = np.mean([variant[s] - control[s] for s in control])
    assert f"{expected:+.1f}" == variant_row.split("|")[4].strip()
    # Named in a later command, a recorded variant is rebuilt from sweep.json:
    # with its cell record gone, the cell reruns, and its finished run accepts
    # the rebuilt config (a different one would be refused).
    (harness.unit_dir(root, TASK, 1) / "lam0" / harness.CELL_FILE).unlink()
    assert harness.run_sweep(root, [TASK], SEEDS, ["lam0"], "smoke")[-1]["status"] == "done"
    with pytest.raises(UsageError, match="already has a variant 'lam0'"):
        harness.run_sweep(root, [TASK], SEEDS, ["lam0"], "smoke",
                            variants={"lam0": {"mb2po.penalty_coef": 0.5}})


def test_a_variant_can_freeze_the_pretrained_critic(tmp_path: Path, sweep: Path):
    """An AWAC update-rule field as a variant acts on the MB2PO arm only:
    awac.critic_lr=0 leaves the critic exactly as pretrained through all of
    fine-tuning while the policy still moves (the frozen-critic ablation's control)."""
    import shutil

    import jax

    from mb2po_jax.pipeline import restore_policy

    root = tmp_path / "sweep"
    shutil.copytree(sweep, root)
    name, overrides = harness.parse_variant("frozen:awac.critic_lr=0.0", paper_config(TASK))
    records = harness.run_sweep(root, [TASK], [0], [name], "smoke", variants={name: overrides})
    assert [r["status"] for r in records if r["arm"] == name] == ["done"]
    unit = harness.unit_dir(root, TASK, 0)
    pre = restore_policy(unit / harness.PRETRAIN, phase="awac")[1]
    for arm, frozen in ((name, True), ("mb2po", False)):
        _, state, config, _, _, step = restore_policy(unit / arm, phase="mb2po")
        assert step == config.mb2po.num_iterations
        same = jax.tree_util.tree_map(lambda a, b: bool(np.array_equal(a, b)),
                                      pre.critic_params, state.critic_params)
        assert all(jax.tree_util.tree_leaves(same)) == frozen, arm
        unchanged = jax.tree_util.tree_map(lambda a, b: bool(np.array_equal(a, b)),
                                           pre.policy_params, state.policy_params)
        assert not all(jax.tree_util.tree_leaves(unchanged)), arm
    # The control arm of the same unit was not touched by the variant.
    control = json.loads((unit / "awac" / "run.json").read_text())["config"]
    assert control["awac"]["critic_lr"] == paper_config(TASK).awac.critic_lr


def test_variant_definitions_are_checked(tmp_path: Path):
    base = paper_config(TASK)
    assert harness.parse_variant(
        "mopo_like:dynamics.nll_reduction=mean,dynamics.early_stopping=True", base) == (
        "mopo_like", {"dynamics.nll_reduction": "mean", "dynamics.early_stopping": True})
    assert harness.parse_variant("small:dynamics.hidden_dims=(64,64),mb2po.horizon=2", base) == (
        "small", {"dynamics.hidden_dims": (64, 64), "mb2po.horizon": 2})
    with pytest.raises(UsageError, match="NAME:FIELD=VALUE"):
        harness.parse_variant("lam0", base)
    with pytest.raises(UsageError, match="valid penalties"):  # checked before anything runs
        harness.run_sweep(tmp_path, [TASK], [0], ["bad"], "smoke",
                            variants={"bad": {"mb2po.uncertainty": "nope"}})
    assert not (tmp_path / harness.SWEEP_FILE).exists()
    # The AWAC update rule fine-tuning reads may vary (the checkpoint restores
    # unchanged); the networks' fields, and AWAC's own temperature (mb2po.alpha
    # replaces it in fine-tuning), may not.
    assert harness.parse_variant("frozen:awac.critic_lr=0.0,awac.target_selection=target_min",
                                   base) == (
        "frozen", {"awac.critic_lr": 0.0, "awac.target_selection": "target_min"})
    # The advantage's space and the online control are fine-tuning arms too.
    assert harness.parse_variant("hspace:awac.advantage_space=h", base) == (
        "hspace", {"awac.advantage_space": "h"})
    assert harness.parse_variant("online:mb2po.model=online,mb2po.rollout_samples=5000",
                                   base) == (
        "online", {"mb2po.model": "online", "mb2po.rollout_samples": 5000})
    for refused in ("lsm:awac.log_std_max=0.0", "wide:awac.hidden_dims=(64,64)",
                    "ln:awac.critic_norm=layernorm",
                    "t2:awac.alpha=2.0", "longer:awac.num_steps=10"):
        with pytest.raises(UsageError, match="not a field of the MB2PO arm's own phases.*"
                                             "awac.critic_lr"):
            harness.parse_variant(refused, base)
    with pytest.raises(UsageError, match="the control arm matches"):
        harness.parse_variant("long:mb2po.num_iterations=400", base)
    with pytest.raises(UsageError, match="must be letters"):
        harness.parse_variant("mb2po:mb2po.penalty_coef=0.5", base)
    with pytest.raises(UsageError, match="dynamics has no field"):
        harness.parse_variant("x:dynamics.nll_reductin=mean", base)
    with pytest.raises(UsageError, match="unknown \\['lam9'\\]"):
        harness.run_sweep(tmp_path, [TASK], [0], ["awac", "lam9"], "smoke")


def test_a_mopo_arm_runs_from_scratch_beside_the_control(tmp_path: Path, sweep: Path):
    """--arms=...,mopo adds MOPO (the paper's main comparison) on the same data:
    only its cells run, as algorithm=mopo without the pretrained checkpoint,
    with its own update count on the curves' axis, and the report lists it
    with the paper's MOPO column and its lift over the control."""
    import shutil

    root = tmp_path / "sweep"
    shutil.copytree(sweep, root)
    ran = []
    real_run_cell = harness.run_cell
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sweep_module, "run_cell",
                      lambda cell, *a: ran.append(cell.label) or real_run_cell(cell, *a))
        records = harness.run_sweep(root, [TASK], SEEDS, ["awac", "mb2po", "mopo"], "smoke")
    assert ran == [f"{TASK} seed 0 mopo", f"{TASK} seed 1 mopo"]
    assert [r["status"] for r in records] == ["done"] * 8
    smoke = harness.task_config(TASK, "smoke", {}, {})
    updates = smoke.mopo.num_iterations * smoke.mopo.updates_per_iteration
    for seed in SEEDS:
        unit = harness.unit_dir(root, TASK, seed)
        config = json.loads((unit / "mopo" / "run.json").read_text())["config"]
        assert config["algorithm"] == "mopo" and not config["init"]["awac_workdir"]
        assert (unit / "mopo" / "mopo" / "metrics_eval.csv").is_file()
        assert not (unit / "mopo" / "awac").exists()  # no AWAC phase, nothing pretrained
    rows = {(r["seed"], r["arm"]): r for r in _rows(root)}
    for seed in ("0", "1"):
        row = rows[(seed, "mopo")]
        assert (int(row["pretrain_updates"]), int(row["finetune_updates"])) == (0, updates)
        assert int(row["total_updates"]) == updates
        assert int(row["batch_size"]) == smoke.mopo.batch_size
    # Its periodic evaluations sit on the updates axis from 0 (not after pretraining).
    cell = harness.read_cell(harness.unit_dir(root, TASK, 0) / "mopo")
    curve = harness.eval_curve(harness.unit_dir(root, TASK, 0) / "mopo", cell)
    assert [x for x, _ in curve] == [smoke.mopo.updates_per_iteration * i
                                     for i in range(smoke.mopo.eval_every,
                                                    smoke.mopo.num_iterations + 1,
                                                    smoke.mopo.eval_every)]
    table = (root / harness.TABLE_FILE).read_text()
    mopo_row = next(line for line in table.splitlines()
                    if line.startswith(f"| {TASK} | MOPO (from scratch) | 2 |"))
    assert "MOPO 92.5 ± 6.3" in mopo_row  # the paper's Table 1 column
    lift_table = table[table.index("## Lift of each variant"):]
    lift_row = next(line for line in lift_table.splitlines()
                    if line.startswith(f"| {TASK} | MOPO (from scratch) | 2 | "))
    control = {s: float(rows[(s, "awac")]["final_score"]) for s in ("0", "1")}
    mopo = {s: float(rows[(s, "mopo")]["final_score"]) for s in ("0", "1")}
    expected = np.mean([mopo[s] - control[s] for s in control])
    assert f"{expected:+.1f}" == lift_row.split("|")[4].strip()


def test_tables_merge_from_several_sweeps_csvs_one_file_per_task(tmp_path: Path):
    def rows(task, fingerprint, scores):
        return [{"task": task, "seed": seed, "arm": arm, "status": "done", "final_score": score,
                 "final_episodes": 50, "dataset_fingerprint": fingerprint, "commit": "abc"}
                for seed, arm, score in scores]
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    harness.write_csv(rows("hopper-mixed", "f1", [(0, "pretrain", 10.0), (0, "awac", 12.0),
                                                       (0, "mb2po", 20.0), (1, "awac", 11.0),
                                                       (1, "mb2po", 15.0), (1, "frozen", 9.0)]),
                           first)
    harness.write_csv(rows("hopper-mixed", "f9", [(0, "awac", 1.0), (0, "mb2po", 2.0)])
                           + rows("walker2d-mixed", "f2", [(0, "awac", 20.0), (0, "mb2po", 3.0),
                                                           (1, "awac", 18.0), (1, "mb2po", 4.0)]),
                           second)
    out = tmp_path / "merged"
    table = harness.write_merged_report(
        out, [(first, None), (second, ["walker2d-mixed"])], ["awac", "mb2po"], "cpu").read_text()
    merged = _rows(out)
    # hopper-mixed from the first file only (the second's hopper rows belong to
    # another pretraining), walker2d from the second; the variant arm dropped.
    assert [(r["task"], r["seed"], r["arm"]) for r in merged] == [
        ("hopper-mixed", "0", "pretrain"), ("hopper-mixed", "0", "awac"),
        ("hopper-mixed", "0", "mb2po"), ("hopper-mixed", "1", "awac"),
        ("hopper-mixed", "1", "mb2po"), ("walker2d-mixed", "0", "awac"),
        ("walker2d-mixed", "0", "mb2po"), ("walker2d-mixed", "1", "awac"),
        ("walker2d-mixed", "1", "mb2po")]
    assert "| hopper-mixed | 2 | +6.0 |" in table and "+8.0, +4.0" in table
    assert "| walker2d-mixed | 2 | -15.5 |" in table
    assert "frozen" not in table and str(second) in table
    assert (out / harness.SUMMARY_FILE).stat().st_size > 0
    with pytest.raises(ValueError, match="walker2d-mixed is in both"):
        harness.merge_results([(second, ["walker2d-mixed"]), (second, None)], ["awac"])
    with pytest.raises(ValueError, match="no rows for"):
        harness.merge_results([(first, ["walker2d-mixed"])], ["awac"])
    mixed = tmp_path / "mixed.csv"
    harness.write_csv(rows("hopper-mixed", "f1", [(0, "awac", 1.0)])
                           + rows("hopper-mixed", "f3", [(0, "mb2po", 1.0)]), mixed)
    with pytest.raises(ValueError, match="2 datasets"):
        harness.merge_results([(mixed, None)], ["awac", "mb2po"])
    # One scale per table: a row's recorded scale must agree with --scale.
    paper = tmp_path / "paper.csv"
    harness.write_csv([{**r, "scale": "paper"} for r in rows("hopper-medium", "f4",
                                                                   [(0, "awac", 1.0)])], paper)
    with pytest.raises(ValueError, match="scale"):
        harness.write_merged_report(tmp_path / "m2", [(first, None), (paper, None)],
                                         ["awac"], "cpu")
    # Never over a sweep's own report.
    (out / harness.SWEEP_FILE).write_text("{}")
    with pytest.raises(ValueError, match="sweep directory"):
        harness.write_merged_report(out, [(first, None)], ["awac"], "cpu")
