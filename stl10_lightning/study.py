"""The whole study in one command: supervised, Barlow Twins, linear probe, the pseudo-label ratio sweep in
each mode, then the results table. Each step finds the previous step's run by its folder under one study
folder.

    python -m stl10_lightning.study [--out DIR] [--ratios 0.4,1,2,10] [--modes offline,online] [OVERRIDES...]

OVERRIDES (e.g. `experiment=demo`, `data.root=/datasets/stl10`) go to every stage. Steps whose run
already finished are skipped, so rerunning with the same --out continues an interrupted study.
"""

import argparse
import subprocess
import sys
import time
from pathlib import Path

from stl10_lightning.report.cli import report


def pseudo_label_step(out: Path, mode: str, ratio: str) -> tuple[Path, list[str]]:
    folder = out / "pseudo_label" / mode / f"ratio_{ratio}"
    # The offline mode's teacher is the study's supervised run; the online mode needs none.
    teacher = [f"pseudo.teacher={out / 'supervised'}"] if mode == "offline" else []
    return folder, [
        "stage=pseudo_label",
        f"pseudo.mode={mode}",
        f"ratio={ratio}",
        *teacher,
        f"hydra.run.dir={folder}",
    ]


def steps(out: Path, ratios: str, modes: str = "offline") -> list[tuple[Path, list[str]]]:
    """(folder whose metrics.json marks the step done, train.py arguments) for each step, in order."""
    return [
        (out / "supervised", ["stage=supervised", f"hydra.run.dir={out / 'supervised'}"]),
        (out / "barlow_twins", ["stage=barlow_twins", f"hydra.run.dir={out / 'barlow_twins'}"]),
        (
            out / "linear_probe",
            [
                "stage=linear_probe",
                f"probe.backbone={out / 'barlow_twins'}",
                f"hydra.run.dir={out / 'linear_probe'}",
            ],
        ),
        *[pseudo_label_step(out, mode, ratio) for mode in modes.split(",") for ratio in ratios.split(",")],
    ]


def run_study(out: Path, ratios: str, modes: str, overrides: list[str]) -> None:
    for folder, arguments in steps(out, ratios, modes):
        if (folder / "metrics.json").is_file():
            print(f"study: {folder} already finished, skipped", file=sys.stderr)
            continue
        command = [sys.executable, "-m", "stl10_lightning.train", *arguments, *overrides]
        print(f"study: {' '.join(command[1:])}", file=sys.stderr, flush=True)
        started = time.monotonic()
        finished = subprocess.run(command)
        if finished.returncode != 0:
            sys.exit(
                f"error: the study stopped at {folder} (exit {finished.returncode}); rerun the same "
                f"command with --out {out} to continue from there"
            )
        print(f"study: {folder.relative_to(out)} took {time.monotonic() - started:.0f} s", file=sys.stderr)
    report([out], out / "report")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--out", type=Path, default=Path("outputs/study") / time.strftime("%Y-%m-%d_%H-%M-%S")
    )
    parser.add_argument("--ratios", default="0.4,1,2,10", help="labeled:unlabeled ratios of the sweep")
    parser.add_argument("--modes", default="offline,online", help="pseudo-label modes (pseudo.mode) to sweep")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every stage")
    args = parser.parse_args(argv)
    run_study(args.out, args.ratios, args.modes, args.overrides)


if __name__ == "__main__":
    main()
