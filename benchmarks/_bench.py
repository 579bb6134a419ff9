"""Helpers shared by the benchmark scripts: machine facts, timing, a matmul
peak measured in the same process, analytic MLP FLOP counts, peak memory."""

from __future__ import annotations

import os
import platform
import threading
import time

import jax
import jax.numpy as jnp
import numpy as np

from mb2po_jax.machine import machine_description


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def machine_info() -> dict:
    device = jax.devices()[0]
    return {
        "jax_version": jax.__version__,
        "backend": jax.default_backend(),
        "device": getattr(device, "device_kind", str(device)),
        # cpu_model, cpu_count and (Linux) cpu_family_model, avx512f, arch
        **machine_description(),
        "platform": platform.platform(),
        "load_average": load_average(),
    }


def time_calls(fn, args, repeats: int) -> list[float]:
    """Wall-clock seconds of `repeats` calls of an already compiled fn."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return times


def matmul_peak(size: int, repeats: int) -> float:
    """Best-of-N GFLOP/s of a jitted float32 [size, size] x [size, size] dot."""
    ka, kb = jax.random.split(jax.random.PRNGKey(1))
    a = jax.random.normal(ka, (size, size), jnp.float32)
    b = jax.random.normal(kb, (size, size), jnp.float32)
    f = jax.jit(jnp.dot)
    jax.block_until_ready(f(a, b))
    best = min(time_calls(f, (a, b), repeats))
    return 2.0 * size**3 / best / 1e9


def layer_chain_peak(rows: int, width: int, depth: int, repeats: int) -> float:
    """Best-of-N GFLOP/s of `depth` chained ReLU(x @ W) layers, x [rows, width]:
    the matmul shape that dominates the networks here."""
    kx, kw = jax.random.split(jax.random.PRNGKey(2))
    x = jax.random.normal(kx, (rows, width), jnp.float32)
    w = jax.random.normal(kw, (width, width), jnp.float32) / np.sqrt(width)

    @jax.jit
    def f(x, w):
        return jax.lax.fori_loop(0, depth, lambda _, h: jax.nn.relu(h @ w), x)

    jax.block_until_ready(f(x, w))
    best = min(time_calls(f, (x, w), repeats))
    return 2.0 * rows * width * width * depth / best / 1e9


def mlp_layer_dims(in_dim: int, hidden: tuple[int, ...], out_dim: int) -> list[tuple[int, int]]:
    dims = [in_dim, *hidden, out_dim]
    return list(zip(dims[:-1], dims[1:]))


def mlp_forward_flops(rows: int, layers) -> int:
    return sum(2 * rows * k * n for k, n in layers)


def mlp_backward_flops(rows: int, layers) -> int:
    """dW for every layer (2mkn) + dX for every layer but the first (the
    network input needs no gradient): ~2x forward."""
    dw = sum(2 * rows * k * n for k, n in layers)
    dx = sum(2 * rows * k * n for k, n in layers[1:])
    return dw + dx


def current_rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRSS:
    """Samples this process's RSS every `interval` s while active; `.peak` bytes.

    ru_maxrss cannot separate a run's peak from compilation's, so we sample.
    """

    def __init__(self, interval: float = 0.005) -> None:
        self.interval, self.peak = interval, 0
        self._stop = threading.Event()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, current_rss_bytes())
            time.sleep(self.interval)

    def __enter__(self) -> "PeakRSS":
        self.peak = current_rss_bytes()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, current_rss_bytes())
