"""Lightning's TensorBoard logger without the `epoch` scalar, so that TIME SERIES opens on the metrics."""

from pytorch_lightning.loggers import TensorBoardLogger


class TensorBoardWithoutEpoch(TensorBoardLogger):
    """Every scalar but `epoch`, which Lightning adds to each metrics dict it logs and TensorBoard would
    show as its first card. Each checkpoint and metrics.json still record the epoch."""

    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        super().log_metrics({name: value for name, value in metrics.items() if name != "epoch"}, step)
