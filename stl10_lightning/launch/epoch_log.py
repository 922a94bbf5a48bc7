"""One log line per epoch: progress in train.log and in a job's output file, where no progress bar draws."""

import logging
import time

import pytorch_lightning as pl

log = logging.getLogger(__name__)


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {seconds:02d}s" if minutes else f"{seconds}s"


class LogEachEpoch(pl.Callback):
    """`epoch 3/30: train/loss 0.8123, val/acc 0.7012, lr 0.0812, 12.4 s/epoch, 5m 40s left`, on rank 0,
    through Python logging (Hydra's job logging sends it to the console and the run's train.log).

    `metrics`: the epoch values to show, of those the stage logs; a value logged every step shows as the
    epoch's mean. `lr` is the first parameter group's rate for the next step. An epoch's seconds include
    its validation; the time left assumes the remaining epochs take as long as this process's so far.
    """

    def __init__(self, metrics: list[str]):
        self.metrics = list(metrics)
        self._epoch_started = 0.0
        self._epoch_seconds: list[float] = []

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._epoch_started = time.monotonic()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        self._epoch_seconds.append(time.monotonic() - self._epoch_started)
        values = trainer.callback_metrics
        parts = [f"{name} {float(values[name]):.4g}" for name in self.metrics if name in values]
        if trainer.optimizers:
            parts.append(f"lr {trainer.optimizers[0].param_groups[0]['lr']:.4g}")
        parts.append(f"{self._epoch_seconds[-1]:.1f} s/epoch")
        epoch, total = trainer.current_epoch + 1, trainer.max_epochs
        limited = total is not None and total > 0  # max_epochs=-1 trains until max_steps: no estimate
        if limited:
            mean = sum(self._epoch_seconds) / len(self._epoch_seconds)
            parts.append(f"{_duration(mean * (total - epoch))} left")
        log.info("epoch %d%s: %s", epoch, f"/{total}" if limited else "", ", ".join(parts))
