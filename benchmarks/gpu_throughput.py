"""Training throughput of the real Barlow Twins and supervised stages on a GPU, across speed settings.

    python -m benchmarks.gpu_throughput --root DIR [--out FILE] [--budget SECONDS] [--smi CSV]

benchmarks/gpu_check.sh runs it on a CUDA machine. Each setting composes the stage's real config
(resnet18, 96 px, the stage's batch size, optimizer and on-device augmentation, conf/trainer/gpu.yaml's
cudnn benchmark) with data.root at DIR, and times the steps after a warm-up under a plain Trainer with
`limit_train_batches`, no validation, logger or checkpoints. The settings (the config has no switch
yet for channels_last or compile):

- precision: bf16-mixed or 16-mixed;
- channels_last: the module's weights converted to that memory format before fit (cuDNN then keeps the
  activations in it too);
- compile: the backbone compiled in place with `torch.compile` (its first steps compile; the warm-up
  absorbs them);
- finite check: conf/callbacks' StopOnNonFiniteLoss at its default, every step: each check waits for
  the GPU (callbacks.finite_loss.every_n_steps spaces them out).

Settings run cheapest first and stop when the next would overrun `--budget`. With `--smi`, the CSV that
`nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader,nounits` wrote during
the run gives each setting's mean utilization and peak memory over its timed steps. `--augmentation` adds
benchmarks/augmentation.py's measurement on this machine. `--smoke` checks this script on a CPU:
TinyNet at 32 px, bf16-mixed only.
"""

import argparse
import gc
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from benchmarks.lightning_trainer import StepClock, bench_trainer
from stl10_lightning.common.atomic import write_text
from stl10_lightning.launch.callbacks import StopOnNonFiniteLoss
from stl10_lightning.train import CONFIG_DIR

STAGES = ("barlow_twins", "supervised")
PRECISIONS = ("bf16-mixed", "16-mixed")
SMOKE = ["backbone=tiny", "data.image_size=32", "data.batch_size=32", "data.num_workers=0"]
COMPILE_GUESS_S = 120  # budget for a compiled setting before one has been timed
AUGMENTATION_GUESS_S = 60


@dataclass(frozen=True)
class Setting:
    stage: str
    precision: str
    channels_last: bool = False
    compile: bool = False
    finite_check: bool = False


def settings(precisions: tuple[str, ...]) -> list[Setting]:
    """Eager settings first (seconds each), then compiled ones (a minute or two each)."""
    eager = [Setting(s, p, cl) for s in STAGES for p in precisions for cl in (False, True)]
    checked = [Setting(s, precisions[0], finite_check=True) for s in STAGES]
    compiled = [Setting(s, p, cl, compile=True) for p in precisions for s in STAGES for cl in (True, False)]
    return eager + checked + compiled


def compose_stage(stage: str, root: Path, smoke: bool):
    overrides = [f"stage={stage}", f"data.root={root}", "run_dir=unused"]
    if smoke:
        overrides += SMOKE + (["model.projector=256-256"] if stage == "barlow_twins" else [])
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return compose("train", overrides=overrides)


def synced_unix_time() -> float:
    """Wall time once the GPU has finished what was queued; unix time, to match nvidia-smi's samples."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.time()


def measure(setting: Setting, root: Path, warmup: int, steps: int, smoke: bool) -> dict:
    cfg = compose_stage(setting.stage, root, smoke)
    data = instantiate(cfg.data)
    torch.manual_seed(0)
    model = instantiate(cfg.model)
    if setting.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if setting.compile:
        model.backbone.compile()
    clock = StepClock(warmup, clock=synced_unix_time)
    callbacks = [clock, *([StopOnNonFiniteLoss(every_n_steps=1)] if setting.finite_check else [])]
    trainer = bench_trainer(
        accelerator="cpu" if smoke else "gpu",
        precision=setting.precision,
        benchmark=not smoke,
        limit_train_batches=warmup + steps,
        limit_val_batches=0,
        callbacks=callbacks,
    )
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    trainer.fit(model, datamodule=data)
    batch = cfg.data.unlabeled_batch_size or cfg.data.batch_size
    return {
        "steps/s": clock.steps_per_second(),
        "images/s": clock.steps_per_second() * batch,
        "batch": batch,
        "window": (clock.start, clock.end),
        "peak_allocated_gib": torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else 0.0,
    }


def release() -> None:
    """Free the last setting's model, compiled graphs and cached GPU memory before the next."""
    torch._dynamo.reset()
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def gpu_samples(path: Path | None) -> list[tuple[float, float, float]]:
    """(unix time, utilization %, memory used MiB) from nvidia-smi's CSV; unreadable lines are skipped."""
    if path is None or not path.exists():
        return []
    samples = []
    for line in path.read_text().splitlines():
        parts = [part.strip() for part in line.split(",")]
        try:
            when = datetime.strptime(parts[0], "%Y/%m/%d %H:%M:%S.%f").timestamp()
            samples.append((when, float(parts[1]), float(parts[2])))
        except (ValueError, IndexError):  # a header, or a line cut off when the sampler was stopped
            continue
    return samples


def utilization(samples: list[tuple[float, float, float]], window: tuple[float, float]) -> str:
    inside = [(util, memory) for when, util, memory in samples if window[0] <= when <= window[1]]
    if not inside:
        return "- | -"
    mean_util = sum(util for util, _ in inside) / len(inside)
    return f"{mean_util:.0f}% ({len(inside)} samples) | {max(memory for _, memory in inside) / 1024:.1f}"


def describe(setting: Setting) -> str:
    return (
        f"| {setting.stage} | {setting.precision} | {'yes' if setting.channels_last else 'no'} "
        f"| {'yes' if setting.compile else 'no'} | {'every step' if setting.finite_check else 'no'}"
    )


def machine() -> str:
    if not torch.cuda.is_available():
        return "no CUDA device (smoke run on the CPU)"
    return (
        f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}, "
        f"cuDNN {torch.backends.cudnn.version()}, pytorch_lightning {pl.__version__}"
    )


def run(args: argparse.Namespace, started: float) -> list[str]:
    """The results table's rows, in the order of `settings`; those that would overrun are skipped.

    The results file is rewritten after every setting, so a run killed from outside keeps the rest.
    """
    precisions = ("bf16-mixed",) if args.smoke else PRECISIONS
    durations: dict[bool, list[float]] = {False: [], True: []}
    outcomes: list[tuple[Setting, dict | str]] = []
    for setting in settings(precisions):
        timed = durations[setting.compile]
        guess = max(timed) if timed else (COMPILE_GUESS_S if setting.compile else 30)
        if time.perf_counter() - started + guess > args.budget:
            outcomes.append((setting, "skipped: time budget"))
            continue
        print(f"-- {setting}", flush=True)
        begin = time.perf_counter()
        try:
            outcomes.append((setting, measure(setting, args.root, args.warmup, args.steps, args.smoke)))
        except Exception as err:  # e.g. out of memory, or a compile error: the other settings still run
            outcomes.append((setting, f"failed: {type(err).__name__}: {str(err)[:120]}"))
        finally:
            release()
        timed.append(time.perf_counter() - begin)
        print(f"   {outcomes[-1][1]} in {timed[-1]:.0f} s", flush=True)
        write_text(args.out, report(rows(outcomes, args.smi), args, time.perf_counter() - started))
    return rows(outcomes, args.smi)


def rows(outcomes: list[tuple[Setting, dict | str]], smi: Path | None) -> list[str]:
    samples = gpu_samples(smi)
    return [row(setting, outcome, samples) for setting, outcome in outcomes]


def row(setting: Setting, outcome: dict | str, samples: list[tuple[float, float, float]]) -> str:
    if isinstance(outcome, str):
        return f"{describe(setting)} | {outcome} | | | | |"
    return (
        f"{describe(setting)} | {outcome['steps/s']:.2f} | {outcome['images/s']:,.0f} "
        f"| {utilization(samples, outcome['window'])} | {outcome['peak_allocated_gib']:.1f} |"
    )


def augmentation_section(seconds_left: float) -> list[str]:
    """benchmarks/augmentation.py on this machine: our views on the GPU against torchvision's PIL path."""
    if seconds_left < AUGMENTATION_GUESS_S:
        return ["", f"Augmentation benchmark skipped: {seconds_left:.0f} s of the budget left.", ""]
    from benchmarks import augmentation

    lines = ["", "## Two-view augmentation (benchmarks/augmentation.py)", ""]
    for result in augmentation.run():
        lines.append(
            f"- {result['benchmark']}: ours {result['ours']:,.0f} {result['unit']}, torchvision "
            f"{result['baseline']:,.0f}: {result['ratio']:.2f}x (goal {result['goal']}); {result['setup']}"
        )
    return [*lines, ""]


def report(table: list[str], args: argparse.Namespace, seconds: float) -> str:
    return "\n".join(
        [
            "# GPU throughput",
            "",
            f"{machine()}. Written by `python -m benchmarks.gpu_throughput` on "
            f"{datetime.now():%Y-%m-%d %H:%M} (local time) in {seconds / 60:.1f} minutes; "
            f"{args.steps} timed steps after {args.warmup} warm-up steps per setting. Images/s counts "
            "the stage's training batch (Barlow Twins: unlabeled images, two views each).",
            "",
            "| stage | precision | channels_last | compile | finite check | steps/s | images/s "
            "| GPU util | GPU memory used (GiB) | peak allocated (GiB) |",
            "|---|---|---|---|---|---:|---:|---:|---:|---:|",
            *table,
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", type=Path, required=True, help="the folder that holds stl10_binary/")
    parser.add_argument("--out", type=Path, default=Path("gpu_throughput.md"))
    parser.add_argument("--budget", type=float, default=300, help="seconds for all settings together")
    parser.add_argument("--smi", type=Path, help="nvidia-smi's CSV, sampled during this run")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--augmentation", action="store_true", help="also run benchmarks/augmentation.py")
    parser.add_argument("--smoke", action="store_true", help="check this script on a CPU, in minutes")
    args = parser.parse_args()
    start = time.perf_counter()
    table = run(args, start)
    extra = augmentation_section(args.budget - (time.perf_counter() - start)) if args.augmentation else []
    write_text(args.out, report(table, args, time.perf_counter() - start) + "\n".join(extra))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
