"""benchmarks/QUALITY.md from the finished runs of `make quality`: one table row per recipe, its figures
averaged over the seeds run, then the checks the results are held to and the machine."""

import re
import statistics
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from stl10_lightning.stages.online_pseudo_label import COLLAPSE_BOUND, MIN_MASKED_PER_CLASS

COLLAPSE_MARK = "of the confident pseudo-labels are class"  # the collapse warning's words in train.log
ONLINE_RATIOS = ("2", "10")


@dataclass
class Result:
    """One recipe's runs, one per seed: their metrics.json (or result.json) and folders."""

    what: str
    runs: list[dict]
    folders: list[Path]

    def mean(self, key: str) -> float | None:
        values = [run[key] for run in self.runs if key in run]
        return statistics.fmean(values) if len(values) == len(self.runs) and values else None

    def spread(self, key: str) -> float | None:
        """The standard deviation over seeds; None for a single seed."""
        values = [run[key] for run in self.runs if key in run]
        return statistics.stdev(values) if len(values) > 1 else None


def online_notes(folder: Path, summary: dict) -> tuple[str, bool, float | None]:
    """(notes, collapse warned, the top class's largest share after the first epoch).

    A share and a precision count from the epoch's MIN_MASKED_PER_CLASS x classes confident labels on,
    as the warning judges a share: 4 labels of one class out of 4 say nothing about a collapse, and an
    epoch in which 2 labels passed has a precision of 0 or 1 by chance."""
    warned = COLLAPSE_MARK in (folder / "train.log").read_text()
    enough = MIN_MASKED_PER_CLASS * len(summary.get("masked_per_class_last_epoch") or range(10))
    by_epoch = summary.get("top_class_share_by_epoch", [])
    masked = summary.get("masked_by_epoch") or [enough] * len(by_epoch)  # a run from before the count
    judged = [epoch for epoch, count in enumerate(masked) if epoch > 0 and count >= enough]
    top = max(by_epoch[epoch] for epoch in judged) if judged else None
    precision = summary.get("precision_by_epoch", [])
    worst = [precision[epoch] for epoch in judged if epoch < len(precision) and precision[epoch] is not None]
    notes = f"mask rate {summary['mask_rate_by_epoch'][-1]:.2f} at the end; " + (
        f"over epochs after the first with {enough} confident labels or more: top class share at most "
        f"{top:.2f}" + (f", labeled-batch precision {min(worst):.2f} at worst" if worst else "")
        if judged
        else f"no epoch after the first with {enough} confident labels"
    )
    if precision and precision[-1] is not None:
        notes += f"; labeled-batch precision {precision[-1]:.2f} at the end"
    return notes + ("; **collapse warning**" if warned else "; no collapse warning"), warned, top


def offline_notes(summary: dict) -> str:
    precision = summary.get("val_precision")
    return (
        f"kept {summary['kept']:,} of {summary['unlabeled_used']:,} ({summary['kept_frac']:.1%}); "
        f"precision on val images above the threshold: "
        + ("none passed" if precision is None else f"{precision:.3f}")
        + f"; teacher val acc {summary['teacher_val_acc']:.3f}"
    )


def run_notes(name: str, folder: Path, summary: dict) -> str:
    """What a row's run shows besides its accuracy."""
    if name.startswith("online"):
        return online_notes(folder, summary)[0]
    if name.startswith("offline"):
        return offline_notes(summary)
    if name == "barlow_twins":
        return f"kNN val acc {summary.get('knn/acc', float('nan')):.3f} (k=200)"
    return ""


def seconds_from_log(folder: Path) -> float | None:
    """A run's wall time from its train.log's first and last timestamps: for a row this command did not
    start (e.g. run by hand into its folder)."""
    log = folder / "train.log"
    stamps = re.findall(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)", log.read_text(), re.M) if log.exists() else []
    if len(stamps) < 2:
        return None
    first, last = (datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S") for stamp in (stamps[0], stamps[-1]))
    return (last - first).total_seconds()


def percent(result: Result, key: str) -> str:
    mean, spread = result.mean(key), result.spread(key)
    if mean is None:
        return "-"
    return f"{mean:.2%}" + ("" if spread is None else f" ± {spread * 100:.2f}")


def table(results: dict[str, Result], seeds: list[int], minutes: dict[str, float | None]) -> list[str]:
    """The table: accuracies as mean ± standard deviation over the seeds, optimizer steps, notes per seed."""
    lines = [
        "| run | test acc | macro-F1 | vs supervised | steps | minutes | notes |",
        "|---|---|---|---|---|---|---|",
    ]
    base = results["supervised"].mean("test/acc")
    for name, result in results.items():
        notes = [
            run_notes(name, folder, run) for run, folder in zip(result.runs, result.folders, strict=True)
        ]
        if len(seeds) > 1 and any(notes):
            notes = [f"seed {seed}: {note}" for seed, note in zip(seeds, notes, strict=True)]
        accuracy = result.mean("test/acc")
        gain = "-" if accuracy is None else f"{(accuracy - base) * 100:+.1f}"
        taken = minutes.get(name)
        steps = result.mean("steps")  # a row that trains more steps than supervised gains by it too
        cells = [percent(result, "test/acc"), percent(result, "test/f1"), gain]
        cells += ["-" if steps is None else f"{steps:,.0f}"]
        cells += ["?" if taken is None else f"{taken:.1f}", " / ".join(note for note in notes if note)]
        lines.append(f"| {result.what} | {' | '.join(cells)} |")
    return lines


def checks(results: dict[str, Result]) -> list[str]:
    """The issue's bars, each with the figures it compares (means over the seeds; a collapse in any seed
    counts)."""
    supervised = results["supervised"].mean("test/acc")
    bars = []
    for ratio in ONLINE_RATIOS:
        online = results[f"online_{ratio}_default"]
        gain = (online.mean("test/acc") - supervised) * 100
        bars.append((f"online 1:{ratio} >= supervised + 6 points ({gain:+.1f})", gain >= 6))
        collapse = [
            online_notes(folder, run)[1:] for run, folder in zip(online.runs, online.folders, strict=True)
        ]
        shares = [share for _, share in collapse if share is not None]
        top = max(shares) if shares else None
        bound = COLLAPSE_BOUND / 10
        bars.append((
            f"online 1:{ratio}: no collapse warning, top class share after epoch 1 <= {bound:.0%} "
            f"({'none' if top is None else f'{top:.0%}'})",
            not any(warned for warned, _ in collapse) and (top is None or top <= bound),
        ))  # fmt: skip
    probe = (results["probe"].mean("test/acc") - results["probe_random"].mean("test/acc")) * 100
    bars.append((f"Barlow Twins probe >= random-init probe + 8 points ({probe:+.1f})", probe >= 8))
    plain = (supervised - results["plain_loop"].mean("test/acc")) * 100
    bars.append((f"supervised within 1 point of the plain loop, or ahead ({plain:+.1f})", plain >= -1))
    return [f"- [{'x' if met else ' '}] {text}" for text, met in bars]


def unlabeled_gains(results: dict[str, Result]) -> list[str]:
    """Each online row against the labeled-only run of its own recipe: the gain the unlabeled images bring,
    apart from what the recipe (optimizer, weight average, no cutout) brings against the supervised one."""
    control = results["supervised_online_recipe"].mean("test/acc")
    return [
        f"- online 1:{ratio}: {(results[f'online_{ratio}_default'].mean('test/acc') - control) * 100:+.1f} "
        "points over the same recipe without unlabeled images"
        for ratio in ONLINE_RATIOS
    ]
