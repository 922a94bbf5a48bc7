"""Run every benchmark and write benchmarks/RESULTS.md: each ratio beside its goal, and the machine.

    python -m benchmarks.run [--quick] [--out FILE]      (from the repository root; `make bench`)

A benchmark that fails is reported, the others still run, and the exit status is 1. `--quick` only
checks that everything runs: its numbers mean little, so it writes to benchmarks/.cache/ unless
`--out` says otherwise.
"""

import argparse
import importlib
import os
import platform
import re
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

import kornia
import numpy as np
import pytorch_lightning as pl
import torch
import torchvision

from stl10_lightning.common.atomic import write_text

MODULES = (
    "data_startup",
    "augmentation",
    "training_step",
    "online_step",
    "pseudo_inference",
    "linear_probe",
    "own_data",
)
HERE = Path(__file__).resolve().parent
GPU_RESULTS = HERE / "gpu_results.md"
GOAL = re.compile(r"(>=|<=|>|<)\s*([0-9.]+)\s*(x|%)?")


def goal_met(row: dict) -> bool | None:
    """Whether the ratio meets a goal such as `>= 20x` or `< 10%`; None for an informational row."""
    match = GOAL.fullmatch(row["goal"].strip())
    if match is None:
        return None
    operator, number, suffix = match.groups()
    limit = float(number) / (100 if suffix == "%" else 1)
    ratio = row["ratio"]
    return {">=": ratio >= limit, "<=": ratio <= limit, ">": ratio > limit, "<": ratio < limit}[operator]


def number(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}" if abs(value) >= 1 else f"{value:.3g}"


def ratio_text(row: dict) -> str:
    if row["goal"].strip().endswith("%"):
        return f"{row['ratio'] * 100:.2g}%"
    return f"{number(row['ratio'])}x"


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def machine() -> list[str]:
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return [
        f"- CPU: {cpu_model()}, {os.cpu_count()} cores",
        f"- GPU: {gpu}",
        f"- Python {platform.python_version()}, torch {torch.__version__}, "
        f"pytorch_lightning {pl.__version__}, kornia {kornia.__version__}, "
        f"torchvision {torchvision.__version__}, numpy {np.__version__}",
    ]


def report(
    rows: list[dict], failures: list[str], quick: bool, started: datetime, seconds: float, loads: list[float]
) -> str:
    load_list = ", ".join(f"{load:.1f}" for load in loads)
    lines = [
        "# Benchmark results",
        "",
        f"Written by `python -m benchmarks.run{' --quick' if quick else ''}` on "
        f"{started:%Y-%m-%d %H:%M} UTC in {seconds / 60:.1f} minutes. 1-minute load average before and "
        f"after each benchmark: {load_list} (mean {sum(loads) / len(loads):.1f} "
        f"on {os.cpu_count()} cores). Each row times ours against a plain "
        "baseline in the same run; ratios say how many times better ours is (for memory, ours as a "
        "share of the baseline). Timings on a small shared machine are noisy: see each module's "
        "docstring for how it measures.",
        "",
    ]
    if quick:
        lines += ["**Quick run: a few iterations each, to check that everything runs. Not results.**", ""]
    lines += [
        "| benchmark | ours | baseline | unit | ratio | goal | met? |",
        "|---|---:|---:|---|---:|---|---|",
    ]
    for row in rows:
        met = {True: "yes", False: "**no**", None: "-"}[goal_met(row)]
        lines.append(
            f"| {row['benchmark']} | {number(row['ours'])} | {number(row['baseline'])} | {row['unit']} "
            f"| {ratio_text(row)} | {row['goal']} | {met} |"
        )
    lines += ["", "## Setups", ""] + [f"- {row['benchmark']}: {row['setup']}" for row in rows]
    if failures:
        lines += ["", "## Failed", ""] + [f"- {failure}" for failure in failures]
    lines += ["", "## Machine", "", *machine(), "", *gpu_section()]
    return "\n".join(lines)


def gpu_section() -> list[str]:
    """benchmarks/gpu_results.md, which `benchmarks/gpu_check.sh` writes on a CUDA machine, if it is there."""
    if not GPU_RESULTS.exists():
        return [
            "No GPU figures yet: run `benchmarks/gpu_check.sh` on a CUDA machine (it writes",
            f"{GPU_RESULTS.relative_to(HERE.parent)}, which this report then includes).",
            "",
        ]
    headings_demoted = re.sub(r"^(#+)", r"##\1", GPU_RESULTS.read_text(), flags=re.MULTILINE)
    return ["## GPU (benchmarks/gpu_results.md)", "", headings_demoted, ""]


def run_all(quick: bool) -> tuple[list[dict], list[str], list[float]]:
    """Rows, failures, and the 1-minute load average before the first benchmark and after each."""
    rows, failures, loads = [], [], [os.getloadavg()[0]]
    for name in MODULES:
        print(f"== benchmarks.{name}", flush=True)
        start = time.perf_counter()
        try:
            found = importlib.import_module(f"benchmarks.{name}").run(quick)
        except Exception as err:  # one broken benchmark must not hide the others' results
            traceback.print_exc()
            failures.append(f"{name}: {type(err).__name__}: {err}")
            found = []
        loads.append(os.getloadavg()[0])
        for row in found:
            print(f"   {row['benchmark']}: {ratio_text(row)} (goal {row['goal']})", flush=True)
        print(f"   ({time.perf_counter() - start:.0f} s)", flush=True)
        rows += found
    return rows, failures, loads


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a few iterations each, to check that all run")
    parser.add_argument("--out", type=Path, help="default: benchmarks/RESULTS.md (quick: benchmarks/.cache/)")
    args = parser.parse_args()
    out = args.out or (HERE / ".cache" / "RESULTS.quick.md" if args.quick else HERE / "RESULTS.md")
    started, start = datetime.now(timezone.utc), time.perf_counter()
    rows, failures, loads = run_all(args.quick)
    seconds = time.perf_counter() - start
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text(out, report(rows, failures, args.quick, started, seconds, loads))
    print(f"wrote {out}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
