"""The study's results table from the run folders under outputs/: see `cli.py` for the command."""

from stl10_lightning.report.cli import main

__all__ = ["main"]
