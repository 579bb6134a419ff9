"""The reproduction harness: tasks x seeds x arms, with a fair control.

    python -m experiments.reproduce --tasks=hopper-mixed,walker2d-mixed,halfcheetah-mixed \\
        --seeds=0,1,2 --scale=cpu --workdir=runs/repro

Per task and seed, AWAC is pretrained once and every arm starts from it:
``awac``, the control (AWAC continued for as many updates as MB2PO makes),
``mb2po`` (AWAC+MB2PO), opt-in ``mopo`` (MOPO from scratch,
``--arms=awac,mb2po,mopo``) and ``--variant=NAME:FIELD=VALUE[,...]`` (MB2PO
with ``mb2po.*`` / ``dynamics.*`` overrides, from the same pretraining). A
killed sweep resumes where it stopped; a cell this machine refuses stays
pending. ``--shard=I/N`` (or ``any``) lets processes share one workdir;
``--seed_programs=one`` trains a unit's seeds as one vmapped program.

Outputs in ``--workdir``, remade after every cell or alone with
``--report_only``: ``results.csv`` (a row per task, seed and arm),
``table.md`` (mean +- std over seeds, the lift over the control with a paired
bootstrap 95 % interval, the paper's Table 1 beside) and the PNGs;
``--from_csv`` makes one table from several sweeps' ``results.csv``.
``MB2PO_SCALE=<scale>`` in the environment replaces ``--scale`` (as
``experiments.run`` honours it). The library: :mod:`mb2po_jax.harness`.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from absl import app, flags

from experiments.common import TIME_LIMIT_HELP, install_stop_controls, setup_logging
from mb2po_jax import harness
from mb2po_jax.checkpoint import RunMismatchError
from mb2po_jax.data import DatasetError, DatasetNotFoundError
from mb2po_jax.pipeline import UsageError
from mb2po_jax.pipeline.config import SCALE_ENV, SCALES
from mb2po_jax.runner import InterruptedRun
from mb2po_jax.stopping import StoppedAtLimit

logger = logging.getLogger(__name__)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    f = flags.FLAGS
    setup_logging()
    root = Path(f.workdir).expanduser()
    scale = f.scale
    try:
        install_stop_controls(f.time_limit)
        if os.environ.get(SCALE_ENV):
            # As experiments.run honours it: the sweep at that scale instead.
            scale = os.environ[SCALE_ENV]
            if scale not in SCALES:
                raise UsageError(f"{SCALE_ENV}={scale!r}: valid scales are {sorted(SCALES)}.")
            logger.warning("%s=%s: the sweep runs at scale %s instead of --scale=%s.",
                           SCALE_ENV, scale, scale, f.scale)
        if f.from_csv and not f.report_only:
            raise UsageError("--from_csv merges finished sweeps' results.csv into a table; it "
                             "runs nothing, so it needs --report_only.")
        if f.from_csv:
            out = harness.write_merged_report(
                root, [harness.parse_csv_source(text) for text in f.from_csv], list(f.arms), scale)
            print(f"report: {out}")
            return
        if f.report_only:
            out = harness.write_report(root)
            print(f"report: {out}")
            return
        records = harness.run_sweep_from_flags(
            root, list(f.tasks), list(f.seeds), list(f.arms), scale, settings=f.set or [],
            variants=f.variant or [], datasets=f.dataset or [],
            final_episodes=f.final_episodes, shard=f.shard, seed_programs=f.seed_programs)
    except StoppedAtLimit as stopped:
        print(f"sweep {stopped}")
        sys.exit(0)
    except InterruptedRun as interrupted:
        print(interrupted, file=sys.stderr)
        sys.exit(130)
    except ValueError as error:  # UsageError, DatasetError and config errors
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    except (RunMismatchError, DatasetNotFoundError, DatasetError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    counts = {}
    for record in records:
        counts[record["status"]] = counts.get(record["status"], 0) + 1
    print(f"sweep: {counts}; report: {root / harness.TABLE_FILE}")


def cli() -> None:
    flags.DEFINE_list("tasks", list(harness.DEFAULT_TASKS), "Paper task names.")
    flags.DEFINE_list("seeds", ["0", "1", "2"], "Training seeds (evaluation seeds are fixed).")
    flags.DEFINE_list("arms", list(harness.DEFAULT_ARMS), f"Arms besides pretraining: "
                      f"{list(harness.ARMS)} (mopo: MOPO from scratch, opt-in) or a --variant's "
                      f"name.")
    flags.DEFINE_enum("scale", "cpu", list(SCALES), "paper, cpu (about 3 hours of a 2-core CPU "
                      "per task and seed, all its cells) or smoke (seconds; records tiny data "
                      "when a task's is missing).")
    flags.DEFINE_string("workdir", "runs/repro", "Sweep directory (cells, results, report).")
    flags.DEFINE_string("time_limit", None, TIME_LIMIT_HELP + " The stopped cell stays "
                        "unfinished (not failed).")
    flags.DEFINE_multi_string("set", None, "FIELD=VALUE config override for every cell, "
                              "e.g. --set=dynamics.early_stopping=True (repeatable).")
    flags.DEFINE_multi_string("variant", None, "NAME:FIELD=VALUE[,FIELD=VALUE...]: an extra "
                              "arm, MB2PO with these mb2po.*/dynamics.* overrides, from the same "
                              "pretrained checkpoints (an ablation; repeatable), e.g. "
                              "--variant=nll_mean:dynamics.nll_reduction=mean.")
    flags.DEFINE_multi_string("dataset", None, "TASK=DATASET: any dataset the run accepts "
                              "(hdf5:<path>, minari:<id>) for that task (repeatable).")
    flags.DEFINE_integer("final_episodes", None, "Episodes of each cell's final evaluation "
                         "(default 50; 2 at smoke scale).")
    flags.DEFINE_string("shard", "0/1", "I/N: run every N-th (task, seed) unit from the I-th; "
                        "'any': every unit, processes sharing the workdir taking the cells no "
                        "other process is running (balances uneven cells).")
    flags.DEFINE_enum("seed_programs", "auto", list(harness.SEED_PROGRAMS),
                      "one: a unit's seeds train side by side as one vmapped program "
                      "(num_seeds); each: a program per seed; auto: 'one' for a new sweep of "
                      "consecutive seeds, an existing sweep's own choice otherwise.")
    flags.DEFINE_bool("report_only", False, "Only (re)write results.csv, table.md and the "
                      "PNGs from the finished cells.")
    flags.DEFINE_multi_string("from_csv", None, "PATH[:TASK,TASK...]: with --report_only, "
                              "write one table into --workdir (a new directory) from finished "
                              "sweeps' results.csv files, each task from one file; only "
                              "pretraining and --arms are kept (repeatable).")
    app.run(main)


if __name__ == "__main__":
    cli()
