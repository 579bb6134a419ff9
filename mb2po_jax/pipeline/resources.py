"""Pre-flights: refuse a run this machine cannot hold before any training
(model buffers past memory, fine-tuning checkpoints past the disk)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import jax

from mb2po_jax import mb2po, seeds
from mb2po_jax.pipeline.settings import Settings


def buffer_bytes(cfg: mb2po.FineTuningConfig, obs_dim: int, act_dim: int) -> int:
    """One seed's model buffer: K x S float32 rows of (s, a, r, s', terminal, timeout)."""
    return cfg.buffer_iterations * cfg.rollout_samples * 4 * (2 * obs_dim + act_dim + 3)


def _memory_limit() -> tuple[int, int, str, bool] | None:
    """``(bytes one device can hold, devices, what the limit is, exact)``, or
    None where it cannot be read. A GPU's is its allocator's limit (75 % of
    the device by default); it is exact with preallocation off or a memory
    fraction set, while a default preallocating pool may grow past it (newer
    JAX). CPU devices share the host's available memory."""
    devices = jax.devices()
    stats = devices[0].memory_stats()
    if stats and stats.get("bytes_limit"):
        exact = (os.environ.get("XLA_PYTHON_CLIENT_PREALLOCATE", "").lower() == "false"
                 or any(name in os.environ for name in ("XLA_PYTHON_CLIENT_MEM_FRACTION",
                                                         "XLA_CLIENT_MEM_FRACTION")))
        return (int(stats["bytes_limit"]), len(devices),
                f"the {devices[0].device_kind} allocator's limit (XLA_PYTHON_CLIENT_MEM_FRACTION "
                f"raises it)", exact)
    try:
        with open("/proc/meminfo") as file:
            available = next(int(line.split()[1]) * 1024 for line in file
                             if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError):
        return None
    return available, 1, "the host's available memory (MemAvailable)", True


def buffer_memory_problem(settings: Settings, obs_dim: int,
                          act_dim: int) -> tuple[str, bool] | None:
    """``(message, fatal)`` when ``algorithm``'s model buffers would not fit
    in memory (fatal where the limit is exact: allocating them would fail,
    after pretraining has run), or fill more than 80 % of it (a warning: the
    networks, the rollout and the dataset need room too); None otherwise or
    where the limit is unknown. Seeds are split over the devices as evenly
    as ``num_seeds`` allows."""
    limit = _memory_limit()
    if limit is None:
        return None
    capacity, num_devices, what, exact = limit
    algorithm = settings.fine_tuning.section
    cfg, seeds_ = settings.fine_tuning.loop, max(1, settings.num_seeds)
    per_device = seeds_ // seeds.devices_used(seeds_, num_devices)
    needed = buffer_bytes(cfg, obs_dim, act_dim) * per_device
    if needed <= 0.8 * capacity:
        return None
    gb = lambda n: f"{n / 1e9:.1f} GB"  # noqa: E731
    message = (
        f"The {algorithm} model buffer ({cfg.buffer_iterations} x {cfg.rollout_samples:,} rows "
        f"x {per_device} seed(s) per device = {gb(needed)}) "
        f"{'exceeds' if needed > capacity else 'takes more than 80 % of'} {gb(capacity)}, "
        f"{what}. Run fewer seeds per program (--config.num_seeds), lower "
        f"--config.{algorithm}.buffer_iterations or --config.{algorithm}.rollout_samples "
        f"(a deviation from the paper), or use a device with more memory.")
    return message, exact and needed > capacity


def checkpoint_disk_problem(settings: Settings, obs_dim: int, act_dim: int,
                            workdir: Path) -> str | None:
    """Why ``algorithm``'s checkpoints would not fit on the workdir's disk,
    or None. Only ``buffer_checkpoint='rows'`` can be large: each checkpoint
    holds the K x S-row model buffer of every seed, ``keep_checkpoints`` are
    kept and one more is written before the oldest goes."""
    algorithm, cfg = settings.fine_tuning.section, settings.fine_tuning.loop
    if cfg.buffer_checkpoint != "rows":
        return None
    seeds_ = max(1, settings.num_seeds)
    per_checkpoint = buffer_bytes(cfg, obs_dim, act_dim) * seeds_
    directory = Path(workdir) / "checkpoints" / algorithm
    existing = sum(f.stat().st_size for f in directory.rglob("*") if f.is_file()) \
        if directory.is_dir() else 0
    needed = per_checkpoint * (settings.fine_tuning.keep_checkpoints + 1) - existing
    free = shutil.disk_usage(workdir).free
    if needed <= free:
        return None
    gb = lambda n: f"{n / 1e9:.1f} GB"  # noqa: E731
    return (
        f"--config.{algorithm}.buffer_checkpoint='rows': each {algorithm} checkpoint holds the "
        f"model buffer ({cfg.buffer_iterations} x {cfg.rollout_samples:,} rows x {seeds_} "
        f"seed(s) = {gb(per_checkpoint)}), and with {algorithm}.keep_checkpoints="
        f"{settings.fine_tuning.keep_checkpoints} plus the one being written the run needs {gb(needed)} more, "
        f"but the disk of {workdir} has {gb(free)} free. Use "
        f"--config.{algorithm}.buffer_checkpoint=regenerate (checkpoints keep each slot's "
        f"policy instead and roll its rows out again on restore), or a workdir on a larger "
        f"disk.")
