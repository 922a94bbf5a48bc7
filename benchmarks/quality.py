"""`make quality DATA=data/realdev`: the study on real photographs at a CPU budget, with its controls, and
benchmarks/QUALITY.md with the table and the checks it must pass.

    python -m benchmarks.quality --data data/realdev [--out outputs/quality] [--seeds 0 1 2] [--ablations]

Every row is one `python train.py` run (or the plain loop) per seed, in --out/seed<seed>/<row>, all at 32 px
with the ImageNet stem, on a stratified `--labeled` images of the labeled pool (so that 1:10 exists on a
set of 20,000 unlabeled images):

- supervised, the default recipe, and the same recipe as a plain PyTorch loop (plain_supervised.py);
- supervised with the online rows' recipe, the control that tells the unlabeled images' share of their gain
  from the recipe's;
- Barlow Twins, then the linear probe on it and on the same backbone at its random initialization;
- offline pseudo-labeling at 1:0.4, 1:1, 1:2 and 1:10, taught by the supervised run, and at 1:10 with the
  supervised run's steps, since at 1:10 the student otherwise takes about four times as many;
- online pseudo-labeling at 1:2 and 1:10 with the default recipe (distribution alignment and
  class-balanced selection); with --ablations also with alignment only and with no guard, and at 1:2 with
  adaptive thresholds and with two forward passes.

Classifier rows share the labeled batches: batch 64, `--epochs` epochs. A table row is one recipe, its
figures averaged over the seeds. Finished runs are kept and read again, so an interrupted command continues
where it stopped, and a later call with more seeds runs only the new ones; its wall time then counts the new
runs only.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from benchmarks.quality_report import ONLINE_RATIOS, Result, checks, seconds_from_log, table, unlabeled_gains
from benchmarks.run import machine
from stl10_lightning.common.atomic import write_json, write_text

HERE = Path(__file__).resolve().parent
RATIOS = ("0.4", "1", "2", "10")
# A smaller projector than the stage's 8192-8192-8192: at 32 px the 8192 projector is ~90 % of a CPU
# step. 2048 wide is the size commonly used for Barlow Twins on 32 px images.
BT_PROJECTOR = "2048-2048-2048"
ALIGNMENT_ONLY = ["pseudo.class_balanced=false"]
NO_GUARD = ["pseudo.distribution_alignment=false", *ALIGNMENT_ONLY]
BATCH = 64  # labeled images a step (FixMatch's B): twice the steps of 128 for the same images
# The online mode's training recipe (conf/pseudo/online.yaml) for a labeled-only run; its labeled view has no
# cutout, since the strong view has its own.
ONLINE_RECIPE = ["optimizer=fixmatch", "model.warmup_epochs=0", "model.ema=0.999", "model.augment.cutout=0"]


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
            "supervised_online_recipe",
            "supervised, the online rows' recipe (control: no unlabeled images)",
            ["stage=supervised", *ONLINE_RECIPE, *budget],
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
                f"offline_{ratio}",
                f"offline pseudo-label 1:{ratio}",
                ["stage=pseudo_label", f"ratio={ratio}", f"pseudo.teacher={out / 'supervised'}", *budget],
                after="supervised",
            )
            for ratio in RATIOS
        ),
        Row(
            "offline_10_supervised_steps",
            "offline pseudo-label 1:10, the supervised run's steps (control)",
            [
                "stage=pseudo_label",
                "ratio=10",
                f"pseudo.teacher={out / 'supervised'}",
                "pseudo.steps=match_supervised",  # the same steps as supervised: only the data differs
                *budget,
            ],
            after="supervised",
        ),
        *(
            Row(
                f"online_{ratio}_default",
                f"online pseudo-label 1:{ratio}, default",
                [*online, f"ratio={ratio}"],
                long=True,
            )
            for ratio in ONLINE_RATIOS
        ),
        *(online_ablations(online) if ablations else []),
    ]


def online_ablations(online: list[str]) -> list[Row]:
    """What the online default was chosen against: alignment alone, no guard, adaptive thresholds and the
    two-pass step."""
    return [
        *(
            Row(
                f"online_{ratio}_{name}",
                f"online 1:{ratio}, {what}",
                [*online, f"ratio={ratio}", *arguments],
                long=True,
            )
            for name, what, arguments in (
                ("alignment", "distribution alignment only", ALIGNMENT_ONLY),
                ("no_guard", "no guard", NO_GUARD),
            )
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


@dataclass
class Job:
    """One row's run at one seed, in --out/seed<seed>/<row>."""

    seed: int
    row: Row
    folder: Path

    @property
    def key(self) -> str:  # in minutes.json
        return f"{self.folder.parent.name}/{self.row.name}"


def jobs(args: argparse.Namespace) -> list[Job]:
    """Every row at every seed; a row reads the runs of its own seed (teacher, pretrained backbone)."""
    found = []
    for seed in args.seeds:
        out = args.out / f"seed{seed}"
        found += [
            Job(seed, row, out / row.name) for row in rows(out, args.epochs, args.bt_epochs, args.ablations)
        ]
    return found


def shared_arguments(args: argparse.Namespace, seed: int) -> list[str]:
    return [
        f"data.root={args.data}",
        "data.image_size=32",
        "backbone.stem=imagenet",
        f"data.labeled_count={args.labeled}",
        f"seed={seed}",
        "data.num_workers=2",
        "callbacks.progress_bar=null",
        *args.override,
    ]


def finished(job: Job) -> bool:
    if job.row.plain:
        return (job.folder / "result.json").is_file()
    return (job.folder / "metrics.json").is_file() and (job.folder / "config.yaml").is_file()


def metrics(job: Job) -> dict:
    return json.loads((job.folder / ("result.json" if job.row.plain else "metrics.json")).read_text())


def command(job: Job, args: argparse.Namespace) -> list[str]:
    if job.row.plain:
        return [
            sys.executable, "-m", "benchmarks.plain_supervised", f"--root={args.data}", "--image-size=32",
            "--stem=imagenet", f"--labeled-count={args.labeled}", f"--seed={job.seed}", *job.row.arguments,
            f"--out={job.folder / 'result.json'}",
        ]  # fmt: skip
    last = job.folder / "checkpoints" / "last.ckpt"
    resume = [f"ckpt_path={last}"] if last.exists() else []  # an interrupted run continues
    arguments = [
        *shared_arguments(args, job.seed),
        *job.row.arguments,
        f"hydra.run.dir={job.folder}",
        *resume,
    ]
    return [sys.executable, "train.py", *arguments]


def run_all(all_jobs: list[Job], args: argparse.Namespace, seconds: dict, timings_file: Path) -> None:
    """Run the unfinished jobs, `args.jobs` at a time, each after the run it reads; stop at a failure.

    Each job gets cores / jobs threads: two one-thread runs of these small models on 2 cores train
    faster together than one run on both, and threads beyond the free cores make a step several times
    slower."""
    waiting = sorted((job for job in all_jobs if not finished(job)), key=lambda job: not job.row.long)
    threads = str(threads_per_job(args.jobs))
    running: dict[str, tuple[Job, subprocess.Popen, float]] = {}
    while waiting or running:
        ready = [job for job in waiting if job.row.after is None or finished(reads(all_jobs, job))]
        while ready and len(running) < args.jobs:
            job = ready.pop(0)
            waiting.remove(job)
            job.folder.mkdir(parents=True, exist_ok=True)
            line = command(job, args)
            print(f"[quality] {job.key}: {' '.join(line[1:])}", flush=True)
            log = (job.folder / "quality_command.log").open("w")
            process = subprocess.Popen(
                line, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": threads}
            )
            running[job.key] = (job, process, time.perf_counter())
        time.sleep(2)
        for key, (job, process, started) in list(running.items()):
            if process.poll() is None:
                continue
            del running[key]
            if process.returncode != 0:
                for _, other, _ in running.values():
                    other.terminate()
                raise SystemExit(f"error: {key} failed (exit {process.returncode}); see {job.folder}")
            seconds[key] = time.perf_counter() - started
            write_json(timings_file, seconds)
            print(f"[quality] {key} done in {seconds[key] / 60:.1f} min", flush=True)


def threads_per_job(jobs: int) -> int:
    return max(1, (os.cpu_count() or 1) // jobs)


def reads(all_jobs: list[Job], job: Job) -> Job:
    """The job whose finished run `job` reads: its `after` row at the same seed."""
    return next(other for other in all_jobs if other.seed == job.seed and other.row.name == job.row.after)


def write_report(args: argparse.Namespace, all_jobs: list[Job], seconds: dict, wall: float | None) -> Path:
    """`wall`: this call's seconds, None when every run was already finished and only the report is new."""
    results: dict[str, Result] = {}
    run_minutes: dict[str, list[float | None]] = {}
    for job in all_jobs:
        result = results.setdefault(job.row.name, Result(job.row.what, [], []))
        result.runs.append(metrics(job))
        result.folders.append(job.folder)
        taken = seconds.get(job.key) or seconds_from_log(job.folder)
        run_minutes.setdefault(job.row.name, []).append(None if taken is None else taken / 60)
    minutes = {
        name: None if None in taken else sum(taken) / len(taken) for name, taken in run_minutes.items()
    }
    total = sum(taken or 0 for each in run_minutes.values() for taken in each)
    lines = table(results, args.seeds, minutes)
    this_call = (
        "none ran in this command's last call, which rewrote the report only"
        if wall is None
        else f"{wall / 60:.0f} in this command's last call"
    )
    seeds = (
        f"one seed ({args.seeds[0]})"
        if len(args.seeds) == 1
        else f"seeds {', '.join(map(str, args.seeds))} (mean ± standard deviation over them; minutes per run)"
    )
    text = "\n".join([
        "# Quality on a development set of real photographs",
        "",
        "**Development set (CIFAR-10 photos, 32 px), not STL-10.** 5,000 labeled, 2,000 test and 20,000 "
        "unlabeled CIFAR-10 photos in STL-10's layout; every run here uses a stratified "
        f"{args.labeled:,} of the labeled images ({args.labeled - 500:,} train + 500 val), so that 1:10 "
        f"fits in the unlabeled set. ResNet-18 with the ImageNet stem, {seeds}, test accuracy of the best "
        "validation epoch.",
        "",
        f"Made by `make quality DATA={args.data}` (`python -m benchmarks.quality`) on "
        f"{datetime.now(timezone.utc):%Y-%m-%d}. Budget: {args.epochs} epochs of batch {BATCH} for every "
        f"classifier row, {args.bt_epochs} epochs for Barlow Twins; {total:.0f} minutes of runs in all "
        f"({this_call}). Minutes are each run's wall time while the runs "
        "shared the machine, so they overstate a run alone. \"vs supervised\" is in points of test accuracy.",
        "",
        *lines,
        "",
        "## Checks",
        "",
        *checks(results),
        "",
        "## What the unlabeled images add",
        "",
        "The checks compare the online rows with the supervised default. Against the supervised run with the "
        "online rows' own recipe, the difference is the unlabeled images' alone:",
        "",
        *unlabeled_gains(results),
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
        help="also the online runs without a guard, with adaptive thresholds and with two passes (about an "
        "hour more on 2 cores)",
    )
    parser.add_argument("--labeled", type=int, default=2000, help="labeled images used (train + val)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="each row runs at each seed")
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time")
    parser.add_argument("--override", action="append", default=[], help="a train.py override for every run")
    parser.add_argument("--report", type=Path, default=HERE / "QUALITY.md")
    args = parser.parse_args(argv)
    if len(set(args.seeds)) != len(args.seeds):
        parser.error(f"--seeds {' '.join(map(str, args.seeds))} repeats a seed; give each seed once")
    all_jobs = jobs(args)
    timings_file = args.out / "minutes.json"
    seconds = json.loads(timings_file.read_text()) if timings_file.exists() else {}
    started, any_to_run = time.perf_counter(), not all(map(finished, all_jobs))
    run_all(all_jobs, args, seconds, timings_file)
    wall = time.perf_counter() - started if any_to_run else None
    print(f"[quality] wrote {write_report(args, all_jobs, seconds, wall)}")


if __name__ == "__main__":
    main()
