"""The study's figure (test accuracy against the labeled:unlabeled ratio, supervised as the baseline), and
table and figure in TensorBoard beside the runs: `tensorboard --logdir outputs` shows them."""

import itertools
from pathlib import Path

# No pyplot: a bare Figure renders with Agg, needs no display and keeps no global state.
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator
from torch.utils.tensorboard import SummaryWriter

from stl10_lightning.report.rows import Row

BASELINE_LINESTYLES = {"supervised": "--", "linear_probe": ":"}
# One colour per baseline line, dark so as not to be taken for a pseudo-label series (the default cycle).
BASELINE_COLORS = ("black", "dimgray", "saddlebrown", "darkslateblue", "darkolivegreen", "darkgoldenrod")


def _label(row: Row, with_data: bool) -> str:
    """Method, mode and recipe id, with the recipe's differences: one label per series."""
    method = f"{row.method} {row.mode}" if row.stage == "pseudo_label" else row.method
    name = f"{method} {row.recipe or '—'}"
    details = [*row.differs, *([f"data={row.data_root}"] if with_data else [])]
    return f"{name} ({', '.join(details)})" if details else name


def _draw_baselines(ax, rows: list[Row], with_data: bool) -> None:
    """Supervised and linear probe do not depend on the ratio: horizontal lines, std as a band; the line
    style tells the stage, the colour the recipe."""
    baselines = [row for row in rows if row.stage != "pseudo_label" and row.accuracy.mean is not None]
    for row, color in zip(baselines, itertools.cycle(BASELINE_COLORS)):
        linestyle = BASELINE_LINESTYLES[row.stage]
        ax.axhline(row.accuracy.mean, color=color, linestyle=linestyle, label=_label(row, with_data))
        if row.accuracy.std:
            low, high = row.accuracy.mean - row.accuracy.std, row.accuracy.mean + row.accuracy.std
            ax.axhspan(low, high, color=color, alpha=0.1)


def accuracy_vs_ratio(rows: list[Row]) -> Figure | None:
    """One line per pseudo-label mode and recipe (std as error bars); None when no pseudo-label row has a
    ratio."""
    pseudo = [
        row
        for row in rows
        if row.stage == "pseudo_label" and row.ratio is not None and row.accuracy.mean is not None
    ]
    if not pseudo:
        return None
    with_data = len({row.data_root for row in rows}) > 1
    figure = Figure(figsize=(7, 4.5), layout="constrained")
    ax = figure.subplots()
    series: dict[str, list[Row]] = {}  # one per mode, recipe and data
    for row in pseudo:  # rows come ordered by ratio within a recipe
        series.setdefault(_label(row, with_data), []).append(row)
    for label, points in series.items():
        accuracies = [row.accuracy.mean for row in points]
        errors = [row.accuracy.std or 0.0 for row in points]
        ax.errorbar(
            [row.ratio for row in points], accuracies, yerr=errors, marker="o", capsize=3, label=label
        )
    _draw_baselines(ax, rows, with_data)
    ratios = sorted({row.ratio for row in pseudo})
    ax.set_xscale("log")
    ax.set_xticks(ratios, [f"1:{ratio:g}" for ratio in ratios])
    ax.xaxis.set_minor_locator(NullLocator())  # only the ratios that were run
    ax.set_xlabel("ratio (labeled : unlabeled)")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    figure.legend(loc="outside lower center", ncols=2)  # below the axes: never over a line
    return figure


def log_report(folder: Path, table: str, figure: Figure | None, step: int) -> None:
    """`step` is the number of finished runs, so the slider shows the table as the study grew."""
    writer = SummaryWriter(str(folder))
    try:
        writer.add_text("report/results", table, global_step=step)
        if figure is not None:
            writer.add_figure("report/accuracy_vs_ratio", figure, global_step=step, close=False)
    finally:
        writer.close()
