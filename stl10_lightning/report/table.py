"""The results table as Markdown (for people and TensorBoard) and as CSV (for further analysis)."""

import csv
import io

from stl10_lightning.report.collect import Run
from stl10_lightning.report.recipe import BASELINE_DATA, BASELINE_TRAINING
from stl10_lightning.report.rows import METHODS, Duplicate, Row, Summary, not_tabled

MISSING = "—"  # a key this run's metrics.json or config.yaml lacks (older runs)
HEADER = [
    "method", "mode", "recipe", "backbone", "labeled", "ratio", "unlabeled used", "kept",
    "accuracy (%)", "macro-F1 (%)", "Δ vs supervised", "steps", "epochs", "seeds",
]  # fmt: skip
CSV_HEADER = [
    "method", "stage", "mode", "recipe", "recipe_differs", "backbone", "data_root", "labeled", "ratio",
    "threshold", "unlabeled_used", "kept", "accuracy", "accuracy_std", "macro_f1", "macro_f1_std",
    "delta_vs_supervised", "delta_vs_supervised_std", "delta_pairs", "steps", "epochs", "seeds",
]  # fmt: skip
NOTE = (
    "Rows: runs of one stage, mode, data and recipe (the resolved config less the seed, paths, logging "
    "and data-loading settings; a teacher or pretrained backbone counts as set or unset), averaged over "
    "seeds. Accuracy and macro-F1: test set, in %, mean ± sample std (n − 1) over seeds; seeds: distinct "
    "seeds. Steps and epochs: optimizer steps and epochs trained, mean over seeds. "
    "Δ vs supervised: accuracy points against the supervised runs with the same data "
    f"({', '.join(BASELINE_DATA)}) and backbone (every backbone.* key); a pseudo-label row also needs "
    f"the same training recipe ({', '.join(BASELINE_TRAINING)}), a linear-probe row does not (it "
    "trains a head on a frozen backbone), so its Δ compares data and backbone only. Paired by seed where "
    "both sides ran a seed: mean ± sample std of the per-seed differences, with the number of pairs; "
    "otherwise the difference of the means (unpaired). —: no such supervised run."
)


def _mean_std(summary: Summary) -> str:
    if summary.mean is None:
        return MISSING
    return f"{summary.mean:.2f}" if summary.std is None else f"{summary.mean:.2f} ± {summary.std:.2f}"


def _count(summary: Summary) -> str:
    """Image counts: whole when all seeds agree, else their mean to one decimal."""
    if summary.mean is None:
        return MISSING
    return f"{summary.mean:.0f}" if summary.mean.is_integer() else f"{summary.mean:.1f}"


def _text(value) -> str:
    return MISSING if value is None else str(value)


def _delta(row: Row) -> str:
    delta = row.delta
    if row.stage == "supervised":
        return ""  # the baseline itself
    if delta is None:
        return MISSING
    if delta.pairs == 0:
        return f"{delta.mean:+.2f} (unpaired)"
    spread = "" if delta.std is None else f" ± {delta.std:.2f}"
    return f"{delta.mean:+.2f}{spread} ({delta.pairs} pair{'s' if delta.pairs > 1 else ''})"


def _cells(row: Row, with_data: bool) -> list[str]:
    pseudo = row.stage == "pseudo_label"  # ratio, unlabeled used and kept mean nothing for the others
    cells = [
        row.method,
        _text(row.mode) if pseudo else "",
        _text(row.recipe),
        _text(row.backbone),
        _text(row.labeled),
        (MISSING if row.ratio is None else f"1:{row.ratio:g}") if pseudo else "",
        _count(row.unlabeled_used) if pseudo else "",
        _count(row.kept) if pseudo else "",
        _mean_std(row.accuracy),
        _mean_std(row.macro_f1),
        _delta(row),
        _count(row.steps),
        _count(row.epochs),
        str(row.seeds),
    ]
    return [_text(row.data_root), *cells] if with_data else cells


def _table(rows: list[Row]) -> list[str]:
    with_data = len({row.data_root for row in rows}) > 1  # a column only when runs on other data are shown
    header = ["data", *HEADER] if with_data else HEADER
    align = ["---" if name in ("data", "method", "mode", "recipe", "backbone") else "---:" for name in header]
    lines = [header, align, *(_cells(row, with_data) for row in rows)]
    return ["| " + " | ".join(line) + " |" for line in lines]


def _legend(rows: list[Row]) -> list[str]:
    """Every recipe in a few words, and where it differs from the other recipes of its stage and mode."""
    recipes: dict[str, str] = {}
    for row in sorted(rows, key=lambda row: list(METHODS).index(row.stage)):
        if row.recipe is None or row.recipe in recipes:
            continue
        name = f"{row.method} {row.mode}" if row.stage == "pseudo_label" else row.method
        differs = f"; differs in {', '.join(row.differs)}" if row.differs else ""
        recipes[row.recipe] = f"- {row.recipe} ({name}): {row.headline}{differs}"
    if not recipes:
        return []
    return [
        "",
        "Recipes (and where each differs from the other recipes of its stage and mode):",
        *recipes.values(),
    ]


def _duplicates(duplicates: list[Duplicate]) -> list[str]:
    if not duplicates:
        return []
    lines = ["", "Duplicates (same stage, mode, data, recipe and seed; only the newest finished run counts):"]
    for run, kept in ((duplicate.run, duplicate.kept) for duplicate in duplicates):
        lines.append(f"- `{run.folder}` repeats `{kept.folder}` (seed {run.seed})")
    return lines


def _unfinished(runs: list[Run]) -> list[str]:
    lines = ["## Unfinished runs", ""]
    for run in runs:
        state = run.problem or "no metrics.json yet (running, stopped or crashed)"
        lines.append(f"- `{run.folder}` ({_text(run.stage)}): {state}")
    return lines if runs else [*lines, "None."]


def markdown(rows: list[Row], duplicates: list[Duplicate], runs: list[Run]) -> str:
    finished = [run for run in runs if run.metrics is not None]
    if rows:
        lines = [*_table(rows), *_legend(rows), "", NOTE, *_duplicates(duplicates)]
    else:
        lines = ["No finished supervised, linear probe or pseudo-label run."]
    left_out = not_tabled(finished)
    if left_out:
        counts = ", ".join(f"{count} {stage}" for stage, count in sorted(left_out.items()))
        lines += ["", f"Not in the table (no test accuracy): {counts} run(s)."]
    return "\n".join([*lines, "", *_unfinished([run for run in runs if run.metrics is None])]) + "\n"


def _number(value: float | None) -> str:
    if value is None:
        return ""
    return str(value if isinstance(value, int) else round(value, 4))


def csv_text(rows: list[Row]) -> str:
    """One line per table row: plain numbers, empty where missing, std in its own column."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for row in rows:
        delta = (row.delta.mean, row.delta.std, row.delta.pairs) if row.delta else (None, None, None)
        writer.writerow([
            row.method, row.stage, row.mode or "", row.recipe or "", "; ".join(row.differs),
            row.backbone or "", row.data_root or "",
            _number(row.labeled), _number(row.ratio), _number(row.threshold),
            _number(row.unlabeled_used.mean), _number(row.kept.mean),
            _number(row.accuracy.mean), _number(row.accuracy.std),
            _number(row.macro_f1.mean), _number(row.macro_f1.std),
            *(_number(value) for value in delta),
            _number(row.steps.mean), _number(row.epochs.mean), row.seeds,
        ])  # fmt: skip
    return out.getvalue()
