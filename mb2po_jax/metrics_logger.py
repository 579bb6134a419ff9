"""Scalar metrics to CSV + TensorBoard, resume-safe, plus a learning-curve plot.

CSV files (one per prefix, e.g. ``metrics_train.csv``, ``metrics_eval.csv``)
are the source of truth for plots and tables because they are trivial to read
back; TensorBoard is for watching runs live. Training runs are preemptible and
resume from checkpoints, so on resume every row logged *after* the checkpoint
step is dropped (and TensorBoard is told to purge those steps): otherwise the
re-run steps would appear twice, or orphan rows from the lost segment would
remain.
"""

from __future__ import annotations

import csv
import os
import textwrap
import uuid
from pathlib import Path
from types import TracebackType
from typing import Any, Mapping, Sequence

STEP = "step"
_CSV_GLOB = "metrics_*.csv"


def _csv_path(workdir: Path, prefix: str) -> Path:
    return workdir / f"metrics_{prefix}.csv"


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """Returns (header, rows); empty if the file does not exist or is empty."""
    if not path.exists():
        return [], []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def _write_csv_atomic(
    path: Path, header: Sequence[str], rows: Sequence[Mapping[str, Any]]
) -> None:
    """Rewrites ``path`` via a temp file + rename so a crash never leaves half a file."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(header), restval="")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def _row_step(row: Mapping[str, str]) -> float:
    # float() so that '100.0' (e.g. written by another tool) still parses.
    return float(row[STEP])


class MetricsLogger:
    """Appends ``{prefix}/{key}`` scalars to per-prefix CSVs and TensorBoard.

    Args:
        workdir: run directory; CSVs go to ``workdir/metrics_<prefix>.csv`` and
            TensorBoard events to ``workdir/tb/``.
        resume_step: step of the checkpoint this run resumes from. Existing
            CSV rows with ``step > resume_step`` are deleted on open, and
            TensorBoard purges events from ``resume_step + 1`` on.
        use_tensorboard: set False to write CSVs only.
    """

    def __init__(
        self,
        workdir: str | os.PathLike[str],
        *,
        resume_step: int | None = None,
        use_tensorboard: bool = True,
    ) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        # Column list per prefix, cached so appends need not re-read the file.
        self._headers: dict[str, list[str]] = {}
        if resume_step is not None:
            self._truncate_after(int(resume_step))
        self._tb = None
        if use_tensorboard:
            # Imported lazily: CSV-only users need not pay for tensorboardX.
            from tensorboardX import SummaryWriter

            purge_step = None if resume_step is None else int(resume_step) + 1
            self._tb = SummaryWriter(
                logdir=str(self.workdir / "tb"),
                purge_step=purge_step,
                # Event file names only carry the time in whole seconds and the
                # host, so a fast restart would overwrite the previous file.
                filename_suffix=f".{uuid.uuid4().hex[:8]}",
            )

    def _truncate_after(self, resume_step: int) -> None:
        """Drops rows logged after the checkpoint we resume from, in every CSV."""
        for path in sorted(self.workdir.glob(_CSV_GLOB)):
            header, rows = _read_csv(path)
            kept = [row for row in rows if _row_step(row) <= resume_step]
            if len(kept) != len(rows):
                _write_csv_atomic(path, header, kept)

    def _header(self, prefix: str) -> list[str]:
        if prefix not in self._headers:
            self._headers[prefix] = _read_csv(_csv_path(self.workdir, prefix))[0]
        return self._headers[prefix]

    def write(self, step: int, metrics: Mapping[str, Any], prefix: str) -> None:
        """Logs one row of scalars at ``step``.

        Values may be python, numpy or jax scalars; ``None`` values are
        skipped (left blank in the CSV), e.g. a normalised score for an env
        without reference scores.
        """
        if not prefix or "/" in prefix or os.sep in prefix:
            raise ValueError(f"prefix must be a non-empty name without '/', got {prefix!r}")
        step = int(step)
        values = {k: _to_float(k, v) for k, v in metrics.items() if v is not None}
        if STEP in values:
            raise ValueError(f"'{STEP}' is reserved for the step column")
        self._append_csv(step, values, prefix)
        if self._tb is not None:
            for key, value in values.items():
                self._tb.add_scalar(f"{prefix}/{key}", value, global_step=step)

    def _append_csv(self, step: int, values: Mapping[str, float], prefix: str) -> None:
        path = _csv_path(self.workdir, prefix)
        header = self._header(prefix)
        row = {STEP: step, **values}
        wanted = set(values) | set(header[1:])
        if header and wanted == set(header[1:]):
            with path.open("a", newline="") as f:
                csv.DictWriter(f, fieldnames=header, restval="").writerow(row)
            return
        # New file, or new keys: rewrite with the union header so that old
        # rows keep their values under the right column names.
        new_header = [STEP] + sorted(wanted)
        old_rows = _read_csv(path)[1] if header else []
        _write_csv_atomic(path, new_header, [*old_rows, row])
        self._headers[prefix] = new_header

    def flush(self) -> None:
        """Flushes TensorBoard events (CSV rows are written through on each write)."""
        if self._tb is not None:
            self._tb.flush()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None

    def __enter__(self) -> MetricsLogger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _to_float(key: str, value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError) as e:
        raise TypeError(f"metric {key!r} is not a scalar: {value!r}") from e


def read_series(path: Path, column: str) -> tuple[list[float], list[float]]:
    """(steps, values) for rows where ``column`` is non-blank."""
    _, rows = _read_csv(path)
    pairs = [(_row_step(r), float(r[column])) for r in rows if r.get(column, "") != ""]
    return [p[0] for p in pairs], [p[1] for p in pairs]


_TITLE_FONTSIZE = 10


def _fit_title(fig, ax, title: str) -> None:
    """Sets ``title`` on lines that fit inside the figure: wrapped (a long
    word, such as a workdir or file name, broken where it must be) at fewer
    characters per line until the drawn title lies within the figure's width."""
    renderer = fig.canvas.get_renderer()
    for chars in (80, 72, 64, 56, 48, 40, 32):
        lines = textwrap.wrap(title, chars, break_long_words=True, break_on_hyphens=False)
        ax.set_title("\n".join(lines) or title, fontsize=_TITLE_FONTSIZE)
        fig.tight_layout()
        box, margin = ax.title.get_window_extent(renderer), 0.02 * fig.bbox.width
        if box.x0 >= margin and box.x1 <= fig.bbox.width - margin:
            return


def plot_learning_curve(
    workdir: str | os.PathLike[str],
    *,
    prefix: str = "eval",
    y: str = "normalized_score",
    out: str | os.PathLike[str] = "learning_curve.png",
    extra_lines: Mapping[str, tuple[Sequence[float], Sequence[float]]] | None = None,
    label: str | None = None,
    title: str | None = None,
    xlabel: str = "step",
) -> Path:
    """Plots ``y`` against step from ``workdir/metrics_<prefix>.csv`` to a PNG.

    Falls back to ``return_mean`` when ``y`` is 'normalized_score' and that
    column is missing or blank (envs without D4RL reference scores).
    ``extra_lines`` maps a legend label to ``(steps, values)``, e.g. a
    baseline. A relative ``out`` is taken relative to ``workdir``. ``label``
    and ``title`` default to ``<prefix>/<y>`` and ``<workdir name>: ...``; a
    title too long for the figure's width is wrapped onto several lines.

    Returns:
        Path of the written PNG.
    """
    # Figure + Agg canvas directly, not pyplot: no global backend switch and
    # no figure registry to leak, so this is safe inside training processes.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    workdir = Path(workdir)
    path = _csv_path(workdir, prefix)
    if not path.exists():
        raise FileNotFoundError(f"no metrics file {path}")
    steps, values = read_series(path, y)
    if not steps and y == "normalized_score":
        y = "return_mean"
        steps, values = read_series(path, y)
    if not steps:
        raise ValueError(f"{path} has no values in column {y!r}; columns: {_read_csv(path)[0]}")

    fig = Figure(figsize=(6.4, 4.0), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    # Markers keep a single-row curve visible (a 1-point line draws nothing).
    ax.plot(steps, values, marker="o", markersize=3, label=label or f"{prefix}/{y}")
    for label, (xs, ys) in (extra_lines or {}).items():
        ax.plot(list(xs), list(ys), linestyle="--", marker=".", label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(y.replace("_", " "))
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best")
    _fit_title(fig, ax, title or f"{workdir.name}: {prefix} {y.replace('_', ' ')}")

    out_path = Path(out)
    if not out_path.is_absolute():
        out_path = workdir / out_path
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, format="png")
    return out_path
