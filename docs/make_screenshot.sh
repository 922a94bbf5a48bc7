#!/usr/bin/env bash
# Remakes docs/tensorboard.png, the README's picture of the dashboard, from a short run of the demo's
# supervised stage on synthetic data. Needs the project's .venv (make install) and Chromium (not a
# project dependency; on Debian: apt-get install chromium). Extra arguments go to train.py, e.g.
# data.root=<a folder holding stl10_binary/> to reuse generated data instead of generating it.
#   bash docs/make_screenshot.sh [OVERRIDES...]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
PORT=${PORT:-6006}
work=$(mktemp -d)

"$BIN/python" train.py experiment=demo stage=supervised trainer.max_epochs=20 \
    callbacks.progress_bar=null hydra.run.dir="$work/supervised" "$@"

"$BIN/tensorboard" --logdir "$work" --port "$PORT" >"$work/tensorboard.log" 2>&1 &
server=$!
trap 'kill "$server"' EXIT
until curl -s "http://localhost:$PORT" >/dev/null; do sleep 1; done
sleep 5  # the server answers before it has read every event file

# The cards a reader looks at first, unsmoothed; SVG charts, since headless Chromium draws no WebGL.
cards='%5E%28train%2F%28acc%7Closs_epoch%29%7Cval%2F%28acc%7Cf1%7Closs%29%7Clr-SGD%2Fweights%29%24'
chromium --headless --no-sandbox --disable-gpu --disable-background-networking \
    --disable-component-update --disable-sync --no-first-run --user-data-dir="$(mktemp -d)" \
    --window-size=1900,1000 --virtual-time-budget=30000 --screenshot=docs/tensorboard.png \
    "http://localhost:$PORT/?forceSVG=true&smoothing=0&tagFilter=$cards#timeseries"

# 256 colours keep the picture sharp at a fraction of the size.
"$BIN/python" -c "from PIL import Image; Image.open('docs/tensorboard.png').quantize(256).save('docs/tensorboard.png', optimize=True)"
echo "docs/tensorboard.png: look at it; if the charts are empty, run this again"
