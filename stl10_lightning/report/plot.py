"""The study's figure: test accuracy against the labeled:unlabeled ratio, supervised as the baseline."""

# No pyplot: a bare Figure renders with Agg, needs no display and keeps no global state.
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator

from stl10_lightning.report.rows import Row

# Settings that, when they vary across rows, a legend entry must name to tell its lines apart.
DISTINGUISHING = ("backbone", "labeled", "data_root", "threshold")
BASELINE_STYLES = {"supervised": ("black", "--"), "linear_probe": ("tab:gray", ":")}


def _label(row: Row, varying: list[str]) -> str:
    name = f"{row.method} {row.mode}" if row.stage == "pseudo_label" else row.method
    parts = [f"{attr}={getattr(row, attr)}" for attr in varying if attr != "threshold" or row.threshold]
    return f"{name} ({', '.join(parts)})" if parts else name


def _draw_baselines(ax, rows: list[Row], varying: list[str]) -> None:
    """Supervised and linear probe do not depend on the ratio: horizontal lines, std as a band."""
    for row in rows:
        if row.stage == "pseudo_label" or row.accuracy.mean is None:
            continue
        color, linestyle = BASELINE_STYLES[row.stage]
        ax.axhline(row.accuracy.mean, color=color, linestyle=linestyle, label=_label(row, varying))
        if row.accuracy.std:
            low, high = row.accuracy.mean - row.accuracy.std, row.accuracy.mean + row.accuracy.std
            ax.axhspan(low, high, color=color, alpha=0.1)


def accuracy_vs_ratio(rows: list[Row]) -> Figure | None:
    """One line per pseudo-label mode (std as error bars); None when no pseudo-label row has a ratio."""
    pseudo = [
        row
        for row in rows
        if row.stage == "pseudo_label" and row.ratio is not None and row.accuracy.mean is not None
    ]
    if not pseudo:
        return None
    # Only pseudo-label runs have a threshold: the baselines' None makes no difference worth naming.
    varying = [
        attr
        for attr in DISTINGUISHING
        if len({getattr(row, attr) for row in (pseudo if attr == "threshold" else rows)}) > 1
    ]
    figure = Figure(figsize=(7, 4.5), layout="constrained")
    ax = figure.subplots()
    series: dict[str, list[Row]] = {}
    for row in pseudo:  # rows come ordered by ratio within a mode
        series.setdefault(_label(row, varying), []).append(row)
    for label, points in series.items():
        accuracies = [row.accuracy.mean for row in points]
        errors = [row.accuracy.std or 0.0 for row in points]
        ax.errorbar(
            [row.ratio for row in points], accuracies, yerr=errors, marker="o", capsize=3, label=label
        )
    _draw_baselines(ax, rows, varying)
    ratios = sorted({row.ratio for row in pseudo})
    ax.set_xscale("log")
    ax.set_xticks(ratios, [f"1:{ratio:g}" for ratio in ratios])
    ax.xaxis.set_minor_locator(NullLocator())  # only the ratios that were run
    ax.set_xlabel("ratio (labeled : unlabeled)")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    figure.legend(loc="outside lower center", ncols=2)  # below the axes: never over a line
    return figure
