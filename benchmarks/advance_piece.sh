#!/usr/bin/env bash
# Advances a harness sweep by one piece, on a machine that starts empty and
# gives a job a wall-clock limit and a few tens of MB in and out (a GPU job,
# a Slurm job, a preemptible node):
#
#   PIECE_IN=in/piece.tar.gz PIECE_OUT=out/piece.tar.gz TIME_LIMIT=8m \
#       bash benchmarks/advance_piece.sh WORKDIR [harness flags...]
#   e.g. ... WORKDIR --tasks=walker2d-mixed --seeds=0,1,2 --scale=paper
#
# 1. Offline set-up (install_wheelhouse.sh): wheels from WHEEL_DIR where the
#    node lacks the stack, datasets from DATASETS_ARCHIVE into the Minari store.
# 2. PIECE_IN, when it exists (the previous piece's export), is verified and
#    imported into WORKDIR (which must not exist yet); without it the sweep
#    starts here.
# 3. The harness runs with --time_limit=TIME_LIMIT (default 8m): it
#    checkpoints at the last chunk boundary that leaves room for the next and
#    exits 0 (SIGTERM / SIGUSR1 from a scheduler do the same).
# 4. WORKDIR is exported to PIECE_OUT (default piece.tar.gz): the newest
#    checkpoint of every phase, run.json, results and metrics, checksummed.
#    Give it as PIECE_IN to the next piece with the same harness flags (the
#    sweep refuses others).
#
# On a GPU the pieces repeat an uninterrupted sweep bit for bit only with
# XLA_FLAGS=--xla_gpu_deterministic_ops=true (about a quarter fewer updates);
# without it they differ from it by rounding (docs/usage.md, "Determinism").
#
# Last line: one JSON object: finished (every cell done), the harness's
# summary line, the piece's seconds and the export's bytes. Exit code: the
# harness's (0 when it stopped at the limit or finished), else 5 when the
# import or the export failed, or install_wheelhouse.sh's.
set -uo pipefail
cd "$(dirname "$0")/.."
workdir=${1:?usage: advance_piece.sh WORKDIR [harness flags]}
shift
source benchmarks/install_wheelhouse.sh || exit $?
piece_out=${PIECE_OUT:-piece.tar.gz}
if [ -n "${PIECE_IN:-}" ] && [ -f "$PIECE_IN" ]; then
    "$py" -m experiments.snapshot --import --archive="$PIECE_IN" --workdir="$workdir" || exit 5
fi
log=$(mktemp)
"$py" -m experiments.reproduce --workdir="$workdir" --time_limit="${TIME_LIMIT:-8m}" \
    --set=train.progress_bar=False "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
summary=$(grep -E '^sweep' "$log" | tail -n 1)
rm -f "$log"
if [ -d "$workdir" ]; then
    mkdir -p "$(dirname "$piece_out")"
    "$py" -m experiments.snapshot --export --workdir="$workdir" --archive="$piece_out" || exit 5
fi
"$py" - "$summary" "$t0" "$piece_out" <<'EOF'
import ast, json, os, sys, time
summary, t0, out = sys.argv[1], float(sys.argv[2]), sys.argv[3]
# "sweep: {'done': 3}; report: ..." when the sweep ran through (every cell
# done, or some pending); "sweep stopped at the time limit ..." when it stopped.
counts = (ast.literal_eval(summary[len("sweep: "):summary.index("}") + 1])
          if summary.startswith("sweep: {") else {})
finished = bool(counts) and set(counts) == {"done"}
print(json.dumps({"finished": finished, "summary": summary,
                  "piece_seconds": round(time.time() - t0, 1),
                  "export_bytes": os.path.getsize(out) if os.path.exists(out) else None}))
EOF
exit "$rc"
