"""Tests for mb2po_jax.metrics_logger: CSV layout, resume truncation, TB, plots."""

from __future__ import annotations

import csv
import struct
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
from tensorboardX.proto import event_pb2

from mb2po_jax.metrics_logger import MetricsLogger, plot_learning_curve

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def read_tb_events(tb_dir: Path) -> list[event_pb2.Event]:
    """Parses TFRecord event files: [u64 len][u32 crc][data][u32 crc] records."""
    events = []
    for path in sorted(tb_dir.glob("events.out.tfevents.*")):
        data = path.read_bytes()
        offset = 0
        while offset < len(data):
            (length,) = struct.unpack("<Q", data[offset : offset + 8])
            payload = data[offset + 12 : offset + 12 + length]
            events.append(event_pb2.Event.FromString(payload))
            offset += 12 + length + 4
    return events


def test_csv_rows_and_scalar_types(tmp_path: Path) -> None:
    with MetricsLogger(tmp_path, use_tensorboard=False) as logger:
        logger.write(0, {"loss": np.float32(1.5), "alpha": jnp.asarray(0.25)}, "train")
        logger.write(10, {"loss": 0.75, "alpha": 2}, "train")
        logger.write(10, {"return_mean": 3.0}, "eval")

    header, rows = read_csv(tmp_path / "metrics_train.csv")
    assert header == ["step", "alpha", "loss"]
    assert [r["step"] for r in rows] == ["0", "10"]
    assert float(rows[0]["loss"]) == 1.5 and float(rows[0]["alpha"]) == 0.25
    assert float(rows[1]["loss"]) == 0.75 and float(rows[1]["alpha"]) == 2.0
    header, rows = read_csv(tmp_path / "metrics_eval.csv")
    assert header == ["step", "return_mean"] and len(rows) == 1


def test_new_keys_rewrite_with_union_header(tmp_path: Path) -> None:
    with MetricsLogger(tmp_path, use_tensorboard=False) as logger:
        logger.write(1, {"b": 1.0}, "train")
        logger.write(2, {"b": 2.0, "a": 20.0}, "train")
        logger.write(3, {"a": 30.0}, "train")  # missing key -> blank cell
        logger.write(4, {"b": 4.0, "skip": None}, "train")  # None is skipped

    header, rows = read_csv(tmp_path / "metrics_train.csv")
    assert header == ["step", "a", "b"]
    assert [(r["step"], r["a"], r["b"]) for r in rows] == [
        ("1", "", "1.0"),
        ("2", "20.0", "2.0"),
        ("3", "30.0", ""),
        ("4", "", "4.0"),
    ]


def test_rejects_non_scalar(tmp_path: Path) -> None:
    with MetricsLogger(tmp_path, use_tensorboard=False) as logger:
        with pytest.raises(TypeError, match="returns"):
            logger.write(0, {"returns": [1.0, 2.0]}, "eval")


def test_resume_drops_rows_after_checkpoint(tmp_path: Path) -> None:
    with MetricsLogger(tmp_path, use_tensorboard=False) as logger:
        for step in (0, 100, 200, 300):
            logger.write(step, {"loss": float(step)}, "train")
        for step in (100, 300):
            logger.write(step, {"return_mean": float(step)}, "eval")

    # Crash after step 300, resume from the checkpoint at step 200.
    with MetricsLogger(tmp_path, resume_step=200, use_tensorboard=False) as logger:
        _, train_rows = read_csv(tmp_path / "metrics_train.csv")
        _, eval_rows = read_csv(tmp_path / "metrics_eval.csv")
        assert [r["step"] for r in train_rows] == ["0", "100", "200"]
        assert [r["step"] for r in eval_rows] == ["100"]
        logger.write(300, {"loss": -1.0}, "train")

    _, rows = read_csv(tmp_path / "metrics_train.csv")
    assert [(r["step"], r["loss"]) for r in rows] == [
        ("0", "0.0"),
        ("100", "100.0"),
        ("200", "200.0"),
        ("300", "-1.0"),
    ]


def test_tensorboard_events(tmp_path: Path) -> None:
    with MetricsLogger(tmp_path) as logger:
        logger.write(5, {"return_mean": 12.5}, "eval")
        logger.flush()
    with MetricsLogger(tmp_path, resume_step=5) as logger:
        logger.write(6, {"return_mean": 13.0}, "eval")

    tb_dir = tmp_path / "tb"
    assert len(list(tb_dir.glob("events.out.tfevents.*"))) >= 1
    events = read_tb_events(tb_dir)
    scalars = [
        (e.step, v.tag, v.simple_value) for e in events for v in e.summary.value
    ]
    assert (5, "eval/return_mean", 12.5) in scalars
    assert (6, "eval/return_mean", 13.0) in scalars
    # The resumed writer announces a restart at resume_step + 1 so TensorBoard
    # discards stale events from the lost segment.
    assert any(e.HasField("session_log") and e.step == 6 for e in events)


def test_plot_learning_curve(tmp_path: Path) -> None:
    with MetricsLogger(tmp_path, use_tensorboard=False) as logger:
        logger.write(0, {"normalized_score": 10.0, "return_mean": 300.0}, "eval")
    # A single row must still plot.
    out = plot_learning_curve(tmp_path)
    assert out == tmp_path / "learning_curve.png"
    assert out.read_bytes()[:8] == PNG_MAGIC

    with MetricsLogger(tmp_path, use_tensorboard=False) as logger:
        logger.write(1000, {"normalized_score": 20.0, "return_mean": 600.0}, "eval")
    out = plot_learning_curve(
        tmp_path, out="plots/curve.png", extra_lines={"baseline": ([0, 1000], [15.0, 15.0])}
    )
    assert out.stat().st_size > 0 and out.read_bytes()[:8] == PNG_MAGIC


def test_plot_falls_back_to_return_mean(tmp_path: Path) -> None:
    with MetricsLogger(tmp_path, use_tensorboard=False) as logger:
        logger.write(0, {"return_mean": 1.0}, "eval")
        logger.write(1, {"return_mean": 2.0}, "eval")
    out = plot_learning_curve(tmp_path, out=tmp_path / "fallback.png")
    assert out.read_bytes()[:8] == PNG_MAGIC
    with pytest.raises(ValueError, match="missing_column"):
        plot_learning_curve(tmp_path, y="missing_column")
