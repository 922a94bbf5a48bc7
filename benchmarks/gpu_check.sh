#!/usr/bin/env bash
# GPU readiness check, in under 8 minutes on one CUDA machine, offline:
#   1. installs hydra-core, omegaconf, kornia, torchmetrics from a folder of wheels if they are missing;
#   2. generates synthetic STL-10 (5,000 train / 2,000 test / 20,000 unlabeled; reused when present);
#   3. stops with exit status 3 if torch sees no CUDA device;
#   4. times the Barlow Twins and supervised stages with bf16-mixed and 16-mixed, with and without
#      channels_last and torch.compile (benchmarks/gpu_throughput.py), then the two-view augmentation,
#      while nvidia-smi samples utilization and memory every 500 ms;
#   5. writes one results file (rewritten after every setting, so a cut-off run keeps what it measured).
#
#   benchmarks/gpu_check.sh [--wheels DIR] [--out FILE] [--data DIR] [--seconds N]
#                           [--train N] [--test N] [--unlabeled N]
#
# --out defaults to $OUT/gpu_results.md when $OUT is set, else benchmarks/gpu_results.md. --seconds (default
# 420) bounds the whole script; settings that would overrun it are listed as skipped. PYTHON picks the
# interpreter (default: python3), GPU_INDEX the card nvidia-smi samples (default: 0).
set -euo pipefail

cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
WHEELS=""
RESULTS="${OUT:-benchmarks}/gpu_results.md"
DATA="${TMPDIR:-/tmp}/stl10_gpu_check"
SECONDS_TOTAL=420
TRAIN=5000
TEST=2000
UNLABELED=20000

usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
    case "$1" in
        --wheels) WHEELS=$2; shift 2 ;;
        --out) RESULTS=$2; shift 2 ;;
        --data) DATA=$2; shift 2 ;;
        --seconds) SECONDS_TOTAL=$2; shift 2 ;;
        --train) TRAIN=$2; shift 2 ;;
        --test) TEST=$2; shift 2 ;;
        --unlabeled) UNLABELED=$2; shift 2 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "error: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
done

START=$(date +%s)
say() { echo "[gpu_check $(($(date +%s) - START))s] $*"; }

# 1. Packages. Only missing ones are installed, from the wheels folder only (no index: the machine is offline).
missing=$("$PYTHON" - <<'EOF'
import importlib.util

needed = {
    "torch": "torch",
    "torchvision": "torchvision",
    "pytorch_lightning": "pytorch-lightning",
    "numpy": "numpy",
    "hydra": "hydra-core",
    "omegaconf": "omegaconf",
    "kornia": "kornia",
    "torchmetrics": "torchmetrics",
}
print(" ".join(dist for module, dist in needed.items() if importlib.util.find_spec(module) is None))
EOF
)
if [ -n "$missing" ]; then
    if [ -z "$WHEELS" ]; then
        echo "error: missing Python packages: $missing. Give --wheels DIR, a folder with their wheels" \
            "and their dependencies' (e.g. antlr4-python3-runtime, PyYAML, kornia_rs)." >&2
        exit 2
    fi
    say "installing $missing from $WHEELS"
    read -r -a packages <<<"$missing"
    "$PYTHON" -m pip install --quiet --no-index --find-links "$WHEELS" "${packages[@]}"
fi
"$PYTHON" -c "import hydra, kornia, omegaconf, pytorch_lightning, torch, torchmetrics, torchvision"
say "packages: ok"

# 2. Data; `ensure` reuses a folder generated before with the same counts.
say "synthetic STL-10 in $DATA ($TRAIN train, $TEST test, $UNLABELED unlabeled)"
generate='import sys
from stl10_lightning.data.synthetic import ensure
ensure(sys.argv[1], *map(int, sys.argv[2:]))'
"$PYTHON" -c "$generate" "$DATA" "$TRAIN" "$TEST" "$UNLABELED"

# 3. CUDA.
if ! "$PYTHON" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    build=$("$PYTHON" -c "import torch; print(torch.__version__, 'built for CUDA', torch.version.cuda)")
    smi=$(command -v nvidia-smi || echo "not found")
    echo "error: no CUDA device: torch $build sees no GPU (nvidia-smi: $smi). Setup is done" \
        "(packages, data in $DATA); run this script on a CUDA machine for the measurements." >&2
    exit 3
fi

# 4. Measurements, with nvidia-smi sampling in the background.
mkdir -p "$(dirname "$RESULTS")"
SMI=$(mktemp "${TMPDIR:-/tmp}/gpu_check_smi.XXXXXX")
SMI_PID=""
stop_sampler() { if [ -n "$SMI_PID" ]; then kill "$SMI_PID" 2>/dev/null || true; fi; rm -f "$SMI"; }
trap stop_sampler EXIT
if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader,nounits \
        -lms 500 -i "${GPU_INDEX:-0}" >"$SMI" 2>/dev/null &
    SMI_PID=$!
else
    say "nvidia-smi not found: no utilization samples"
fi
budget=$((SECONDS_TOTAL - ($(date +%s) - START) - 20))
say "measuring for at most ${budget}s"
"$PYTHON" -m benchmarks.gpu_throughput --root "$DATA" --out "$RESULTS" --smi "$SMI" --budget "$budget" \
    --augmentation

# 5. Done.
say "wrote $RESULTS"
cat "$RESULTS"
