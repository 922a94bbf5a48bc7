"""The report in TensorBoard, beside the runs: `tensorboard --logdir outputs` shows table and figure."""

from pathlib import Path

from matplotlib.figure import Figure
from torch.utils.tensorboard import SummaryWriter


def log_report(folder: Path, table: str, figure: Figure | None, step: int) -> None:
    """`step` is the number of finished runs, so the slider shows the table as the study grew."""
    writer = SummaryWriter(str(folder))
    try:
        writer.add_text("report/results", table, global_step=step)
        if figure is not None:
            writer.add_figure("report/accuracy_vs_ratio", figure, global_step=step, close=False)
    finally:
        writer.close()
