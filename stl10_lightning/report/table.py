"""The results table as Markdown (for people and TensorBoard) and as CSV (for further analysis)."""

import csv
import io

from stl10_lightning.report.collect import Run
from stl10_lightning.report.rows import Row, Summary, not_tabled

MISSING = "—"  # a key this run's metrics.json lacks (older runs)
HEADER = [
    "method", "mode", "backbone", "labeled", "ratio", "unlabeled used", "kept",
    "accuracy (%)", "macro-F1 (%)", "Δ vs supervised", "seeds",
]  # fmt: skip
CSV_HEADER = [
    "method", "stage", "mode", "backbone", "data_root", "labeled", "ratio", "threshold", "unlabeled_used",
    "kept", "accuracy", "accuracy_std", "macro_f1", "macro_f1_std", "delta_vs_supervised", "seeds",
]  # fmt: skip
NOTE = (
    "Accuracy and macro-F1: test set, in %, mean ± sample std (n − 1) over seeds. "
    "Δ: accuracy points vs the mean supervised accuracy on the same data, backbone and labeled count."
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


def _cells(row: Row, with_data: bool) -> list[str]:
    pseudo = row.stage == "pseudo_label"  # ratio, unlabeled used and kept mean nothing for the others
    cells = [
        row.method,
        _text(row.mode) if pseudo else "",
        _text(row.backbone),
        _text(row.labeled),
        (MISSING if row.ratio is None else f"1:{row.ratio:g}") if pseudo else "",
        _count(row.unlabeled_used) if pseudo else "",
        _count(row.kept) if pseudo else "",
        _mean_std(row.accuracy),
        _mean_std(row.macro_f1),
        MISSING if row.delta is None else f"{row.delta:+.2f}",
        str(row.seeds),
    ]
    return [_text(row.data_root), *cells] if with_data else cells


def _table(rows: list[Row]) -> list[str]:
    with_data = len({row.data_root for row in rows}) > 1  # a column only when runs on other data are shown
    header = ["data", *HEADER] if with_data else HEADER
    align = ["---" if name in ("data", "method", "mode", "backbone") else "---:" for name in header]
    lines = [header, align, *(_cells(row, with_data) for row in rows)]
    return ["| " + " | ".join(line) + " |" for line in lines]


def _unfinished(runs: list[Run]) -> list[str]:
    lines = ["## Unfinished runs", ""]
    for run in runs:
        state = run.problem or "no metrics.json yet (running, stopped or crashed)"
        lines.append(f"- `{run.folder}` ({_text(run.stage)}): {state}")
    return lines if runs else [*lines, "None."]


def markdown(rows: list[Row], runs: list[Run]) -> str:
    finished = [run for run in runs if run.metrics is not None]
    lines = (
        [*_table(rows), "", NOTE] if rows else ["No finished supervised, linear probe or pseudo-label run."]
    )
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
        writer.writerow([
            row.method, row.stage, row.mode or "", row.backbone or "", row.data_root or "",
            _number(row.labeled), _number(row.ratio), _number(row.threshold),
            _number(row.unlabeled_used.mean), _number(row.kept.mean),
            _number(row.accuracy.mean), _number(row.accuracy.std),
            _number(row.macro_f1.mean), _number(row.macro_f1.std),
            _number(row.delta), row.seeds,
        ])  # fmt: skip
    return out.getvalue()
