"""LinearProbe: a linear classifier on a frozen pretrained backbone (or, optionally, fine-tuning it)."""

import torch
from torch import nn

from stl10_lightning.data.stl10_binary import STL10_MEAN, STL10_STD
from stl10_lightning.data.transforms import Channels
from stl10_lightning.models.backbone_file import load_backbone
from stl10_lightning.monitoring.frozen_features import frozen_features
from stl10_lightning.optim.build import build_optimizer, global_batch, with_schedule
from stl10_lightning.runs.folder import newest_finished_run
from stl10_lightning.stages.supervised import SupervisedResNet

RANDOM_INIT = "random"  # probe.backbone=random: no weights are loaded


class LinearProbe(SupervisedResNet):
    """The supervised stage's head and metrics on top of weights from `source`.

        `source` is a backbone.pt, a Barlow Twins run folder, or a supervised checkpoint or run (to compare
        representations); by default the newest finished Barlow Twins run. `random` keeps the seeded
        random initialization: the control that shows what pretraining adds. The backbone config must match
        the file's architecture, and every key must load.

        Frozen (the default), the backbone stays in eval mode, so BatchNorm never updates, and its features
        are computed once before fit and served from memory: the probe trains in seconds
    (`cache_features=False` recomputes them from the same images every step, for comparison). With
        `augment_features`, features are recomputed from augmented images every epoch; with `finetune`,
        the backbone trains too, at `backbone_lr`.
    """

    def __init__(
        self,
        backbone: dict,
        optimizer: dict,
        source: str | None = None,
        augment_features: bool = False,
        finetune: bool = False,
        backbone_lr: float = 0.005,
        num_classes: int = 10,
        image_size: int = 96,
        schedule: str = "cosine",
        warmup_epochs: float = 0,
        augment: dict | None = None,
        cache_features: bool = True,
        mean: Channels = STL10_MEAN,
        std: Channels = STL10_STD,
    ):
        # Every setting by name, none by `**shared`: the probe takes no label smoothing and no weight average.
        super().__init__(
            backbone=backbone,
            optimizer=optimizer,
            num_classes=num_classes,
            image_size=image_size,
            schedule=schedule,
            warmup_epochs=warmup_epochs,
            label_smoothing=0.0,
            augment=augment,
            mean=mean,
            std=std,
        )
        if source is None:
            source = newest_finished_run("barlow_twins", needs="backbone.pt")
        if source != RANDOM_INIT:
            self.hparams.source = str(load_backbone(self.backbone, backbone, source))
        # Standardized features (as in MAE's linear probing): lr 0.3 then suits any backbone's feature
        # scale; without it a barely trained backbone's large eval-mode features made SGD diverge.
        self.feature_norm = nn.BatchNorm1d(self.backbone.feature_dim, affine=False)
        self.backbone.requires_grad_(finetune)
        self.train(self.training)  # frozen: eval mode from the start, not only from the first .train()
        self.caches_features = cache_features and not (augment_features or finetune)
        self.serving_features = False

    def train(self, mode: bool = True):
        super().train(mode)
        if not self.hparams.finetune:
            self.backbone.eval()
        return self

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Logits of normalized images, or of cached backbone features once those are served."""
        features = inputs if self.serving_features else self.backbone(inputs)
        return self.head(self.feature_norm(features))

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        if self.serving_features:
            return batch
        images, labels = batch
        augmented = self.trainer.training and (self.hparams.augment_features or self.hparams.finetune)
        return (self.train_transform if augmented else self.eval_transform)(images), labels

    def setup(self, stage: str) -> None:
        """Cache before fit counts its steps (that loads the train loader, which then stays)."""
        if stage != "fit" or not self.caches_features or self.serving_features:
            return
        device = self.trainer.strategy.root_device
        self.backbone.to(device)
        datamodule = self.trainer.datamodule
        # Whole splits on every process; under DDP, the loaders of the served features split them later.
        loaders = {name: datamodule.labeled_eval_dataloader(name) for name in ("train", "val", "test")}
        features = {}
        with torch.random.fork_rng(devices=[]):  # each loader iterator draws a seed: keep training's RNG
            for name, loader in loaders.items():
                split = frozen_features(self.backbone, self.eval_transform, loader, device)
                features[name] = tuple(tensor.cpu() for tensor in split)
        datamodule.serve_features(features)
        self.serving_features = True

    def configure_optimizers(self):
        backbone = {
            "params": list(self.backbone.parameters()),
            "lr": self.hparams.backbone_lr,
            "name": "backbone",
        }
        optimizer = build_optimizer(
            self.hparams.optimizer,
            self.head,
            global_batch(self),
            extra_groups=(backbone,) if self.hparams.finetune else (),
        )
        return with_schedule(self, optimizer, self.hparams.schedule, self.hparams.warmup_epochs)

    def run_summary(self, run_dir) -> dict:
        return {"backbone_source": self.hparams.source}
