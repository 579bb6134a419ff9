"""The reproduction harness: tasks x seeds x arms with a fair control, and its report.

Per task and seed, AWAC is pretrained once and the arms start from that
checkpoint: the control (AWAC continued for exactly as many updates as MB2PO
makes), AWAC+MB2PO, optionally MOPO from scratch, and variants (MB2PO with
overrides of its own phases). Every run is a cell of the sweep directory,
resumable and skipped once finished; the report (``results.csv``,
``table.md`` with the lift over the control and its bootstrap interval, the
PNGs) is rebuilt from the directory alone::

    from pathlib import Path
    from mb2po_jax import harness
    harness.run_sweep(Path("runs/repro"), ["hopper-mixed"], [0, 1, 2], ["awac", "mb2po"], "cpu")
    harness.write_report(Path("runs/repro"))

Modules, each using only those after it: :mod:`~.sweep` (the sweep, its
shards and seed programs), :mod:`~.cells` (one run each), :mod:`~.arms` (the
arms, variants and task configs); :mod:`~.report` (the table, the lift, merged
reports), :mod:`~.figures`, :mod:`~.records` (``results.csv``); beneath them
all :mod:`~.names` and :mod:`~.paper_scores`.
"""

from __future__ import annotations

from mb2po_jax.harness.arms import (ARMS, DEFAULT_ARMS, FINE_TUNING_AWAC_FIELDS, MATCHED_FIELDS,
                                    VARIANT_PREFIXES, Arm, arm_table, finetune_updates,
                                    parse_datasets, parse_overrides, parse_variant, task_config,
                                    variant_arm)
from mb2po_jax.harness.cells import (Cell, cell_config, dataset_scores, git_commit, plan,
                                     read_cell, run_cell, unit_dir)
from mb2po_jax.harness.figures import plot_summary, plot_task
from mb2po_jax.harness.names import (CELL_FILE, CONTROL, LABELS, MOPO, PRETRAIN, RESULTS_FILE,
                                     SUMMARY_FILE, SWEEP_FILE, TABLE_FILE, TREATMENT)
from mb2po_jax.harness.records import collect_records, eval_curve, read_results_csv, write_csv
from mb2po_jax.harness.report import (bootstrap_interval, lift, merge_results, parse_csv_source,
                                      table_markdown, write_merged_report, write_report)
from mb2po_jax.harness.sweep import (DEFAULT_TASKS, FINAL_EPISODES, SEED_PROGRAMS, parse_shard,
                                     resolve_seed_programs, run_sweep, run_sweep_from_flags)

__all__ = [
    "ARMS", "Arm", "CELL_FILE", "CONTROL", "Cell", "DEFAULT_ARMS", "DEFAULT_TASKS",
    "FINAL_EPISODES", "FINE_TUNING_AWAC_FIELDS", "LABELS", "MATCHED_FIELDS", "MOPO", "PRETRAIN",
    "RESULTS_FILE", "SEED_PROGRAMS", "SUMMARY_FILE", "SWEEP_FILE", "TABLE_FILE", "TREATMENT",
    "VARIANT_PREFIXES", "arm_table", "bootstrap_interval", "cell_config", "collect_records",
    "dataset_scores", "eval_curve", "finetune_updates", "git_commit", "lift", "merge_results",
    "parse_csv_source", "parse_datasets", "parse_overrides", "parse_shard", "parse_variant",
    "plan", "plot_summary", "plot_task", "read_cell", "read_results_csv",
    "resolve_seed_programs", "run_cell", "run_sweep", "run_sweep_from_flags", "table_markdown",
    "task_config", "unit_dir", "variant_arm", "write_csv", "write_merged_report", "write_report",
]
