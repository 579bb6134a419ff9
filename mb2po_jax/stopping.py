"""Stopping a run cleanly: at a wall-clock limit, or on SIGTERM / SIGUSR1.

Cluster schedulers (Slurm sends SIGTERM, or SIGUSR1 with ``--signal``, before
a job's end), preemptible machines and shared workstations end jobs from
outside. A run asked to stop finishes the chunk in flight, saves a checkpoint
at that boundary and raises :class:`StoppedAtLimit`; the command lines exit 0
and re-running the same command continues with the same numbers as an
uninterrupted run. With a time limit, the runner stops BEFORE a chunk that
would end past the limit, estimating a chunk's wall time (its evaluation and
checkpoint included) by the longest one seen so far in the process.

The control is process-wide (signals are), :data:`STOP`; the runner
(:func:`mb2po_jax.runner.run_phase`) asks it at every chunk boundary.
"""

from __future__ import annotations

import re
import signal
import time
from typing import Callable

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class StoppedAtLimit(Exception):
    """A run stopped at a time limit or on a signal; a checkpoint was saved."""

    def __init__(self, phase: str, step: int, reason: str) -> None:
        self.phase, self.step, self.reason = phase, step, reason
        super().__init__(
            f"stopped at the {reason} (phase '{phase}', step {step}, checkpoint saved); "
            f"re-run the same command to continue.")


class StopControl:
    """A deadline and a pending stop request.

    ``clock`` is ``time.monotonic`` (tests pass their own)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.deadline: float | None = None
        self.requested: str | None = None
        self.longest_chunk = 0.0

    def set_time_limit(self, seconds: float | None) -> None:
        """Stop ``seconds`` from now (None: no limit)."""
        self.deadline = None if seconds is None else self.clock() + float(seconds)

    def request(self, reason: str) -> None:
        self.requested = reason

    def chunk_took(self, seconds: float) -> None:
        self.longest_chunk = max(self.longest_chunk, seconds)

    def reason(self) -> str | None:
        """Why the run should stop before its next chunk, or None."""
        if self.requested:
            return self.requested
        if self.deadline is not None and self.clock() + self.longest_chunk >= self.deadline:
            return "time limit"
        return None

    def reset(self) -> None:
        self.deadline, self.requested, self.longest_chunk = None, None, 0.0

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGUSR1 request a stop at the next chunk boundary."""
        for number in STOP_SIGNALS:
            name = signal.Signals(number).name
            signal.signal(number, lambda *_, name=name: self.request(f"{name} signal"))


STOP = StopControl()

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """``"90m"``, ``"2h"``, ``"1h30m"``, ``"45s"`` or plain seconds -> seconds.

    Raises:
        ValueError: naming the value and the accepted forms.
    """
    text = str(text).strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        seconds = float(text)
    else:
        parts = re.findall(r"(\d+(?:\.\d+)?)([smhd])", text)
        if not parts or "".join(n + u for n, u in parts) != text:
            raise ValueError(f"--time_limit={text!r}: expected a duration such as 45s, 90m, 2h, "
                             f"1h30m or plain seconds.")
        seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if seconds <= 0:
        raise ValueError(f"--time_limit={text!r}: must be positive.")
    return seconds
