"""`python -m stl10_lightning.report PATH... [--out DIR]`, or `stl10-report`: the study's results table."""

import argparse
import sys
from pathlib import Path

from stl10_lightning.common.atomic import replace_with, write_text
from stl10_lightning.common.errors import OneLineArgumentParser, UserError
from stl10_lightning.common.output_paths import check_new_output, run_folder_around
from stl10_lightning.report.collect import collect
from stl10_lightning.report.figures import accuracy_vs_ratio, log_report
from stl10_lightning.report.rows import build_rows, drop_duplicates
from stl10_lightning.report.table import csv_text, markdown


def _parser() -> argparse.ArgumentParser:
    parser = OneLineArgumentParser(
        prog="stl10-report", description="Average the runs under PATHs over seeds into the results table."
    )
    parser.add_argument(
        "paths", nargs="+", type=Path, metavar="PATH", help="run or multirun folders, or one above (outputs/)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="folder for results.md/.csv, the plot and TensorBoard (<first PATH>/report, or beside PATH "
        "when it is a run folder, which the report leaves as it is)",
    )
    return parser


def default_out(first: Path) -> Path:
    """<first>/report, except that a run folder is never written to: its report goes beside it."""
    run = run_folder_around(first)
    return first / "report" if run is None else run.parent / "report"


def report(paths: list[Path], out: Path) -> None:
    """Print the table and write it, its CSV, the figure and its TensorBoard events to `out`."""
    check_new_output(out, "--out")
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a folder for the report")
    runs = collect(paths)
    finished = [run for run in runs if run.metrics is not None]
    counted, duplicates = drop_duplicates(finished)
    rows = build_rows(counted)
    table, table_csv = markdown(rows, duplicates, runs), csv_text(rows)  # both made before either is written
    print(table, end="")
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "results.md", table)
    write_text(out / "results.csv", table_csv)
    figure = accuracy_vs_ratio(rows)
    if figure is None:
        (out / "accuracy_vs_ratio.png").unlink(missing_ok=True)  # an older one would show other runs
        print("no pseudo-label runs with a ratio: accuracy_vs_ratio.png not drawn", file=sys.stderr)
    else:
        replace_with(out / "accuracy_vs_ratio.png", lambda tmp: figure.savefig(tmp, format="png", dpi=120))
    log_report(out / "tensorboard", table, figure, step=len(finished))
    print(f"report written to {out}", file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        report(args.paths, args.out or default_out(args.paths[0]))
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
