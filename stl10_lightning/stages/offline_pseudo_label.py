"""OfflinePseudoLabelModule: the report's pseudo-labeling (a fixed teacher labels once, a student retrains).

At the start of fit the teacher labels the run's unlabeled subset (`ratio` x the labeled pool) in eval
mode without augmentation; samples at or above `threshold` confidence join the labeled train split
with their predicted class. Against a well-regularized teacher few samples pass 0.99, and the student
rarely beats the teacher: this stage shows that honestly (kept count, class balance, precision).
"""

import logging
from pathlib import Path

import numpy as np
import torch

from stl10_lightning.common.errors import UserError
from stl10_lightning.models.backbone_file import architecture
from stl10_lightning.runs.folder import newest_finished_run
from stl10_lightning.stages.supervised import SupervisedResNet
from stl10_lightning.stages.teacher import Teacher, load_teacher, predict, select

log = logging.getLogger(__name__)
# The data settings that fix the val split: a teacher trained with others has seen this run's val images.
SPLIT_SETTINGS = ("val_size", "fold", "seed")


def check_threshold(threshold: float) -> None:
    """`pseudo.threshold`, in either mode: a softmax confidence a pseudo-label must reach."""
    if not 0 < threshold <= 1:
        raise UserError(f"pseudo.threshold={threshold} must be in (0, 1]: it is a softmax confidence")


class OfflinePseudoLabelModule(SupervisedResNet):
    """The supervised stage's model and recipe, trained on labeled plus pseudo-labeled images.

    `teacher`: a supervised or linear-probe run folder or checkpoint; None takes the newest finished
    supervised run. `init`: `scratch` (the report) or `teacher` (start from its weights). `weight`
    scales the loss of pseudo-labeled samples. `balance` keeps the same number per class. `steps`:
    `epochs` trains max_epochs over labeled plus kept images (the report: more images, more steps);
    `match_supervised` takes as many batches an epoch as the labeled images alone give, drawn from all of
    them, so the student has the supervised run's optimizer steps and only the data differs. `shared`:
    the supervised recipe's other settings (num_classes, image_size, schedule, warmup_epochs,
    label_smoothing, augment, ema), with its defaults: the student trains as the supervised stage does.
    """

    pseudo_label_mode = "offline"  # the option of the group `pseudo`, named in metrics.json and HPARAMS

    def __init__(
        self,
        backbone: dict,
        optimizer: dict,
        teacher: str | None = None,
        threshold: float = 0.99,
        init: str = "scratch",
        weight: float = 1.0,
        balance: bool = False,
        flip_average: bool = False,
        steps: str = "epochs",
        **shared,
    ):
        super().__init__(backbone=backbone, optimizer=optimizer, **shared)
        check_threshold(threshold)
        if init not in ("scratch", "teacher"):
            raise UserError(f"pseudo.init={init!r}; choose scratch or teacher")
        if weight < 0:
            raise UserError(f"pseudo.weight={weight} must be >= 0")
        self.criterion.reduction = "none"  # per-sample losses, weighted by source in training_step
        teacher_model = self._load_teacher(teacher or newest_finished_run("supervised"))
        if init == "teacher":
            self._start_from(teacher_model)
        self.summary: dict = {}

    def _load_teacher(self, source) -> Teacher:
        teacher = load_teacher(source)
        self.hparams.teacher = str(teacher.path)
        classes = teacher.settings.get("num_classes", 10)
        if classes != self.hparams.num_classes:
            raise UserError(
                f"the teacher {teacher.path} predicts {classes} classes, but this run's data has "
                f"{self.hparams.num_classes}; give a teacher trained on the same data (data.root)"
            )
        if self.hparams.threshold > teacher.max_confidence():
            raise UserError(
                f"the teacher {teacher.path} was trained with label smoothing "
                f"{teacher.settings['label_smoothing']}, so its confidence stays below "
                f"{teacher.max_confidence():.3f}: pseudo.threshold={self.hparams.threshold} can never be "
                "reached; lower the threshold or train the teacher with model.label_smoothing=0"
            )
        self._teacher = teacher  # not a submodule: it is neither trained nor saved with the student
        return teacher

    def _start_from(self, teacher: Teacher) -> None:
        if architecture(teacher.settings["backbone"]) != architecture(self.hparams.backbone):
            raise UserError(
                f"pseudo.init=teacher needs the teacher's backbone ({teacher.settings['backbone']}); "
                "run with that backbone or with pseudo.init=scratch"
            )
        self.backbone.load_state_dict(teacher.model.backbone.state_dict())
        self.head.load_state_dict(teacher.model.head.state_dict())

    def setup(self, stage: str) -> None:
        """Label before fit counts its steps: the cosine schedule spans labeled plus kept images."""
        if stage != "fit" or self.summary:
            return
        datamodule = self.trainer.datamodule
        self._check_split(datamodule.hparams)
        device = self.trainer.strategy.root_device
        autocast = self.trainer.precision_plugin.forward_context
        flip = self.hparams.flip_average
        val_confidence, val_prediction, val_labels = predict(
            self._teacher.model, datamodule.labeled_eval_dataloader("val"), device, autocast, flip
        )
        confidence, prediction, _ = predict(
            self._teacher.model, datamodule.unlabeled_dataloader(), device, autocast, flip
        )
        self._teacher.model.cpu()
        threshold, balance = self.hparams.threshold, self.hparams.balance
        kept = select(confidence, prediction, threshold, balance)
        val_kept = select(val_confidence, val_prediction, threshold, balance)
        if len(kept) == 0:
            log.warning(
                "no unlabeled image reached confidence %s (the highest was %.4f): the student trains on the "
                "labeled images only",
                threshold,
                confidence.max(initial=0),
            )
        batches_before = datamodule.batches_per_epoch("train")
        datamodule.add_pseudo_labels(kept, prediction[kept])
        if self.hparams.steps == "match_supervised":
            self._limit_batches_per_epoch(batches_before)
        self.summary = {
            "mode": self.pseudo_label_mode,
            "teacher": str(self._teacher.path),
            "threshold": threshold,
            "ratio": datamodule.hparams.unlabeled_ratio,
            "unlabeled_used": len(confidence),
            "kept": len(kept),
            "kept_frac": len(kept) / max(len(confidence), 1),
            "kept_per_class": np.bincount(prediction[kept], minlength=self.hparams.num_classes).tolist(),
            "kept_mean_confidence": float(confidence[kept].mean()) if len(kept) else None,
            "teacher_val_acc": float((val_prediction == val_labels).mean()),
            "val_precision": float((val_prediction[val_kept] == val_labels[val_kept]).mean())
            if len(val_kept)
            else None,
            "val_kept_frac": len(val_kept) / len(val_labels),
        }
        log.info("pseudo-labels: %s", {k: v for k, v in self.summary.items() if k != "kept_per_class"})
        self._teacher.model = None  # labeling is done: free the teacher's memory for the student

    def _limit_batches_per_epoch(self, batches: int) -> None:
        """Lightning reads limit_train_batches when it sets up the train loader, after this hook."""
        limit = self.trainer.limit_train_batches  # a user's own limit: a fraction or a count
        self.trainer.limit_train_batches = (
            max(1, int(batches * limit)) if isinstance(limit, float) else min(limit, batches)
        )
        log.info(
            "pseudo.steps=match_supervised: %d batches an epoch, as the labeled images alone give", batches
        )

    def _check_split(self, data: dict) -> None:
        teacher = self._teacher.data
        changed = [key for key in SPLIT_SETTINGS if key in teacher and teacher[key] != data.get(key)]
        if changed:
            raise UserError(
                f"the teacher {self._teacher.path} was trained with another train/val split "
                f"({', '.join(f'data.{k}={teacher[k]}' for k in changed)}), so it has seen this run's val "
                "images; use the teacher's data settings"
            )

    def on_fit_start(self) -> None:
        """The labeling results on the dashboard: counts, class histogram, confidence, precision."""
        numbers = {
            f"pseudo/{name}": value
            for name, value in self.summary.items()
            if isinstance(value, int | float) and not isinstance(value, bool) and value is not None
        }
        for logger in self.loggers:
            logger.log_metrics(numbers, step=0)
            experiment = getattr(logger, "experiment", None)
            if hasattr(experiment, "add_text"):
                names = getattr(self.trainer.datamodule, "class_names", None) or []
                rows = "\n".join(
                    f"| {names[i] if i < len(names) else i} | {count} |"
                    for i, count in enumerate(self.summary["kept_per_class"])
                )
                experiment.add_text("pseudo/kept_per_class", f"| class | kept |\n|---|---|\n{rows}", 0)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        if len(batch) == 3:  # labeled + pseudo-labeled: (images, labels, source)
            images, labels, source = batch
            return self.train_transform(images), labels, source
        return super().on_after_batch_transfer(batch, dataloader_idx)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        images, labels, *source = batch
        logits = self(images)
        losses = self.criterion(logits, labels)
        if source:
            weights = torch.where(source[0] == 1, self.hparams.weight, 1.0).to(losses.dtype)
            losses = losses * weights
        loss = losses.mean()
        self.train_acc(logits, labels)
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True)
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True)
        return loss

    def run_summary(self, run_dir: Path) -> dict:
        return dict(self.summary)
