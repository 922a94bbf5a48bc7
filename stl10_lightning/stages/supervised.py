"""SupervisedResNet: a backbone and a linear head trained from scratch with cross-entropy."""

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from stl10_lightning.data.stl10_binary import STL10_MEAN, STL10_STD
from stl10_lightning.data.transforms import Channels, classification_train_transform, eval_transform
from stl10_lightning.monitoring.classification_metrics import (
    classification_metrics,
    log_classification,
    log_confusion_matrix,
)
from stl10_lightning.optim.build import (
    build_optimizer,
    check_schedule,
    check_schedule_length,
    global_batch,
    remember_schedule_length,
    with_schedule,
)
from stl10_lightning.optim.ema import averaged_copy, check_decay, update


class SupervisedResNet(pl.LightningModule):
    """Classifier on the labeled train split; val selects the checkpoint, test is evaluated once.

    `backbone` and `optimizer` are `_target_` dicts, so the checkpoint's hyperparameters are plain data
    that describe the model fully and load with `weights_only=True`.

    Label smoothing epsilon trains the model towards softmax confidence 1 - epsilon + epsilon/10 (0.91 at
    0.1), the minimum of the smoothed loss, so such a model rarely reaches the 0.99 pseudo-label
    threshold and makes a poor teacher: smoothing stays off by default.

    `ema` (a decay such as 0.999) keeps an exponential moving average of the weights, which validation,
    test and a later teacher use; see `optim/ema.py`. `mean` and `std` normalize the images: the data's
    (conf/stage/ fills them, and num_classes, from a prepared folder's manifest), STL-10's by default.
    """

    def __init__(
        self,
        backbone: dict,
        optimizer: dict,
        num_classes: int = 10,
        image_size: int = 96,
        schedule: str = "cosine",
        warmup_epochs: float = 5,
        label_smoothing: float = 0.0,
        augment: dict | None = None,
        ema: float | None = None,
        mean: Channels = STL10_MEAN,
        std: Channels = STL10_STD,
    ):
        super().__init__()
        check_schedule(schedule)
        check_decay(ema)
        self.save_hyperparameters(logger=False)  # train.py logs the whole config with the final metrics
        self.backbone = instantiate(backbone)
        self.head = nn.Linear(self.backbone.feature_dim, num_classes)
        self.train_transform = classification_train_transform(
            image_size, **(augment or {}), mean=mean, std=std
        )
        self.eval_transform = eval_transform(image_size, mean, std)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        self.train_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_metrics = classification_metrics(num_classes)
        self.test_metrics = classification_metrics(num_classes)
        self.test_confusion = MulticlassConfusionMatrix(num_classes, normalize="true")
        self.ema = None if ema is None else averaged_copy(self._trained_parts(), ema)
        self._ema_step = 0

    def _trained_parts(self) -> dict:
        return {"backbone": self.backbone, "head": self.head}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits of normalized images; with `ema`, evaluation (eval mode) uses the averaged weights."""
        parts = self.ema.module if self.ema is not None and not self.training else self
        return parts.head(parts.backbone(images))

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        # global_step counts optimizer steps: with gradient accumulation, average only after a real step.
        if self.ema is not None and self.trainer.global_step > self._ema_step:
            update(self.ema, self._trained_parts())
            self._ema_step = self.trainer.global_step

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        images, labels = batch
        transform = self.train_transform if self.trainer.training else self.eval_transform
        return transform(images), labels

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        images, labels = batch
        logits = self(images)
        loss = self.criterion(logits, labels)
        self.train_acc(logits, labels)
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True)
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True)
        return loss

    def _evaluate(self, batch, metrics: MetricCollection, prefix: str) -> torch.Tensor:
        images, labels = batch
        logits = self(images)
        metrics.update(logits, labels)
        self.log(f"{prefix}/loss", F.cross_entropy(logits, labels), on_epoch=True, sync_dist=True)
        return logits

    def validation_step(self, batch, batch_idx: int) -> None:
        self._evaluate(batch, self.val_metrics, "val")

    def on_validation_epoch_end(self) -> None:
        log_classification(self, self.val_metrics, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        logits = self._evaluate(batch, self.test_metrics, "test")
        self.test_confusion.update(logits, batch[1])

    def on_test_epoch_end(self) -> None:
        log_classification(self, self.test_metrics, "test")
        log_confusion_matrix(self, self.test_confusion, "test/confusion_matrix")

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        remember_schedule_length(self, checkpoint)
        # The class names travel with the weights: stl10-predict labels its rows with them.
        names = getattr(self.trainer.datamodule, "class_names", None)
        if names:
            checkpoint["class_names"] = list(names)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        check_schedule_length(self, checkpoint, self.hparams.schedule)

    def configure_optimizers(self):
        optimizer = build_optimizer(self.hparams.optimizer, self, global_batch(self))
        return with_schedule(self, optimizer, self.hparams.schedule, self.hparams.warmup_epochs)
