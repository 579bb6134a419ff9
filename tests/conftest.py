"""Suite-wide setup: one persistent XLA compilation cache for the whole run.

Compilation is most of this suite's time on a CPU (measured at smoke scale:
467 of 702 s of a 2-seed reproduction sweep), and many tests compile the very
same programs: every seed of a sweep, the single-seed and vmapped runs of the
same tiny config, the resumed and the uninterrupted run. XLA's persistent
cache keys an executable by its program and compile options, so a hit returns
exactly what a fresh compilation would: the numbers are unchanged, only the
compiler runs less. The directory is new for every pytest session (CI's clean
checkout gets no head start), and it is passed to subprocesses through the
environment so that the CLI tests share it. Set MB2PO_TEST_COMPILATION_CACHE to
keep a cache between local runs.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import jax

_CACHE_ENV = "MB2PO_TEST_COMPILATION_CACHE"
_made_dir: str | None = None


def pytest_configure(config) -> None:  # noqa: ARG001 (pytest's hook signature)
    global _made_dir
    cache_dir = os.environ.get(_CACHE_ENV)
    if not cache_dir:
        cache_dir = _made_dir = tempfile.mkdtemp(prefix="mb2po-jax-test-xla-cache-")
    # Subprocesses (the CLI tests) read the same settings from the environment.
    os.environ["JAX_COMPILATION_CACHE_DIR"] = cache_dir
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
    jax.config.update("jax_compilation_cache_dir", cache_dir)
    # Cache every program: the suite's are small and compile in well under the
    # default 1 s threshold on a fast machine, yet repeat hundreds of times.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def pytest_unconfigure(config) -> None:  # noqa: ARG001
    if _made_dir:
        shutil.rmtree(_made_dir, ignore_errors=True)
