#!/usr/bin/env bash
# The asv suite as CI checks it: every benchmark is discovered (asv check) and runs once
# on the current interpreter with the smallest sizes (FASTNN_BENCH_QUICK=1). Nothing is
# saved. Exits non-zero when a benchmark fails to import, to set up or to run.
#   usage: benchmarks/ci_check.sh            (PYTHON=... to pick the interpreter)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
export FASTNN_BENCH_QUICK=1 FASTNN_BENCH_THREADS=1 OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 \
    MKL_NUM_THREADS=1 FASTNN_NUM_THREADS=1
log=$(mktemp)
trap 'rm -f "$log"' EXIT

"$PYTHON" -m asv machine --yes >/dev/null
"$PYTHON" -m asv check --python=same
# forkserver imports the suite (and numba, every backend) once instead of once per
# benchmark: about 1 minute instead of 20 on 2 cores.
status=0
"$PYTHON" -m asv run --python=same --quick --dry-run --show-stderr --launch-method forkserver \
    >"$log" 2>&1 || status=$?
grep -E '^\[ *[0-9.]+%\] ··· [a-zA-Z_.]+' "$log" | grep -E ' (ok|failed)' || true
if [ "$status" -ne 0 ] || grep -qE '··· .* failed' "$log"; then
    cat "$log"
    echo "benchmarks/ci_check.sh: asv run failed (exit $status)" >&2
    exit 1
fi
echo "benchmarks/ci_check.sh: every benchmark ran"
