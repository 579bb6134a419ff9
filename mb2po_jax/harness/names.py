"""The names a sweep directory is written and read with.

A sweep directory holds ``sweep.json`` (what the sweep is), one directory per
(task, seed) unit and in it one cell directory per arm, each with its
``cell.json`` when finished; the report adds ``results.csv``, ``table.md``
and the PNGs. The arms' names are the cell directories' names and the
``arm`` column; their labels are the legends' and the table's.
"""

from __future__ import annotations

from typing import Any

SWEEP_FILE, RESULTS_FILE, TABLE_FILE = "sweep.json", "results.csv", "table.md"
CELL_FILE = "cell.json"
SUMMARY_FILE = "summary.png"
CONTROL, TREATMENT, PRETRAIN, MOPO = "awac", "mb2po", "pretrain", "mopo"
LABELS = {PRETRAIN: "AWAC pretrained", CONTROL: "AWAC continued (control)",
          TREATMENT: "AWAC+MB2PO", MOPO: "MOPO (from scratch)"}


def variant_label(name: str, fields: dict[str, Any]) -> str:
    """The label of a variant arm (MB2PO with ``fields`` overridden)."""
    return f"AWAC+MB2PO, {name} ({', '.join(f'{k}={v}' for k, v in fields.items())})"


def arm_labels(sweep: dict[str, Any]) -> dict[str, str]:
    """Legend and table labels: the built-in arms' and the sweep's variants'."""
    return {**LABELS, **{name: variant_label(name, fields)
                         for name, fields in sweep.get("variants", {}).items()}}
