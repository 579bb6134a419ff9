"""The stop control: durations, the deadline rule and the signals."""

from __future__ import annotations

import os
import signal

import pytest

from mb2po_jax import stopping


@pytest.mark.parametrize("text, seconds", [("45s", 45), ("90m", 5400), ("2h", 7200),
                                           ("1h30m", 5400), ("1d", 86400), ("600", 600),
                                           ("0.5h", 1800)])
def test_parse_duration(text, seconds):
    assert stopping.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "ten", "5 min", "1h30", "-5", "0", "0s"])
def test_parse_duration_refuses_with_the_value_and_the_forms(text):
    with pytest.raises(ValueError, match=r"--time_limit=.*(45s, 90m|positive)"):
        stopping.parse_duration(text)


def test_the_deadline_leaves_room_for_the_longest_chunk():
    now = [100.0]
    stop = stopping.StopControl(clock=lambda: now[0])
    assert stop.reason() is None  # no limit
    stop.set_time_limit(60)  # deadline 160
    stop.chunk_took(10.0)
    stop.chunk_took(4.0)  # the longest chunk counts
    now[0] = 149.0
    assert stop.reason() is None  # 149 + 10 < 160: the next chunk fits
    now[0] = 150.0
    assert stop.reason() == "time limit"  # it would end at the deadline
    stop.reset()
    assert stop.reason() is None and stop.longest_chunk == 0.0


def test_a_request_stops_whatever_the_clock():
    stop = stopping.StopControl(clock=lambda: 0.0)
    stop.set_time_limit(1e9)
    stop.request("SIGTERM signal")
    assert stop.reason() == "SIGTERM signal"


@pytest.mark.parametrize("number", stopping.STOP_SIGNALS)
def test_sigterm_and_sigusr1_request_a_stop_instead_of_ending_the_process(number):
    saved = {n: signal.getsignal(n) for n in stopping.STOP_SIGNALS}
    stop = stopping.StopControl()
    try:
        stop.install_signal_handlers()
        os.kill(os.getpid(), number)  # delivered to the main thread before kill returns
        assert stop.reason() == f"{signal.Signals(number).name} signal"
    finally:
        for n, handler in saved.items():
            signal.signal(n, handler)


def test_the_message_says_what_happened_and_what_to_do():
    message = str(stopping.StoppedAtLimit("mb2po", 3, "time limit"))
    assert message == ("stopped at the time limit (phase 'mb2po', step 3, checkpoint saved); "
                       "re-run the same command to continue.")
