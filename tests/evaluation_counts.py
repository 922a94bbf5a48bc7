"""A callback for the DDP tests (`+callbacks.count._target_=...`): how many images each evaluation
counted, summed over all processes."""

import json
from pathlib import Path

import pytorch_lightning as pl
import torch


class CountEvaluatedImages(pl.Callback):
    """Rank 0 writes {"fit": n, "validate": n, "test": n, "test_confusion": n} to `path`.

    `fit` is the last validation of fit (the sanity check is left out). `test_confusion` is the total of
    the test confusion matrix as torchmetrics syncs it across processes, before it is normalized.
    Callbacks' epoch-end hooks run before the module's, which reset the metrics.
    """

    def __init__(self, path: str):
        self.path = Path(path)
        self.counts: dict[str, int] = {}
        self.images = 0

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.images = 0

    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.images = 0

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self.images += len(batch[1])

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self.images += len(batch[1])

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.record(trainer, trainer.state.fn.value, self.summed(trainer))

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.record(trainer, "test", self.summed(trainer))
        with pl_module.test_confusion.sync_context():
            self.record(trainer, "test_confusion", int(pl_module.test_confusion.confmat.sum()))

    def summed(self, trainer: pl.Trainer) -> int:
        return int(trainer.strategy.reduce(torch.tensor(float(self.images)), reduce_op="sum"))

    def record(self, trainer: pl.Trainer, name: str, count: int) -> None:
        self.counts[name] = count
        if trainer.global_rank == 0:
            self.path.write_text(json.dumps(self.counts))
