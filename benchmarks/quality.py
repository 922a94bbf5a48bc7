"""`make quality DATA=data/realdev`: the study on real photographs at a CPU budget, with its controls, and
benchmarks/QUALITY.md with the table and the checks it must pass.

    python -m benchmarks.quality --data data/realdev [--out outputs/quality] [--epochs 100] [--ablations]

Every row is one `python train.py` run (or the plain loop), in its own folder under --out, all at 32 px
with the ImageNet stem, on a stratified `--labeled` images of the labeled pool (so that 1:10 exists on a
set of 20,000 unlabeled images):

- supervised, the default recipe, and the same recipe as a plain PyTorch loop (plain_supervised.py);
- Barlow Twins, then the linear probe on it and on the same backbone at its random initialization;
- offline pseudo-labeling at 1:0.4, 1:1, 1:2 and 1:10, taught by the supervised run;
- online pseudo-labeling at 1:2 and 1:10 with the default recipe (distribution alignment); with
  --ablations also with no guard, and at 1:2 with adaptive thresholds and with two forward passes.

Classifier rows share the labeled batches: batch 64, `--epochs` epochs. Finished runs are kept and read
again, so an interrupted command continues where it stopped; its wall time then counts the new runs only.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from benchmarks.run import machine
from stl10_lightning.common.atomic import write_json, write_text
from stl10_lightning.stages.online_pseudo_label import COLLAPSE_BOUND, MIN_MASKED_PER_CLASS

HERE = Path(__file__).resolve().parent
RATIOS = ("0.4", "1", "2", "10")
ONLINE_RATIOS = ("2", "10")
COLLAPSE_MARK = "of the confident pseudo-labels are class"  # the collapse warning's words in train.log
# A smaller projector than the stage's 8192-8192-8192: at 32 px the 8192 projector is ~90 % of a CPU
# step. 2048 wide is the size commonly used for Barlow Twins on 32 px images.
BT_PROJECTOR = "2048-2048-2048"
NO_GUARD = ["pseudo.distribution_alignment=false"]
BATCH = 64  # labeled images a step (FixMatch's B): twice the steps of 128 for the same images


@dataclass
class Row:
    name: str  # folder under --out, and the table's row
    what: str  # what the row is, in words
    arguments: list[str]  # train.py overrides; the plain loop's arguments when plain is True
    plain: bool = False
    after: str | None = None  # the row whose finished run this one reads
    long: bool = False  # started before the others, so that the last runs do not wait on one long run


def rows(out: Path, epochs: int, bt_epochs: int, ablations: bool) -> list[Row]:
    """The rows in the order of the table; `long` ones start first (run_all)."""
    budget = [f"trainer.max_epochs={epochs}", f"data.batch_size={BATCH}"]
    online = ["stage=pseudo_label", "pseudo=online", "pseudo.mu=2", *budget]
    return [
        Row("supervised", "supervised, default recipe", ["stage=supervised", *budget]),
        Row(
            "plain_loop",
            "plain PyTorch loop, same recipe (control)",
            [f"--epochs={epochs}", f"--batch-size={BATCH}"],
            plain=True,
        ),
        Row(
            "barlow_twins",
            f"Barlow Twins pretraining ({bt_epochs} epochs, projector {BT_PROJECTOR})",
            [
                "stage=barlow_twins",
                f"trainer.max_epochs={bt_epochs}",
                f"model.projector={BT_PROJECTOR}",
                "data.batch_size=128",  # twice the steps of the stage's 256 for the same images
                "model.warmup_epochs=1",  # the stage's 10 would outlast a short budget
            ],
            long=True,
        ),
        *(
            Row(
                f"offline_{ratio}",
                f"offline pseudo-label 1:{ratio}",
                ["stage=pseudo_label", f"ratio={ratio}", f"pseudo.teacher={out / 'supervised'}", *budget],
                after="supervised",
            )
            for ratio in RATIOS
        ),
        Row(
            "probe",
            "linear probe on Barlow Twins",
            ["stage=linear_probe", f"probe.backbone={out / 'barlow_twins'}"],
            after="barlow_twins",
        ),
        Row(
            "probe_random",
            "linear probe on a random init (control)",
            ["stage=linear_probe", "probe.backbone=random"],
        ),
        *(
            Row(
                f"online_{ratio}_da",
                f"online pseudo-label 1:{ratio}, default",
                [*online, f"ratio={ratio}"],
                long=True,
            )
            for ratio in ONLINE_RATIOS
        ),
        *(online_ablations(online) if ablations else []),
    ]


def online_ablations(online: list[str]) -> list[Row]:
    """What the online default was chosen against: each guard and the two-pass step, without alignment."""
    return [
        *(
            Row(f"online_{ratio}", f"online 1:{ratio}, no guard", [*online, f"ratio={ratio}", *NO_GUARD])
            for ratio in ONLINE_RATIOS
        ),
        Row(
            "online_2_adaptive",
            "online 1:2, adaptive thresholds, no alignment",
            [*online, "ratio=2", *NO_GUARD, "pseudo.adaptive_threshold=true"],
        ),
        Row(
            "online_2_two_pass",
            "online 1:2, no guard, two forward passes",
            [*online, "ratio=2", *NO_GUARD, "pseudo.one_pass=false"],
        ),
    ]


def shared_arguments(args: argparse.Namespace) -> list[str]:
    return [
        f"data.root={args.data}",
        "data.image_size=32",
        "backbone.stem=imagenet",
        f"data.labeled_count={args.labeled}",
        f"seed={args.seed}",
        "data.num_workers=2",
        "callbacks.progress_bar=null",
        *args.override,
    ]


def finished(row: Row, folder: Path) -> bool:
    if row.plain:
        return (folder / "result.json").is_file()
    return (folder / "metrics.json").is_file() and (folder / "config.yaml").is_file()


def metrics(row: Row, folder: Path) -> dict:
    return json.loads((folder / ("result.json" if row.plain else "metrics.json")).read_text())


def command(row: Row, args: argparse.Namespace) -> list[str]:
    folder = args.out / row.name
    if row.plain:
        return [
            sys.executable, "-m", "benchmarks.plain_supervised", f"--root={args.data}", "--image-size=32",
            "--stem=imagenet", f"--labeled-count={args.labeled}", f"--seed={args.seed}", *row.arguments,
            f"--out={folder / 'result.json'}",
        ]  # fmt: skip
    last = folder / "checkpoints" / "last.ckpt"
    resume = [f"ckpt_path={last}"] if last.exists() else []  # an interrupted run continues
    arguments = [*shared_arguments(args), *row.arguments, f"hydra.run.dir={folder}", *resume]
    return [sys.executable, "train.py", *arguments]


def run_all(all_rows: list[Row], args: argparse.Namespace, seconds: dict, timings_file: Path) -> None:
    """Run the unfinished rows, `args.jobs` at a time, each after the row it reads; stop at a failure.

    Each job gets cores / jobs threads: two one-thread runs of these small models on 2 cores train
    faster together than one run on both, and threads beyond the free cores make a step several times
    slower."""
    waiting = sorted(
        (row for row in all_rows if not finished(row, args.out / row.name)), key=lambda r: not r.long
    )
    threads = str(threads_per_job(args.jobs))
    running: dict[str, tuple[subprocess.Popen, float]] = {}
    while waiting or running:
        ready = [row for row in waiting if row.after is None or finished_row(all_rows, row.after, args.out)]
        while ready and len(running) < args.jobs:
            row = ready.pop(0)
            waiting.remove(row)
            (args.out / row.name).mkdir(parents=True, exist_ok=True)
            line = command(row, args)
            print(f"[quality] {row.name}: {' '.join(line[1:])}", flush=True)
            log = (args.out / row.name / "quality_command.log").open("w")
            process = subprocess.Popen(
                line, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": threads}
            )
            running[row.name] = (process, time.perf_counter())
        time.sleep(2)
        for name, (process, started) in list(running.items()):
            if process.poll() is None:
                continue
            del running[name]
            if process.returncode != 0:
                for other, _ in running.values():
                    other.terminate()
                raise SystemExit(f"error: {name} failed (exit {process.returncode}); see {args.out / name}")
            seconds[name] = time.perf_counter() - started
            write_json(timings_file, seconds)
            print(f"[quality] {name} done in {seconds[name] / 60:.1f} min", flush=True)


def threads_per_job(jobs: int) -> int:
    return max(1, (os.cpu_count() or 1) // jobs)


def finished_row(all_rows: list[Row], name: str, out: Path) -> bool:
    return finished(next(row for row in all_rows if row.name == name), out / name)


def online_notes(folder: Path, summary: dict) -> tuple[str, bool, float | None]:
    """(notes, collapse warned, the top class's largest share after the first epoch).

    A share counts from the epoch's MIN_MASKED_PER_CLASS x classes confident labels on, as the warning
    judges it: 4 labels of one class out of 4 say nothing about a collapse."""
    warned = COLLAPSE_MARK in (folder / "train.log").read_text()
    enough = MIN_MASKED_PER_CLASS * len(summary.get("masked_per_class_last_epoch") or range(10))
    by_epoch = summary.get("top_class_share_by_epoch", [])
    masked = summary.get("masked_by_epoch") or [enough] * len(by_epoch)  # a run from before the count
    shares = [share for share, count in list(zip(by_epoch, masked, strict=True))[1:] if count >= enough]
    top = max(shares) if shares else None
    precision = [p for p in summary.get("precision_by_epoch", []) if p is not None]
    notes = f"mask rate {summary['mask_rate_by_epoch'][-1]:.2f} at the end; " + (
        f"top class share after epoch 1 at most {top:.2f} (epochs with {enough} confident labels or more)"
        if top is not None
        else f"no epoch after the first with {enough} confident labels"
    )
    if precision:
        notes += f"; precision {min(precision):.2f} at worst, {precision[-1]:.2f} at the end"
    return notes + ("; **collapse warning**" if warned else "; no collapse warning"), warned, top


def offline_notes(summary: dict) -> str:
    precision = summary.get("val_precision")
    return (
        f"kept {summary['kept']:,} of {summary['unlabeled_used']:,} ({summary['kept_frac']:.1%}); "
        f"precision on val images above the threshold: "
        + ("none passed" if precision is None else f"{precision:.3f}")
        + f"; teacher val acc {summary['teacher_val_acc']:.3f}"
    )


def seconds_from_log(folder: Path) -> float | None:
    """A run's wall time from its train.log's first and last timestamps: for a row this command did not
    start (e.g. run by hand into its folder)."""
    log = folder / "train.log"
    stamps = re.findall(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)", log.read_text(), re.M) if log.exists() else []
    if len(stamps) < 2:
        return None
    first, last = (datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S") for stamp in (stamps[0], stamps[-1]))
    return (last - first).total_seconds()


def table(all_rows: list[Row], out: Path, seconds: dict) -> tuple[list[str], dict]:
    lines = ["| run | test acc | macro-F1 | vs supervised | minutes | notes |", "|---|---|---|---|---|---|"]
    results = {row.name: metrics(row, out / row.name) for row in all_rows}
    base = results["supervised"]["test/acc"]
    for row in all_rows:
        summary, notes = results[row.name], ""
        accuracy = summary.get("test/acc")
        if row.name.startswith("online"):
            notes, summary["warned"], summary["top_share"] = online_notes(out / row.name, summary)
        elif row.name.startswith("offline"):
            notes = offline_notes(summary)
        elif row.name == "barlow_twins":
            notes = f"kNN val acc {summary.get('knn/acc', float('nan')):.3f} (k=200)"
        f1 = summary.get("test/f1", float("nan"))
        cells = (
            ["-"] * 3
            if accuracy is None
            else [f"{accuracy:.2%}", f"{f1:.2%}", f"{(accuracy - base) * 100:+.1f}"]
        )
        taken = seconds.get(row.name) or seconds_from_log(out / row.name)
        minutes = "?" if taken is None else f"{taken / 60:.1f}"
        lines.append(f"| {row.what} | {' | '.join(cells)} | {minutes} | {notes} |")
    return lines, results


def checks(results: dict) -> list[str]:
    """The issue's bars, each with the figures it compares."""
    supervised = results["supervised"]["test/acc"]
    bars = []
    for ratio in ONLINE_RATIOS:
        online = results[f"online_{ratio}_da"]
        gain = (online["test/acc"] - supervised) * 100
        bars.append((f"online 1:{ratio} >= supervised + 6 points ({gain:+.1f})", gain >= 6))
        top = online.get("top_share")
        bound = COLLAPSE_BOUND / 10
        bars.append((
            f"online 1:{ratio}: no collapse warning, top class share after epoch 1 <= {bound:.0%} "
            f"({'none' if top is None else f'{top:.0%}'})",
            not online["warned"] and (top is None or top <= bound),
        ))  # fmt: skip
    probe = (results["probe"]["test/acc"] - results["probe_random"]["test/acc"]) * 100
    bars.append((f"Barlow Twins probe >= random-init probe + 8 points ({probe:+.1f})", probe >= 8))
    plain = (supervised - results["plain_loop"]["test/acc"]) * 100
    bars.append((f"supervised within 1 point of the plain loop, or ahead ({plain:+.1f})", plain >= -1))
    return [f"- [{'x' if met else ' '}] {text}" for text, met in bars]


def write_report(args: argparse.Namespace, all_rows: list[Row], seconds: dict, wall: float) -> Path:
    lines, results = table(all_rows, args.out, seconds)
    taken = [seconds.get(row.name) or seconds_from_log(args.out / row.name) or 0 for row in all_rows]
    total = sum(taken) / 60
    text = "\n".join([
        "# Quality on a development set of real photographs",
        "",
        "**Development set (CIFAR-10 photos, 32 px), not STL-10.** 5,000 labeled, 2,000 test and 20,000 "
        "unlabeled CIFAR-10 photos in STL-10's layout; every run here uses a stratified "
        f"{args.labeled:,} of the labeled images ({args.labeled - 500:,} train + 500 val), so that 1:10 "
        "fits in the unlabeled set. ResNet-18 with the ImageNet stem, one seed "
        f"({args.seed}), test accuracy of the best validation epoch.",
        "",
        f"Made by `make quality DATA={args.data}` (`python -m benchmarks.quality`) on "
        f"{datetime.now(timezone.utc):%Y-%m-%d}. Budget: {args.epochs} epochs of batch {BATCH} for every "
        f"classifier row, {args.bt_epochs} epochs for Barlow Twins; {total:.0f} minutes of runs in all "
        f"({wall / 60:.0f} in this command's last call). Minutes are each run's wall time while the runs "
        "shared the machine, so they overstate a run alone. \"vs supervised\" is in points of test accuracy.",
        "",
        *lines,
        "",
        "## Checks",
        "",
        *checks(results),
        "",
        "## Machine",
        "",
        *machine(),
        f"- {args.jobs} runs at a time, {threads_per_job(args.jobs)} torch thread(s) each",
        "",
    ])  # fmt: skip
    write_text(args.report, text)
    return args.report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="folder that contains stl10_binary/")
    parser.add_argument("--out", type=Path, default=Path("outputs/quality"))
    parser.add_argument("--epochs", type=int, default=100, help="epochs of every classifier row")
    parser.add_argument("--bt-epochs", type=int, default=10, help="epochs of Barlow Twins pretraining")
    parser.add_argument(
        "--ablations",
        action="store_true",
        help="also the online runs without a guard, with adaptive "
        "thresholds and with two passes (about 2 more hours)",
    )
    parser.add_argument("--labeled", type=int, default=2000, help="labeled images used (train + val)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time")
    parser.add_argument("--override", action="append", default=[], help="a train.py override for every run")
    parser.add_argument("--report", type=Path, default=HERE / "QUALITY.md")
    args = parser.parse_args(argv)
    all_rows = rows(args.out, args.epochs, args.bt_epochs, args.ablations)
    timings_file = args.out / "minutes.json"
    seconds = json.loads(timings_file.read_text()) if timings_file.exists() else {}
    started = time.perf_counter()
    run_all(all_rows, args, seconds, timings_file)
    print(f"[quality] wrote {write_report(args, all_rows, seconds, time.perf_counter() - started)}")


if __name__ == "__main__":
    main()
