"""OnlinePseudoLabelModule: FixMatch-style pseudo-labeling during training (`pseudo=online`).

Every step takes a labeled batch and `mu` x as many images of the run's unlabeled subset (ratio x the
labeled pool). The model labels a weak view (flip and crop) of each unlabeled image under no_grad, and
a strong view (flip, crop, RandAugment and cutout) of the same image is trained towards that label when its
confidence reaches `threshold` (Sohn et al. 2020):

    loss = CE(labeled) + lambda_u * masked CE(strong view, weak view's label)

Unlike the offline mode, the labels improve as the model does, and no teacher run is needed.
"""

import logging
from pathlib import Path

import torch

from stl10_lightning.common.errors import UserError
from stl10_lightning.data.strong_augment import strong_transform, weak_transform
from stl10_lightning.losses import consistency_loss
from stl10_lightning.models.backbone_file import load_backbone
from stl10_lightning.stages.offline_pseudo_label import check_threshold
from stl10_lightning.stages.supervised import SupervisedResNet

log = logging.getLogger(__name__)


class OnlinePseudoLabelModule(SupervisedResNet):
    """The supervised stage's model, trained with FixMatch's labeled plus consistency loss.

    `augment` is the labeled view's flip and crop (its cutout is not used: the strong view has its own).
    The weak and strong views start from FixMatch's own flip and crop whatever `augment` says, so that
    turning the labeled view's augmentation off never leaves the consistency loss comparing an image
    with itself; `strong_ops` RandAugment operations per image and a cutout of `strong_cutout` x the
    side make the strong view. `init_backbone` starts from pretrained weights (a Barlow Twins
    backbone.pt or run). `shared`: the supervised stage's other settings (num_classes, schedule,
    label_smoothing, ema), with its defaults; the warm-up is off unless asked for.
    """

    def __init__(
        self,
        backbone: dict,
        optimizer: dict,
        threshold: float = 0.95,
        mu: int = 7,
        lambda_u: float = 1.0,
        init_backbone: str | None = None,
        strong_ops: int = 2,
        strong_cutout: float = 0.5,
        image_size: int = 96,
        warmup_epochs: float = 0,
        augment: dict | None = None,
        **shared,
    ):
        labeled_view = {key: value for key, value in (augment or {}).items() if key != "cutout"}
        super().__init__(
            backbone=backbone,
            optimizer=optimizer,
            image_size=image_size,
            warmup_epochs=warmup_epochs,
            augment=labeled_view,
            **shared,
        )
        check_threshold(threshold)
        if not isinstance(mu, int) or mu < 1:
            raise UserError(f"pseudo.mu={mu} must be a whole number >= 1: unlabeled images per labeled one")
        if lambda_u < 0:
            raise UserError(f"pseudo.lambda_u={lambda_u} must be >= 0")
        if init_backbone is not None:
            # The average's first update copies the weights, so it starts from these too.
            self.hparams.init_backbone = str(load_backbone(self.backbone, backbone, init_backbone))
        self.weak_transform = weak_transform(image_size)
        self.strong_transform = strong_transform(image_size, num_ops=strong_ops, cutout=strong_cutout)
        # This epoch's sums, kept on the device so that no step waits for it: the masked pseudo-labels
        # per class, and (mask rates, steps, labeled images, of them past the threshold, and correct).
        self.register_buffer("masked_per_class", torch.zeros(self.hparams.num_classes), persistent=False)
        self.register_buffer("tally", torch.zeros(5), persistent=False)
        self.mask_rate_by_epoch: list[float] = []
        self.precision_by_epoch: list[float | None] = []
        self.masked_per_class_last_epoch: list[int] = []

    def setup(self, stage: str) -> None:
        if stage == "fit":
            datamodule = self.trainer.datamodule
            per_step = self.hparams.mu * datamodule.hparams.batch_size
            datamodule.pair_unlabeled(per_step)
            subset = len(datamodule.unlabeled_set())
            if subset < per_step:
                log.warning(
                    "each step draws pseudo.mu=%d x data.batch_size=%d = %d unlabeled images, but the "
                    "unlabeled subset has only %d: every step repeats images (about %.1f times each)",
                    self.hparams.mu,
                    datamodule.hparams.batch_size,
                    per_step,
                    subset,
                    per_step / subset,
                )

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        if not isinstance(batch, dict):  # validation and test: (images, labels)
            return super().on_after_batch_transfer(batch, dataloader_idx)
        images, labels = batch["labeled"][:2]
        unlabeled = batch["unlabeled"]
        return (
            self.train_transform(images),
            labels,
            self.weak_transform(unlabeled),
            self.strong_transform(unlabeled),
        )

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        images, labels, weak, strong = batch
        with torch.no_grad():  # the labeled batch takes the unlabeled path too: pseudo-label precision
            labeled_guess, weak_logits = self(torch.cat([images, weak])).split([len(images), len(weak)])
        logits, strong_logits = self(torch.cat([images, strong])).split([len(images), len(strong)])
        supervised = self.criterion(logits, labels)
        unlabeled = consistency_loss(weak_logits, strong_logits, self.hparams.threshold)
        loss = supervised + self.hparams.lambda_u * unlabeled.loss
        self._log_step(loss, supervised, unlabeled, labeled_guess, labels)
        self.train_acc(logits, labels)
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True)
        return loss

    def _log_step(self, loss, supervised, unlabeled, labeled_guess, labels) -> None:
        mask_rate = unlabeled.mask.float().mean()
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True)
        self.log_dict(
            {"train/loss_labeled": supervised, "train/loss_unlabeled": unlabeled.loss},
            on_step=True,
            on_epoch=True,
        )
        self.log("pseudo/mask_rate", mask_rate, on_step=True, on_epoch=True, prog_bar=True)
        confidence, guess = labeled_guess.float().softmax(dim=1).max(dim=1)
        passed = confidence >= self.hparams.threshold
        correct = (passed & (guess == labels)).sum()
        step = [
            mask_rate,
            torch.ones_like(mask_rate),
            torch.full_like(mask_rate, len(labels)),
            passed.sum(),
            correct,
        ]
        self.tally += torch.stack([value.float() for value in step])
        kept = unlabeled.pseudo_labels[unlabeled.mask]
        self.masked_per_class += torch.bincount(kept, minlength=self.hparams.num_classes)

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        super().on_train_batch_end(outputs, batch, batch_idx)
        trainer = self.trainer
        if batch_idx + 1 >= trainer.num_training_batches or 0 < trainer.max_steps <= trainer.global_step:
            self._close_epoch()

    def _close_epoch(self) -> None:
        """Epoch values over all devices: mask rate, pseudo-label precision, and the class histogram.

        Reduced at the epoch's last step, not in on_train_epoch_end: by then rank 0's progress bar has
        synced the epoch's torchmetrics, a collective the other ranks make only later, and a reduce of
        ours in between would meet the wrong collective and hang.
        """
        reduce = self.trainer.strategy.reduce
        mask_rates, steps, labeled, passed, correct = reduce(self.tally.clone(), reduce_op="sum").tolist()
        counts = reduce(self.masked_per_class.clone(), reduce_op="sum").long().cpu()
        self.tally.zero_()
        self.masked_per_class.zero_()
        precision = correct / passed if passed else None  # of the labeled images past the threshold
        self.mask_rate_by_epoch.append(round(mask_rates / max(steps, 1), 4))
        self.precision_by_epoch.append(None if precision is None else round(precision, 4))
        self.masked_per_class_last_epoch = counts.tolist()
        if precision is not None:
            self.log("pseudo/precision", precision, on_step=False, on_epoch=True)
        self.log("pseudo/labeled_mask_rate", passed / max(labeled, 1), on_step=False, on_epoch=True)
        for logger in self.loggers:
            experiment = getattr(logger, "experiment", None)
            if hasattr(experiment, "add_histogram") and counts.sum() > 0:
                classes = torch.arange(self.hparams.num_classes).repeat_interleave(counts.cpu())
                edges = torch.arange(self.hparams.num_classes + 1) - 0.5
                experiment.add_histogram(
                    "pseudo/masked_labels", classes, self.current_epoch, bins=edges.numpy()
                )

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["mask_rate_by_epoch"] = self.mask_rate_by_epoch
        checkpoint["precision_by_epoch"] = self.precision_by_epoch

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        if not self.mask_rate_by_epoch:  # a resume; after fit, loading the best epoch keeps the history
            self.mask_rate_by_epoch = list(checkpoint.get("mask_rate_by_epoch", []))
            self.precision_by_epoch = list(checkpoint.get("precision_by_epoch", []))

    def run_summary(self, run_dir: Path) -> dict:
        datamodule = self.trainer.datamodule
        return {
            "mode": "online",
            "threshold": self.hparams.threshold,
            "ratio": datamodule.hparams.unlabeled_ratio,
            "unlabeled_used": len(datamodule.unlabeled_set()),
            "mu": self.hparams.mu,
            "lambda_u": self.hparams.lambda_u,
            "init_backbone": self.hparams.init_backbone,
            "mask_rate_by_epoch": self.mask_rate_by_epoch,
            "precision_by_epoch": self.precision_by_epoch,
            "masked_per_class_last_epoch": self.masked_per_class_last_epoch,
        }
