#!/bin/sh
# Check the visualiser's HTML page in a real headless browser (Chromium).
#
#   sh fastnn/teach/check_html.sh [OUTDIR]
#
# Writes a small run's page into OUTDIR (default: a temporary folder), then
#  1. loads it with ?selftest=1: the page moves its slider through every checkpoint,
#     firing the same "input" event a user's drag fires, and checks the epoch label,
#     the decision-map image, the table's wrong rows and the loss curve each time;
#  2. loads it at #cp=0 and checks that the first checkpoint is the one on screen;
#  3. takes screenshots at the first and the last checkpoint (OUTDIR/shot_*.png).
# Exits non-zero on any failure (2: fastnn or the browser is missing). Needs chromium
# (Debian: apt-get install chromium). The interpreter is $PYTHON, else the project's
# .venv/bin/python (what `make install` creates), else python3; CHROMIUM overrides the browser.
set -eu

REPO=$(cd "$(dirname "$0")/../.." && pwd)
if [ -z "${PYTHON:-}" ]; then
    if [ -x "$REPO/.venv/bin/python" ]; then PYTHON=$REPO/.venv/bin/python; else PYTHON=python3; fi
fi
CHROMIUM=${CHROMIUM:-chromium}
echo "python: $PYTHON"
if ! why=$("$PYTHON" -c "import fastnn.teach" 2>&1); then
    why=$(printf '%s\n' "$why" | tail -n 1)
    case $why in   # the source folder found from the current directory, with no install behind it
        *"partially initialized module 'fastnn'"*) why="it finds the source folder fastnn/, not an installed fastnn" ;;
    esac
    echo "check_html.sh: error: $PYTHON cannot import fastnn ($why); run" \
         "'make install' (it creates $REPO/.venv) or set PYTHON to the interpreter fastnn is installed in" >&2
    exit 2
fi
if ! command -v "$CHROMIUM" >/dev/null 2>&1; then
    echo "check_html.sh: error: no browser '$CHROMIUM' (Debian: apt-get install chromium; or set CHROMIUM)" >&2
    exit 2
fi
OUT=${1:-$(mktemp -d)}
mkdir -p "$OUT"
PROFILE=$(mktemp -d)
trap 'rm -rf "$PROFILE"' EXIT

"$PYTHON" - "$OUT" <<'PY'
import sys
import fastnn.teach  # noqa: F401  (also makes fnn.teach available)
import fastnn as fnn
run = fnn.teach.visualize("moons", hidden="8", lr="balanced", epochs=60, checkpoints=8, grid=40,
                          out=sys.argv[1])
print("page:", run.files["html"])
with open(sys.argv[1] + "/page_path", "w") as f:
    f.write(run.files["html"])
with open(sys.argv[1] + "/last_epoch", "w") as f:
    f.write(str(run.checkpoints[-1].epoch))
PY
PAGE=$(cat "$OUT/page_path")
LAST=$(cat "$OUT/last_epoch")

browse() {   # browse URL ARGS...: headless Chromium, no network services, a throw-away profile
    url=$1; shift
    "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-background-networking \
        --disable-component-update --disable-sync --user-data-dir="$PROFILE" \
        --virtual-time-budget=5000 "$@" "$url" 2>/dev/null
}

browse "file://$PAGE?selftest=1" --dump-dom > "$OUT/selftest.html"
if ! grep -q '<pre id="selftest">SELFTEST PASS' "$OUT/selftest.html"; then
    echo "FAIL: the page's slider self-test did not pass:"
    grep -o '<pre id="selftest"[^<]*' "$OUT/selftest.html" || echo "(no self-test output: did the script run?)"
    exit 1
fi
grep -o '<pre id="selftest">SELFTEST PASS[^<]*' "$OUT/selftest.html" | sed 's/<pre id="selftest">//'

browse "file://$PAGE#cp=0" --dump-dom > "$OUT/first.html"
grep -q 'data-checkpoint="0"' "$OUT/first.html" || { echo "FAIL: #cp=0 did not open checkpoint 0"; exit 1; }
grep -q 'id="epoch-label">epoch 0 of' "$OUT/first.html" || { echo "FAIL: epoch label at #cp=0"; exit 1; }
grep -q "data-epoch=\"$LAST\"" "$OUT/selftest.html" || { echo "FAIL: default view is not the last checkpoint"; exit 1; }
echo "checkpoint selection by URL: ok"

browse "file://$PAGE#cp=0" --window-size=1150,1250 --screenshot="$OUT/shot_first.png"
browse "file://$PAGE" --window-size=1150,1250 --screenshot="$OUT/shot_last.png"
for shot in "$OUT/shot_first.png" "$OUT/shot_last.png"; do
    [ -s "$shot" ] || { echo "FAIL: no screenshot $shot"; exit 1; }
done
echo "screenshots: $OUT/shot_first.png $OUT/shot_last.png"
echo "PASS"
