"""BarlowTwinsModule: self-supervised pretraining on unlabeled images (Zbontar et al., 2021).

Labels never reach the loss. The labeled train and val splits only monitor the representation: an
online linear probe on detached features, a kNN classifier every few epochs, and val embeddings.
"""

from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from torch import nn
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy
from torchmetrics.utilities.distributed import gather_all_tensors

from stl10_lightning.common.errors import UserError
from stl10_lightning.data.ssl_transforms import BarlowTwinsViews
from stl10_lightning.data.stl10_binary import STL10_MEAN, STL10_STD
from stl10_lightning.data.transforms import Channels, eval_transform
from stl10_lightning.losses import BarlowTwinsLoss
from stl10_lightning.models.backbone_file import save_backbone
from stl10_lightning.monitoring.embeddings import log_embeddings
from stl10_lightning.monitoring.frozen_features import frozen_features
from stl10_lightning.monitoring.knn import knn_predict
from stl10_lightning.optim.build import (
    build_optimizer,
    check_schedule,
    check_schedule_length,
    global_batch,
    remember_schedule_length,
    with_schedule,
)


def build_projector(input_dim: int, spec: str) -> nn.Sequential:
    """`8192-8192-8192`: (Linear, BatchNorm, ReLU) for every width but the last, then a Linear."""
    try:
        widths = [int(width) for width in str(spec).split("-")]
    except ValueError:
        widths = []
    if not widths or min(widths) < 1:
        raise UserError(
            f"model.projector={spec!r} is not a list of layer widths; write it like 8192-8192-8192"
        )
    layers: list[nn.Module] = []
    for width in widths[:-1]:
        layers += [nn.Linear(input_dim, width, bias=False), nn.BatchNorm1d(width), nn.ReLU(inplace=True)]
        input_dim = width
    layers.append(nn.Linear(input_dim, widths[-1], bias=False))
    return nn.Sequential(*layers)


class BarlowTwinsModule(pl.LightningModule):
    def __init__(
        self,
        backbone: dict,
        optimizer: dict,
        projector: str = "8192-8192-8192",
        lambd: float = 5e-3,
        num_classes: int = 10,
        image_size: int = 96,
        schedule: str = "cosine",
        warmup_epochs: float = 10,
        augment: dict | None = None,
        monitor_every_n_epochs: int = 5,
        knn_k: tuple[int, ...] = (200, 20),
        knn_temperature: float = 0.07,
        embedding_points: int = 500,
        mean: Channels = STL10_MEAN,
        std: Channels = STL10_STD,
    ):
        super().__init__()
        check_schedule(schedule)
        self.save_hyperparameters(logger=False)
        self.backbone = instantiate(backbone)
        self.projector = build_projector(self.backbone.feature_dim, projector)
        self.criterion = BarlowTwinsLoss(lambd)
        self.views = BarlowTwinsViews(image_size, **(augment or {}), mean=mean, std=std)
        self.eval_transform = eval_transform(image_size, mean, std)
        # The online probe sees detached features only: it measures the backbone and never trains it.
        self.probe = nn.Linear(self.backbone.feature_dim, num_classes)
        self.probe_train_acc = MulticlassAccuracy(num_classes, average="micro")
        self.probe_val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_loss = MeanMetric()
        self._val_outputs: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Backbone features of normalized float images: what the linear probe and kNN use."""
        return self.backbone(images)

    def _ssl_loss(self, images: torch.Tensor, across_processes: bool = True) -> dict[str, torch.Tensor]:
        view1, view2 = self.views(images)
        z1, z2 = self.projector(self.backbone(view1)), self.projector(self.backbone(view2))
        return self.criterion(z1, z2, across_processes)

    def _frozen_features(self, images: torch.Tensor) -> torch.Tensor:
        """Features in eval mode (BatchNorm running statistics, no update) without gradients."""
        was_training = self.backbone.training
        self.backbone.eval()
        with torch.no_grad():
            features = self.backbone(self.eval_transform(images))
        self.backbone.train(was_training)
        return features

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        parts = self._ssl_loss(batch["unlabeled"])
        self.log("ssl/loss", parts["loss"], on_step=True, on_epoch=True, prog_bar=True)
        self.log_dict(
            {f"ssl/{name}": parts[name] for name in ("on_diag", "off_diag", "mean_abs_off_diag")},
            on_step=False,
            on_epoch=True,
        )
        images, labels = batch["labeled"]
        logits = self.probe(self._frozen_features(images))
        probe_loss = F.cross_entropy(logits, labels)
        self.probe_train_acc(logits, labels)
        self.log("probe/train_loss", probe_loss, on_step=False, on_epoch=True)
        self.log("probe/train_acc", self.probe_train_acc, on_step=False, on_epoch=True)
        return parts["loss"] + probe_loss

    def validation_step(self, batch, batch_idx: int) -> None:
        images, labels = batch
        if len(images) > 1:  # a batch of one has no batch statistics for the loss
            # Statistics of this process's batch only: under DDP a process may have one val batch more
            # than another (each image is evaluated once), and a per-batch collective would wait forever.
            self.val_loss.update(self._ssl_loss(images, across_processes=False)["loss"], len(images))
        features = self(self.eval_transform(images))
        self.probe_val_acc.update(self.probe(features), labels)
        if self._monitoring_epoch():
            thumbnails = F.interpolate(images.float() / 255, size=32, mode="area")
            self._val_outputs.append((features, labels, thumbnails))

    def _monitoring_epoch(self) -> bool:
        """kNN and embeddings every `monitor_every_n_epochs` epochs, at the last, and in trainer.validate."""
        if self.trainer.state.fn != "fit" or self.trainer.sanity_checking:
            return self.trainer.state.fn == "validate"
        epoch = self.current_epoch + 1
        return epoch % self.hparams.monitor_every_n_epochs == 0 or epoch == self.trainer.max_epochs

    def on_validation_epoch_end(self) -> None:
        # Lightning computes (torchmetrics sums every process's share, however uneven) and resets it.
        self.log("ssl/val_loss", self.val_loss)
        self.log("probe/acc", self.probe_val_acc.compute())
        self.probe_val_acc.reset()
        if not self._val_outputs:
            return
        features, labels, thumbnails = (torch.cat(parts) for parts in zip(*self._val_outputs, strict=True))
        self._val_outputs.clear()
        features, labels, thumbnails = (self._gather(part) for part in (features, labels, thumbnails))
        bank, bank_labels = self._labeled_train_features()
        for k in self.hparams.knn_k:
            predictions = knn_predict(
                features, bank, bank_labels, k, self.hparams.knn_temperature, self.hparams.num_classes
            )
            accuracy = (predictions == labels).float().mean()
            self.log(f"knn/acc_k{k}", accuracy, sync_dist=False, rank_zero_only=True)
            if k == self.hparams.knn_k[0]:
                self.log("knn/acc", accuracy, sync_dist=False, rank_zero_only=True)
        if self.global_rank == 0:
            points = self.hparams.embedding_points
            log_embeddings(self, features[:points], labels[:points], thumbnails[:points], "val_embeddings")

    def _gather(self, tensor: torch.Tensor) -> torch.Tensor:
        """Every rank's val rows, so each rank scores the whole val split, each image once.

        Ranks may hold different numbers of rows, which `self.all_gather` cannot take: torchmetrics'
        gather pads each rank's rows to the longest, gathers, and trims them back.
        """
        if self.trainer.world_size == 1:
            return tensor
        return torch.cat(gather_all_tensors(tensor))

    def _labeled_train_features(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The kNN bank: features of the labeled train split (never the unlabeled images: no labels)."""
        loader = self.trainer.datamodule.labeled_eval_dataloader()
        return frozen_features(self.backbone, self.eval_transform, loader, self.device)

    def setup(self, stage: str) -> None:
        """A batch of one fails in the projector's BatchNorm mid-step; refuse it before fit, in one line."""
        data = self.trainer.datamodule.hparams
        batch = data.unlabeled_batch_size or data.batch_size
        if stage == "fit" and batch * self.trainer.world_size < 2:
            raise UserError(
                f"data.batch_size={batch}: Barlow Twins normalizes each view over the batch, which needs at "
                "least 2 images; use data.batch_size >= 2"
            )

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        remember_schedule_length(self, checkpoint)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        check_schedule_length(self, checkpoint, self.hparams.schedule)

    def configure_optimizers(self):
        data = self.trainer.datamodule.hparams
        batch_setting = "data.unlabeled_batch_size" if data.unlabeled_batch_size else "data.batch_size"
        probe = {"params": list(self.probe.parameters()), "weight_decay": 0.0, "lars_adaptation": False}
        optimizer = build_optimizer(
            self.hparams.optimizer,
            nn.ModuleList([self.backbone, self.projector]),
            global_batch(self, "unlabeled", batch_setting),
            extra_groups=({**probe, "name": "probe"},),
        )
        return with_schedule(self, optimizer, self.hparams.schedule, self.hparams.warmup_epochs)

    def run_summary(self, run_dir: Path) -> dict:
        """metrics.json extras: the final backbone, written for the linear probe (rank 0 only)."""
        path = run_dir / "backbone.pt"
        if self.global_rank == 0:
            save_backbone(path, self.hparams.backbone, self.backbone)
        return {"backbone_path": path.name}  # relative to the run folder, which may move
