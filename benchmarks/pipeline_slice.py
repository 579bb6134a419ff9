"""A timed slice of a real run: ``python -m experiments.run`` for ``--seconds``,
then stopped (Ctrl-C, which checkpoints), and its AWAC throughput read back.

    python benchmarks/pipeline_slice.py --config=hopper_mixed.py --seconds=120 \
        --set dataset=minari:mb2po/hopper/mixed-v0

Prints one JSON line: the steps reached, the seconds to the first logged
chunk (start-up: imports, dataset, compilation), the steady rate between the
first and the last logged chunk, and the projected wall time of the config's
whole AWAC phase at that rate. Steady-state AWAC speed does not depend on the
dataset's size, so any dataset of the task's dimensions serves.
"""

from __future__ import annotations

import argparse
import csv
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GRACE_S = 15  # after the slice, how long the run may take to stop by itself


def last_step(csv_path: Path) -> int | None:
    if not csv_path.exists():
        return None
    with csv_path.open() as handle:
        rows = list(csv.DictReader(handle))
    return int(float(rows[-1]["step"])) if rows else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="hopper_mixed.py")
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="config overrides (repeatable), e.g. dataset=minari:...")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        command = [sys.executable, "-m", "experiments.run", f"--config={args.config}",
                   f"--workdir={workdir}", "--config.train.progress_bar=False",
                   *[f"--config.{item}" for item in args.set]]
        start = time.time()
        child = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, text=True)
        metrics = Path(workdir) / "awac" / "metrics_train.csv"
        first = None  # (seconds, step) of the first logged chunk
        last = None
        while time.time() - start < args.seconds and child.poll() is None:
            time.sleep(1.0)
            step = last_step(metrics)
            if step is not None:
                now = (time.time() - start, step)
                first = first or now
                last = now
        if child.poll() is None:
            # The figures are read; the run is a throwaway. Ctrl-C lets it
            # stop cleanly at its next chunk, but a slow chunk (a CPU at
            # paper size) must not hold the measurement past a caller's limit.
            child.send_signal(signal.SIGINT)
            try:
                child.wait(timeout=GRACE_S)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        error = child.stderr.read()
        out = {"benchmark": "pipeline_slice", "config": args.config, "overrides": args.set,
               "slice_seconds": args.seconds}
        if first is None:
            out["error"] = "no AWAC chunk was logged: " + error[-1500:]
        else:
            # None when the slice logged one chunk only (too short to see a rate).
            rate = ((last[1] - first[1]) / (last[0] - first[0])
                    if last[1] > first[1] else None)
            out.update(startup_seconds=round(first[0], 1), steps_reached=last[1],
                       steady_steps_per_s=None if rate is None else round(rate, 2))
            total = _awac_steps(args.config, args.set)
            if rate:
                out.update(awac_num_steps=total,
                           projected_awac_phase_minutes=round(total / rate / 60, 1))
    print(json.dumps(out))


def _awac_steps(config: str, overrides: list[str]) -> int:
    sys.path.insert(0, str(REPO))
    from experiments.common import load_config_file, resolve_config_path  # the CLI's reader

    cfg = load_config_file(resolve_config_path(config))
    for item in overrides:
        if item.startswith("awac.num_steps="):
            return int(item.split("=", 1)[1])
    return int(cfg.awac.num_steps)


if __name__ == "__main__":
    main()
