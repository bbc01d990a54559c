#!/usr/bin/env bash
# Build the Cython backend's C code once under AddressSanitizer + UndefinedBehaviorSanitizer
# into a separate folder (the normal in-place build is left alone) and run the cython
# kernel tests against that build. Any out-of-bounds access, use after free or undefined
# behaviour aborts the run with a report; exit status 0 means the run was clean.
#
#   kernels/_cython/sanitize.sh                  # tests/test_kernels.py, test_primitives.py -k cython + tests/test_cython.py
#   kernels/_cython/sanitize.sh -k gemm          # extra pytest arguments are passed on
#
# Environment: PYTHON (default .venv/bin/python), FASTNN_SANITIZE_DIR (default build/sanitize).
set -euo pipefail
cd "$(dirname "$0")/../.."

PY=${PYTHON:-.venv/bin/python}
OUT=${FASTNN_SANITIZE_DIR:-build/sanitize}

FASTNN_SANITIZE=1 "$PY" setup.py -q build_ext --force --build-lib "$OUT/lib" --build-temp "$OUT/temp"
ls "$OUT"/lib/fastnn/kernels/_cython/_kernels.*.so >/dev/null  # the build really happened

# Python itself is not instrumented, so the ASan runtime must be loaded first. Python
# keeps objects alive until exit by design: leak reports would only be noise.
ASAN_LIB=$(gcc -print-file-name=libasan.so)
export LD_PRELOAD="$ASAN_LIB"
# Reports go to files (pytest captures stderr, and an abort would lose them there).
REPORTS="$OUT/reports"
rm -rf "$REPORTS" && mkdir -p "$REPORTS"
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:strict_string_checks=1:log_path=$REPORTS/asan
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:log_path=$REPORTS/ubsan
export FASTNN_CYTHON_BUILD="$OUT/lib"
export FASTNN_TEST_BACKENDS=cython

"$PY" -c "from fastnn.kernels import cython_backend as cb; import sys; \
ok, why = cb.available(); print('sanitized build:', cb._k.__file__, '-', why); sys.exit(0 if ok else 1)"
status=0
"$PY" -m pytest -q -p no:cacheprovider tests/test_kernels.py tests/test_primitives.py -k cython tests/test_cython.py "$@" || status=$?
if compgen -G "$REPORTS/*" >/dev/null; then
    cat "$REPORTS"/*
    echo "sanitizers: errors found (reports above, also in $REPORTS)"
    exit 1
fi
[ "$status" -eq 0 ] && echo "sanitizers: clean"
exit "$status"
