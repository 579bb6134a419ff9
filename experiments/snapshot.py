"""Moves runs between machines as one checksummed file.

    python -m experiments.snapshot --export --workdir=runs/hm --archive=hm.tar.gz
    python -m experiments.snapshot --import --archive=hm.tar.gz --workdir=runs/hm

``--workdir`` is a run's workdir or a harness sweep directory. The archive
holds each run's newest checkpoint per phase, its run.json, results and
metrics (mb2po_jax/snapshot.py); importing checks every file's SHA-256 and
refuses a non-empty destination. Then re-run the same command there to
continue, e.g. after ``--time_limit`` stopped it on the first machine.
"""

from __future__ import annotations

import sys

from absl import app, flags

from mb2po_jax.snapshot import SnapshotError, export_runs, import_runs

flags.DEFINE_bool("export", False, "Pack --workdir into --archive.")
flags.DEFINE_bool("import", False, "Unpack --archive into --workdir (new or empty).")
flags.DEFINE_string("workdir", None, "A run's workdir or a harness sweep directory.")
flags.DEFINE_string("archive", None, "The .tar.gz file.")
FLAGS = flags.FLAGS


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if FLAGS["export"].value == FLAGS["import"].value or not FLAGS.workdir or not FLAGS.archive:
        raise app.UsageError("Give exactly one of --export / --import, and --workdir and --archive.")
    try:
        if FLAGS["export"].value:
            manifest = export_runs(FLAGS.workdir, FLAGS.archive)
            verb = f"exported {FLAGS.workdir} to {FLAGS.archive}"
        else:
            manifest = import_runs(FLAGS.archive, FLAGS.workdir)
            verb = (f"imported {FLAGS.archive} into {FLAGS.workdir}; re-run the same command "
                    f"there to continue")
    except (SnapshotError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    print(f"{verb}: {len(manifest['files'])} files, {manifest['total_bytes'] / 1e6:.1f} MB "
          f"before compression, every file checksummed (SHA-256).")


if __name__ == "__main__":
    app.run(main)
