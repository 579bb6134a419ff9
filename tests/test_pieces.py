"""A sweep advanced in pieces by ``benchmarks/advance_piece.sh``, each piece
as on a machine that starts empty: a new sweep directory and a new Minari
store, the datasets carried in as one archive and the sweep as the previous
piece's export. The pieces' final numbers equal one uninterrupted sweep's."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Pretraining and MB2PO, with the paper scale's checkpoints (the model
# buffer rolled out again from each slot's policy on resume).
FLAGS = ["--tasks=hopper-mixed", "--seeds=0", "--arms=mb2po", "--scale=smoke",
         "--set=mb2po.buffer_checkpoint=regenerate", "--set=mb2po.checkpoint_every=1"]
# Every column a resumed sweep must repeat (wall time and commit aside).
SAME = ("task", "seed", "arm", "status", "final_score", "final_score_std",
        "best_periodic_score", "best_periodic_updates", "pretrain_updates", "finetune_updates",
        "total_updates", "dataset_fingerprint")


def _env(store: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "MINARI_DATASETS_PATH": str(store), "JAX_PLATFORMS": "cpu",
           "PYTHON": sys.executable, **extra}
    env.pop("MB2PO_SCALE", None)
    return env


def _rows(root: Path) -> list[dict[str, str]]:
    with (root / "results.csv").open() as f:
        return [{key: row[key] for key in SAME} for row in csv.DictReader(f)]


def test_a_sweep_advanced_in_pieces_ends_with_the_uninterrupted_numbers(tmp_path: Path) -> None:
    store = tmp_path / "store"
    straight = subprocess.run(
        [sys.executable, "-m", "experiments.reproduce", f"--workdir={tmp_path / 'straight'}",
         *FLAGS, "--set=train.progress_bar=False"],
        cwd=REPO, env=_env(store), capture_output=True, text=True, timeout=900)
    assert straight.returncode == 0, straight.stderr[-3000:]
    datasets = tmp_path / "datasets.tar.xz"  # the store the smoke sweep recorded
    with tarfile.open(datasets, "w:xz") as tar:
        for entry in store.iterdir():
            tar.add(entry, arcname=entry.name)

    # Limits growing from less than the start-up: whatever this machine's
    # speed, early pieces stop and a later one finishes.
    outcomes, previous = [], None
    for i in range(12):
        piece = tmp_path / f"piece{i}.tar.gz"
        env = _env(tmp_path / f"store{i}", DATASETS_ARCHIVE=str(datasets),
                   WHEEL_DIR=str(tmp_path / "no-wheels"), PIECE_OUT=str(piece),
                   TIME_LIMIT=f"{6 * (i + 1)}s", **({"PIECE_IN": str(previous)} if previous else {}))
        done = subprocess.run(["bash", "benchmarks/advance_piece.sh", str(tmp_path / f"w{i}"),
                               *FLAGS], cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=900)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
        outcome = json.loads(done.stdout.strip().splitlines()[-1])
        assert outcome["export_bytes"] == piece.stat().st_size > 0
        outcomes.append(outcome)
        previous = piece
        if outcome["finished"]:
            break
    assert outcomes[-1]["finished"], outcomes
    assert len(outcomes) >= 2, outcomes  # the limit did cut the sweep
    assert all("stopped at the time limit" in o["summary"] for o in outcomes[:-1]), outcomes
    assert _rows(tmp_path / f"w{len(outcomes) - 1}") == _rows(tmp_path / "straight")
