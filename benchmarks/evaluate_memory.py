"""Peak memory of ``experiments.evaluate`` on a fine-tuning checkpoint.

An MB2PO checkpoint holds the agent and the model buffer (K iterations of S
rows; 11 GB for hopper at the paper's K = 100, S = 1M). Evaluation needs only
the policy, so it restores only the agent. This script writes a hopper MB2PO
checkpoint with the paper's networks and a buffer of ``--buffer-iterations``
x ``--rollout-samples`` rows (zeros: the values do not matter for memory),
then runs ``python -m experiments.evaluate`` on it in a fresh process and
prints the child's peak RSS as one JSON line; ``--full-restore`` also
measures restoring the whole state (agent and buffer) for comparison.

    python benchmarks/evaluate_memory.py --buffer-iterations 40 --full-restore

Peak RSS that does not grow with ``--buffer-iterations`` shows that the
buffer is never read.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from mb2po_jax.pipeline import MB2PO, Settings, paper_config  # noqa: E402
from mb2po_jax.pipeline.builders import abstract_policy_state  # noqa: E402
from mb2po_jax.checkpoint import Checkpointer  # noqa: E402

OBS_DIM, ACT_DIM = 11, 3  # Hopper-v5

FULL_RESTORE = """
import json, sys
from mb2po_jax.checkpoint import Checkpointer
from mb2po_jax.pipeline import Settings
from mb2po_jax.pipeline.builders import abstract_policy_state
with Checkpointer(sys.argv[1]) as c:
    meta = c.restore_meta()
    state, _ = c.restore(abstract_policy_state(Settings.from_config(meta["config"]), "mb2po",
                                               11, 3))
print(int(state.iteration))
"""


def write_checkpoint(workdir: Path, buffer_iterations: int, rollout_samples: int) -> float:
    config = paper_config("hopper-mixed")
    config.mb2po.buffer_iterations = buffer_iterations
    config.mb2po.rollout_samples = rollout_samples
    abstract = abstract_policy_state(Settings.from_config(config), MB2PO, OBS_DIM, ACT_DIM)
    state = jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), abstract)
    gigabytes = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(state.buffer)) / 1e9
    meta = {"config": json.loads(config.to_json()), "env_id": "Hopper-v5",
            "dataset": {"obs_dim": OBS_DIM, "act_dim": ACT_DIM, "ref_min_score": None,
                        "ref_max_score": None}}
    with Checkpointer(workdir / "checkpoints" / MB2PO) as checkpointer:
        checkpointer.save(1, state, {**meta, "phase": MB2PO, "step": 1})
    return gigabytes


def child_peak_rss(command: list[str]) -> tuple[float, float]:
    """(peak RSS in GiB of the command's own process, seconds). ``os.wait4``
    reports that one child's peak; the parent stays small (the checkpoint is
    written by another child), so the forked child inherits nothing large."""
    start = time.time()
    child = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(child.pid, 0)
    if status:
        raise RuntimeError(f"{command[:3]} failed: {child.stderr.read()[-2000:]}")
    return usage.ru_maxrss / 2**20, time.time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--buffer-iterations", type=int, default=40)
    parser.add_argument("--rollout-samples", type=int, default=1_000_000)
    parser.add_argument("--write", help=argparse.SUPPRESS)  # internal: the writer child
    parser.add_argument("--full-restore", action="store_true",
                        help="also measure restoring the whole state (agent and buffer)")
    args = parser.parse_args()
    if args.write:
        gigabytes = write_checkpoint(Path(args.write), args.buffer_iterations,
                                     args.rollout_samples)
        print(json.dumps({"buffer_gb": gigabytes}))
        return
    with tempfile.TemporaryDirectory(dir=REPO / "runs" if (REPO / "runs").is_dir() else None) as tmp:
        workdir = Path(tmp)
        write_gib, write_seconds = child_peak_rss(
            [sys.executable, __file__, f"--write={workdir}",
             f"--buffer-iterations={args.buffer_iterations}",
             f"--rollout-samples={args.rollout_samples}"])
        evaluate_gib, evaluate_seconds = child_peak_rss(
            [sys.executable, "-m", "experiments.evaluate", f"--workdir={workdir}",
             "--num_episodes=1"])
        gigabytes = (args.buffer_iterations * args.rollout_samples
                     * (2 * OBS_DIM + ACT_DIM + 3) * 4 / 1e9)
        out = {"benchmark": "evaluate_memory", "buffer_gb": round(gigabytes, 2),
               "buffer_iterations": args.buffer_iterations,
               "rollout_samples": args.rollout_samples,
               "write_seconds": round(write_seconds, 1),
               "write_peak_rss_gib": round(write_gib, 3),
               "evaluate_peak_rss_gib": round(evaluate_gib, 3),
               "evaluate_seconds": round(evaluate_seconds, 1)}
        if args.full_restore:
            full_gib, full_seconds = child_peak_rss(
                [sys.executable, "-c", FULL_RESTORE, str(workdir / "checkpoints" / MB2PO)])
            out.update(full_restore_peak_rss_gib=round(full_gib, 3),
                       full_restore_seconds=round(full_seconds, 1))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
