"""The table's rows: finished runs grouped by setting, so that runs differing only in seed are averaged."""

import statistics
from collections import Counter
from dataclasses import dataclass

from stl10_lightning.report.collect import Run

# The stages that end with a test accuracy, in table order; Barlow Twins pretraining has none.
METHODS = {"supervised": "supervised", "linear_probe": "linear probe", "pseudo_label": "pseudo-label"}


@dataclass(frozen=True)
class Summary:
    mean: float | None  # None: no run has the value (older runs miss some keys)
    std: float | None  # sample std (n - 1 denominator); None with fewer than two values

    @classmethod
    def of(cls, values: list, scale: float = 1.0) -> "Summary":
        present = [float(value) * scale for value in values if isinstance(value, int | float)]
        return cls(
            mean=statistics.fmean(present) if present else None,
            std=statistics.stdev(present) if len(present) > 1 else None,
        )


@dataclass(frozen=True)
class Row:
    stage: str
    mode: str | None
    backbone: str | None
    data_root: str | None
    labeled: int | None
    ratio: float | None
    threshold: float | None
    seeds: int  # runs in the group
    accuracy: Summary  # test/acc, in %
    macro_f1: Summary  # test/f1, in %
    unlabeled_used: Summary
    kept: Summary
    delta: float | None  # accuracy points vs supervised on the same data, backbone and labeled count

    @property
    def method(self) -> str:
        return METHODS[self.stage]


def _context(run: Run) -> tuple:
    """What a supervised baseline must share with a row: fewer labels or another backbone is no baseline."""
    return run.data_root, run.backbone, run.metrics.get("labeled")


def _setting(run: Run) -> tuple:
    metrics = run.metrics
    return (*_context(run), run.stage, metrics.get("mode"), metrics.get("ratio"), metrics.get("threshold"))


def _none_last(value) -> tuple:
    return value is None, value if value is not None else 0


def _order(row: Row) -> tuple:
    keys = (row.data_root, row.backbone, row.labeled, list(METHODS).index(row.stage), row.mode, row.ratio)
    return tuple(_none_last(key) for key in (*keys, row.threshold))


def _supervised_means(runs: list[Run]) -> dict[tuple, float]:
    accuracies: dict[tuple, list] = {}
    for run in runs:
        if run.stage == "supervised":
            accuracies.setdefault(_context(run), []).append(run.metrics.get("test/acc"))
    means = {context: Summary.of(values, scale=100).mean for context, values in accuracies.items()}
    return {context: mean for context, mean in means.items() if mean is not None}


def _row(setting: tuple, runs: list[Run], baseline: float | None) -> Row:
    def summary(key: str, scale: float = 1.0) -> Summary:
        return Summary.of([run.metrics.get(key) for run in runs], scale)

    accuracy = summary("test/acc", scale=100)
    root, backbone, labeled, stage, mode, ratio, threshold = setting
    return Row(
        stage=stage,
        mode=mode,
        backbone=backbone,
        data_root=root,
        labeled=labeled,
        ratio=ratio,
        threshold=threshold,
        seeds=len(runs),
        accuracy=accuracy,
        macro_f1=summary("test/f1", scale=100),
        unlabeled_used=summary("unlabeled_used"),
        kept=summary("kept"),
        delta=None if accuracy.mean is None or baseline is None else accuracy.mean - baseline,
    )


def build_rows(finished: list[Run]) -> list[Row]:
    """One row per setting of the tabled stages, ordered supervised, linear probe, pseudo-label."""
    groups: dict[tuple, list[Run]] = {}
    for run in finished:
        if run.stage in METHODS:
            groups.setdefault(_setting(run), []).append(run)
    baselines = _supervised_means(finished)
    rows = [_row(setting, runs, baselines.get(_context(runs[0]))) for setting, runs in groups.items()]
    return sorted(rows, key=_order)


def not_tabled(finished: list[Run]) -> Counter:
    """Finished runs of stages with no test accuracy (Barlow Twins pretraining), by stage."""
    return Counter(str(run.stage) for run in finished if run.stage not in METHODS)
