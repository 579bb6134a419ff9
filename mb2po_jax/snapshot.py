"""A run, or a tree of runs, as one checksummed file that moves between machines.

A job with a time limit on one machine and its continuation on another (a
cluster's next allocation, a fresh cloud GPU) need the run's state and
nothing else. :func:`export_runs` packs, for every run below a directory (a
folder with ``run.json``): ``run.json``, ``results.json``, each phase's
metrics CSVs and the NEWEST checkpoint of each phase (older ones and
TensorBoard events stay behind), plus every other small file of a harness
sweep (``sweep.json``, ``cell.json``, ``results.csv``, ``table.md``). The
archive's ``snapshot.json`` lists each member's size and SHA-256.
:func:`import_runs` unpacks into a sibling folder, verifies every checksum
there and only then moves it into place; it refuses a destination that
already holds files (nothing is overwritten).

Re-running the same command on the imported directory resumes exactly as on
the original machine: a checkpoint holds params, optimiser states, target
networks, counters and keys; the dataset fingerprint in ``run.json`` is
checked at resume (the dataset itself travels separately, as a file). A
fine-tuning checkpoint holds the model buffer's rows with
``mb2po.buffer_checkpoint=rows``, and only the K slot policies with
``regenerate`` (the paper-scale default; the rows are rolled out again on
resume, exactly where the hardware repeats bits).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
from pathlib import Path
from typing import Iterator

MANIFEST = "snapshot.json"
FORMAT = 1
# Small files of a harness sweep travel too (the cells' records and report).
_SWEEP_FILES = {"sweep.json", "cell.json", "results.csv", "table.md"}
_RUN_FILES = {"run.json", "results.json"}


class SnapshotError(ValueError):
    """An archive that is damaged, of another format, or a destination in use."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _newest_checkpoint(phase_dir: Path) -> Path | None:
    steps = [p for p in phase_dir.iterdir() if p.is_dir() and p.name.isdigit()]
    return max(steps, key=lambda p: int(p.name)) if steps else None


def _run_members(run: Path) -> Iterator[Path]:
    for name in sorted(_RUN_FILES):
        if (run / name).is_file():
            yield run / name
    for csv in sorted(run.glob("*/metrics_*.csv")) + sorted(run.glob("*/seed_*/metrics_*.csv")):
        yield csv
    checkpoints = run / "checkpoints"
    if checkpoints.is_dir():
        for phase_dir in sorted(p for p in checkpoints.iterdir()
                                if p.is_dir() and "." not in p.name):
            newest = _newest_checkpoint(phase_dir)
            if newest is not None:
                yield from sorted(p for p in newest.rglob("*") if p.is_file())


def members(root: str | os.PathLike) -> list[Path]:
    """The files :func:`export_runs` packs from ``root`` (absolute paths)."""
    root = Path(root).absolute()
    runs = sorted(p.parent for p in root.rglob("run.json"))
    if not runs:
        raise SnapshotError(f"{root} holds no run (no run.json below it): nothing to export.")
    files = {f for run in runs for f in _run_members(run)}
    files |= {p for p in root.rglob("*") if p.is_file() and p.name in _SWEEP_FILES}
    return sorted(files)


def export_runs(root: str | os.PathLike, archive: str | os.PathLike) -> dict:
    """Packs ``root`` (a run's workdir or a sweep directory) into ``archive``
    (a ``.tar.gz``); returns the manifest (files, sizes, checksums, total)."""
    root, archive = Path(root).absolute(), Path(archive).absolute()
    files = members(root)
    entries = [{"path": str(f.relative_to(root)), "bytes": f.stat().st_size,
                "sha256": _sha256(f)} for f in files]
    manifest = {"format": FORMAT, "files": entries,
                "total_bytes": sum(e["bytes"] for e in entries)}
    archive.parent.mkdir(parents=True, exist_ok=True)
    partial = archive.with_name(archive.name + ".partial")
    with tarfile.open(partial, "w:gz", compresslevel=6) as tar:
        data = json.dumps(manifest, indent=1).encode()
        info = tarfile.TarInfo(MANIFEST)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        for f, entry in zip(files, entries):
            tar.add(f, arcname=entry["path"], recursive=False)
    partial.replace(archive)  # a killed export never leaves a file that looks whole
    return manifest


def import_runs(archive: str | os.PathLike, destination: str | os.PathLike) -> dict:
    """Unpacks an :func:`export_runs` archive into ``destination`` (new or
    empty) after checking every member against the manifest; returns it.

    Raises:
        SnapshotError: a missing, extra, altered or unsafe member, another
            format, or a destination that already holds files.
    """
    archive, destination = Path(archive), Path(destination).absolute()
    if destination.exists() and any(destination.iterdir()):
        raise SnapshotError(f"{destination} already holds files; import into a new or empty "
                            f"directory (nothing is overwritten).")
    # Unpacked once, into a sibling; checked there; moved into place whole.
    staging = destination.with_name(destination.name + ".importing")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        with tarfile.open(archive, "r:gz") as tar:
            try:
                manifest = json.load(tar.extractfile(MANIFEST))
            except KeyError:
                raise SnapshotError(f"{archive} has no {MANIFEST}: not an exported run.") from None
            if manifest.get("format") != FORMAT:
                raise SnapshotError(f"{archive}: snapshot format {manifest.get('format')!r}, "
                                    f"this version reads {FORMAT}.")
            expected = {e["path"]: e for e in manifest["files"]}
            found = {m.name: m for m in tar.getmembers() if m.name != MANIFEST}
            if set(found) != set(expected):
                raise SnapshotError(f"{archive}: members differ from its manifest (missing "
                                    f"{sorted(set(expected) - set(found))[:5]}, extra "
                                    f"{sorted(set(found) - set(expected))[:5]}).")
            for name, member in found.items():
                if not member.isfile() or Path(name).is_absolute() or ".." in Path(name).parts:
                    raise SnapshotError(f"{archive}: unsafe member {name!r}.")
            tar.extractall(staging, members=list(found.values()), filter="data")
        for name, entry in expected.items():
            if _sha256(staging / name) != entry["sha256"]:
                raise SnapshotError(f"{archive}: {name} does not match its checksum (a damaged "
                                    f"copy); export it again.")
        if destination.exists():
            destination.rmdir()  # empty, checked above
        staging.replace(destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest
