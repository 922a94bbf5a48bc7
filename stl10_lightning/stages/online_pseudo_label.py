"""OnlinePseudoLabelModule: FixMatch-style pseudo-labeling during training (`pseudo=online`).

Every step takes a labeled batch and `mu` x as many images of the run's unlabeled subset (ratio x the
labeled pool). The model labels a weak view (flip and crop) of each unlabeled image under no_grad, and
a strong view (flip, crop, RandAugment and cutout) of the same image is trained towards that label when its
confidence reaches `threshold` (Sohn et al. 2020):

    loss = CE(labeled) + lambda_u * masked CE(strong view, weak view's label)

Unlike the offline mode, the labels improve as the model does, and no teacher run is needed.

`one_pass` runs labeled, weak and strong images through the model as one batch, as FixMatch's reference
code does, so BatchNorm normalizes them with one set of batch statistics. It computes more than two
passes, since the backward pass runs through the weak images too (benchmarks/online_step.py times both).
`distribution_alignment`, `adaptive_threshold` and `class_balanced` guard against a model that labels one
class ever more often (losses/pseudo_label_guards.py).
"""

import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanMetric, SumMetric

from stl10_lightning.common.errors import UserError
from stl10_lightning.data.strong_augment import strong_transform, weak_transform
from stl10_lightning.losses import (
    ClassBalancedSelection,
    DistributionAlignment,
    SelfAdaptiveThreshold,
    doubt,
    masked_consistency,
    passes,
)
from stl10_lightning.models.backbone_file import load_backbone
from stl10_lightning.monitoring.classification_metrics import class_names
from stl10_lightning.stages.offline_pseudo_label import check_threshold
from stl10_lightning.stages.supervised import SupervisedResNet

log = logging.getLogger(__name__)
# Logged for each epoch but kept from the loggers: on_train_epoch_end reads them, synced over processes,
# to draw the precision curve (only where it is defined) and the histogram of the masked pseudo-labels.
PASSED = "synced/pseudo/labeled_passed"
CORRECT = "synced/pseudo/labeled_correct"


# An epoch whose most frequent pseudo-label class takes more than COLLAPSE_BOUND x a balanced class's share
# of the confident labels is flagged: the model is likely labeling confidently wrong and training on its
# own mistakes (confirmation bias). Judged only once MIN_MASKED_PER_CLASS x classes labels passed.
COLLAPSE_BOUND = 3.0
MIN_MASKED_PER_CLASS = 10


def collapse_warning(
    counts: list[int], names: list[str], epoch: int, precision: float | None = None
) -> str | None:
    """The warning for an epoch's masked pseudo-labels per class, or None when they look spread enough.
    `precision`, the epoch's pseudo-label precision on the labeled batch, tells a model that labels its
    own mistakes (low) from one that is sure of an easy class first (high)."""
    total, top = sum(counts), max(range(len(counts)), key=counts.__getitem__)
    bound = COLLAPSE_BOUND / len(counts)
    if total < MIN_MASKED_PER_CLASS * len(counts) or counts[top] / total <= bound:
        return None
    measured = "" if precision is None else f"; precision on the labeled batch {precision:.2f}"
    return (
        f"epoch {epoch}: {counts[top] / total:.0%} of the confident pseudo-labels are class {names[top]!r}, "
        f"above {bound:.0%} ({COLLAPSE_BOUND:g}x a balanced class's share){measured}: the model may be "
        "training on its own mistakes (low precision) or label one easy class first (high precision); see "
        "pseudo/top_class_share, pseudo/precision and pseudo/masked_labels"
    )


def masked_key(label: int) -> str:
    return f"synced/pseudo/masked_labels/{label}"


class OnlinePseudoLabelModule(SupervisedResNet):
    """The supervised stage's model, trained with FixMatch's labeled plus consistency loss.

    `augment` is the labeled view's flip and crop (its cutout is not used: the strong view has its own).
    The weak and strong views start from FixMatch's own flip and crop whatever `augment` says, so that
    turning the labeled view's augmentation off never leaves the consistency loss comparing an image
    with itself; `strong_ops` RandAugment operations per image and a cutout of `strong_cutout` x the
    side make the strong view. `init_backbone` starts from pretrained weights (a Barlow Twins
    backbone.pt or run). `shared`: the supervised stage's other settings (num_classes, schedule,
    label_smoothing, ema), with its defaults; the warm-up is off unless asked for. `guard_momentum` is
    the alignment's and adaptive thresholds' running statistics' share of the old value each step;
    `balance_window` the recent unlabeled predictions class-balanced selection reads.
    """

    pseudo_label_mode = "online"  # the option of the group `pseudo`, named in metrics.json and HPARAMS

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
        one_pass: bool = True,
        distribution_alignment: bool = False,
        adaptive_threshold: bool = False,
        class_balanced: bool = False,
        guard_momentum: float = 0.99,
        balance_window: int = 4096,
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
        if not 0 <= guard_momentum < 1:
            raise UserError(f"pseudo.guard_momentum={guard_momentum} must be in [0, 1)")
        if adaptive_threshold and class_balanced:
            raise UserError(
                "pseudo.adaptive_threshold=true and pseudo.class_balanced=true each set the per-class "
                "thresholds: set one of them to false"
            )
        if not isinstance(balance_window, int) or balance_window < 1:
            raise UserError(f"pseudo.balance_window={balance_window} must be a whole number >= 1")
        classes = self.hparams.num_classes
        self.alignment = DistributionAlignment(classes, guard_momentum) if distribution_alignment else None
        self.adaptive = (
            SelfAdaptiveThreshold(classes, guard_momentum, ceiling=threshold) if adaptive_threshold else None
        )
        self.balanced = ClassBalancedSelection(classes, threshold, balance_window) if class_balanced else None
        statistics = {"mean": self.hparams.mean, "std": self.hparams.std}  # the data's, as the labeled view's
        self.weak_transform = weak_transform(image_size, **statistics)
        self.strong_transform = strong_transform(image_size, strong_ops, strong_cutout, **statistics)
        # The epoch's statistics; Lightning syncs them over processes and resets them (see _log_step).
        # nan_strategy="disable": no value is ever NaN, and the check would make every step wait for the GPU.
        self.mask_rate = MeanMetric(nan_strategy="disable")
        self.labeled_mask_rate = MeanMetric(nan_strategy="disable")
        self.labeled_passed = SumMetric(nan_strategy="disable")  # labeled images past the threshold
        self.labeled_correct = SumMetric(nan_strategy="disable")  # ... and labeled right
        # One count per class: Lightning logs and syncs only single numbers.
        self.masked_per_class = nn.ModuleList(
            SumMetric(nan_strategy="disable") for _ in range(self.hparams.num_classes)
        )
        self.mask_rate_by_epoch: list[float] = []
        self.precision_by_epoch: list[float | None] = []
        self.masked_per_class_last_epoch: list[int] = []
        self.masked_by_epoch: list[int] = []  # confident unlabeled pseudo-labels: how much a share rests on
        self.top_class_share_by_epoch: list[float | None] = []

    def setup(self, stage: str) -> None:
        if stage == "fit":
            datamodule = self.trainer.datamodule
            per_step = self.hparams.mu * datamodule.hparams.batch_size
            datamodule.pair_unlabeled(per_step)
            for guard in (self.alignment, self.balanced):  # towards the labeled images' class frequencies
                if guard is not None:
                    guard.set_target(datamodule.splits["train"].labels)
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
        logits, labeled_guess, weak_logits, strong_logits = self._logits(images, weak, strong)
        supervised = self.criterion(logits, labels)
        probabilities = weak_logits.float().softmax(dim=1)
        if self.alignment is not None:  # each running statistic sees this batch before it is applied
            self.alignment.update(probabilities)
        for guard in (self.adaptive, self.balanced):
            if guard is not None:
                guard.update(self._aligned(probabilities))
        most_doubt = self._most_doubt()  # once a step: the labeled batch's precision reads the same bars
        unlabeled = masked_consistency(self._aligned(probabilities), strong_logits, most_doubt)
        loss = supervised + self.hparams.lambda_u * unlabeled.loss
        self._log_step(loss, supervised, unlabeled, labeled_guess, labels, most_doubt)
        self.train_acc(logits, labels)
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True)
        return loss

    def _logits(self, images, weak, strong) -> tuple[torch.Tensor, ...]:
        """(labeled logits, the same without gradient, weak logits without gradient, strong logits)."""
        sizes = [len(images), len(weak), len(strong)]
        if self.hparams.one_pass:
            logits, weak_logits, strong_logits = self(torch.cat([images, weak, strong])).split(sizes)
            return logits, logits.detach(), weak_logits.detach(), strong_logits
        # Two passes: the labeled batch takes the unlabeled path too, for the pseudo-label precision.
        with torch.no_grad():
            labeled_guess, weak_logits = self(torch.cat([images, weak])).split(sizes[:2])
        logits, strong_logits = self(torch.cat([images, strong])).split([sizes[0], sizes[2]])
        return logits, labeled_guess, weak_logits, strong_logits

    def _aligned(self, probabilities: torch.Tensor) -> torch.Tensor:
        return probabilities if self.alignment is None else self.alignment(probabilities)

    def _most_doubt(self) -> float | torch.Tensor:
        """The bar on doubt (1 - threshold): one number, or one per class."""
        if self.adaptive is not None:
            return 1 - self.adaptive.thresholds()
        return 1 - self.hparams.threshold if self.balanced is None else self.balanced.most_doubt()

    def _log_step(self, loss, supervised, unlabeled, labeled_guess, labels, most_doubt) -> None:
        # Lightning cannot infer one size from a batch of labeled and unlabeled views: the epoch means weigh
        # each step by its labeled images.
        batch_size = len(labels)
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=batch_size)
        self.log_dict(
            {"train/loss_labeled": supervised, "train/loss_unlabeled": unlabeled.loss},
            on_step=True,
            on_epoch=True,
            batch_size=batch_size,
        )
        self.mask_rate(unlabeled.mask.float())
        self.log("pseudo/mask_rate", self.mask_rate, on_step=True, on_epoch=True, prog_bar=True)
        # The labeled images' pseudo-labels, made as the unlabeled ones are: how precise the used labels are.
        guessed = self._aligned(labeled_guess.float().softmax(dim=1))
        guess = guessed.max(dim=1).indices
        passed = passes(doubt(guessed, guess), guess, most_doubt)
        self.labeled_mask_rate.update(passed.float())
        self.log("pseudo/labeled_mask_rate", self.labeled_mask_rate, on_step=False, on_epoch=True)
        self.labeled_passed.update(passed.sum())
        self.labeled_correct.update((passed & (guess == labels)).sum())
        masked = F.one_hot(unlabeled.pseudo_labels, self.hparams.num_classes) * unlabeled.mask[:, None]
        for metric, count in zip(self.masked_per_class, masked.sum(dim=0), strict=True):
            metric.update(count)
        hidden = {PASSED: self.labeled_passed, CORRECT: self.labeled_correct}
        hidden |= {masked_key(label): metric for label, metric in enumerate(self.masked_per_class)}
        self.log_dict(hidden, on_step=False, on_epoch=True, logger=False)
        if isinstance(most_doubt, torch.Tensor):  # per class; 1 where nothing of a class passes
            threshold = (1 - most_doubt).clamp_max(1)
            self.log(
                "pseudo/threshold_mean", threshold.mean(), on_step=False, on_epoch=True, batch_size=batch_size
            )

    def on_train_epoch_end(self) -> None:
        """The epoch's precision curve, class histogram and metrics.json values, from the statistics as
        Lightning synced them over processes: no collective of ours runs here, so processes that reach
        this hook at different points of Lightning's own syncing cannot wait on each other."""
        epoch = self.trainer.callback_metrics
        passed, correct = float(epoch[PASSED]), float(epoch[CORRECT])
        counts = [round(float(epoch[masked_key(label)])) for label in range(self.hparams.num_classes)]
        self.mask_rate_by_epoch.append(round(float(epoch["pseudo/mask_rate_epoch"]), 4))
        self.precision_by_epoch.append(round(correct / passed, 4) if passed else None)
        self.masked_per_class_last_epoch = counts
        self.masked_by_epoch.append(sum(counts))
        if passed:  # otherwise there is no precision, and no point rather than TensorBoard's NaN marker
            self.log("pseudo/precision", correct / passed, on_step=False, on_epoch=True)
        share = max(counts) / sum(counts) if sum(counts) else None
        self.top_class_share_by_epoch.append(None if share is None else round(share, 4))
        if share is not None:
            self.log("pseudo/top_class_share", share, on_step=False, on_epoch=True)
            self._add_histogram(torch.tensor(counts))
            names = class_names(self, self.hparams.num_classes)
            precision = correct / passed if passed else None
            warning = collapse_warning(counts, names, self.current_epoch + 1, precision)  # epochs from 1
            # The counts are synced: one line from rank 0, not one from every process.
            if warning is not None and self.trainer.is_global_zero:
                log.warning(warning)

    def _add_histogram(self, counts: torch.Tensor) -> None:
        classes = torch.arange(len(counts)).repeat_interleave(counts)
        edges = torch.arange(len(counts) + 1) - 0.5
        for logger in self.loggers:
            experiment = getattr(logger, "experiment", None)
            if hasattr(experiment, "add_histogram"):
                experiment.add_histogram(
                    "pseudo/masked_labels", classes, self.current_epoch, bins=edges.numpy()
                )

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["mask_rate_by_epoch"] = self.mask_rate_by_epoch
        checkpoint["precision_by_epoch"] = self.precision_by_epoch
        checkpoint["top_class_share_by_epoch"] = self.top_class_share_by_epoch
        checkpoint["masked_by_epoch"] = self.masked_by_epoch

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        if not self.mask_rate_by_epoch:  # a resume; after fit, loading the best epoch keeps the history
            self.mask_rate_by_epoch = list(checkpoint.get("mask_rate_by_epoch", []))
            self.precision_by_epoch = list(checkpoint.get("precision_by_epoch", []))
            self.top_class_share_by_epoch = list(checkpoint.get("top_class_share_by_epoch", []))
            self.masked_by_epoch = list(checkpoint.get("masked_by_epoch", []))

    def run_summary(self, run_dir: Path) -> dict:
        datamodule = self.trainer.datamodule
        return {
            "mode": self.pseudo_label_mode,
            "threshold": self.hparams.threshold,
            "ratio": datamodule.hparams.unlabeled_ratio,
            "unlabeled_used": len(datamodule.unlabeled_set()),
            "mu": self.hparams.mu,
            "lambda_u": self.hparams.lambda_u,
            "one_pass": self.hparams.one_pass,
            "distribution_alignment": self.hparams.distribution_alignment,
            "adaptive_threshold": self.hparams.adaptive_threshold,
            "class_balanced": self.hparams.class_balanced,
            "init_backbone": self.hparams.init_backbone,
            "mask_rate_by_epoch": self.mask_rate_by_epoch,
            "precision_by_epoch": self.precision_by_epoch,
            "masked_per_class_last_epoch": self.masked_per_class_last_epoch,
            "top_class_share_by_epoch": self.top_class_share_by_epoch,
            "masked_by_epoch": self.masked_by_epoch,
        }
