"""A trained classifier (supervised or linear-probe run) that labels unlabeled images for pseudo-labeling."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate
from torch import nn
from torch.utils.data import DataLoader

from stl10_lightning.common.errors import UserError
from stl10_lightning.data.stl10_binary import STL10_MEAN, STL10_STD
from stl10_lightning.data.transforms import Channels, eval_transform
from stl10_lightning.models.backbone_file import AVERAGED_PREFIX, check_buildable, resolve


class Classifier(nn.Module):
    """Backbone and linear head, named as in the stages' checkpoints."""

    def __init__(
        self,
        backbone: dict,
        num_classes: int,
        image_size: int,
        feature_norm: bool = False,
        mean: Channels = STL10_MEAN,
        std: Channels = STL10_STD,
    ):
        super().__init__()
        self.backbone = instantiate(backbone)
        dim = self.backbone.feature_dim
        self.feature_norm = nn.BatchNorm1d(dim, affine=False) if feature_norm else nn.Identity()  # probes
        self.head = nn.Linear(dim, num_classes)
        self.transform = eval_transform(image_size, mean, std)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.feature_norm(self.backbone(self.transform(images))))


@dataclass
class Teacher:
    model: Classifier
    settings: dict  # the checkpoint's hyper_parameters
    path: Path
    data: dict  # the data module's settings it was trained with
    class_names: list[str] | None = None  # saved with the weights by runs since the names were

    def max_confidence(self) -> float:
        """Label smoothing eps trains towards softmax confidence 1 - eps + eps / classes, and no higher."""
        eps = float(self.settings.get("label_smoothing", 0.0))
        return 1 - eps + eps / self.settings.get("num_classes", 10)


def load_teacher(
    source: str | Path, wanted: str = "a supervised or linear_probe run as pseudo.teacher"
) -> Teacher:
    """A supervised or linear-probe checkpoint, or a run folder holding one, read with weights_only.

    Also a pseudo-label run's: every stage that trains a classifier saves its backbone and head alike.
    `wanted` says what to give instead of a checkpoint without a head.
    """
    path = resolve(source)
    if path.suffix != ".ckpt":
        raise UserError(
            f"{path} is not a checkpoint; the teacher is a supervised or linear_probe run or .ckpt"
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise UserError(
            f"cannot read {path} as a checkpoint ({type(err).__name__}); give a .ckpt file"
        ) from err
    settings = checkpoint.get("hyper_parameters", {}) if isinstance(checkpoint, dict) else {}
    weights = checkpoint.get("state_dict", {}) if isinstance(checkpoint, dict) else {}
    if "backbone" not in settings or "head.weight" not in weights:
        raise UserError(
            f"{path} is not a classifier checkpoint (a barlow_twins run has no head); give {wanted}"
        )
    check_buildable(settings["backbone"], path)  # the checkpoint's own config is built below
    model = Classifier(
        settings["backbone"],
        settings.get("num_classes", 10),
        settings.get("image_size", 96),
        feature_norm="feature_norm.running_mean" in weights,
        mean=settings.get("mean", STL10_MEAN),  # runs from before the statistics were settings: STL-10's
        std=settings.get("std", STL10_STD),
    )
    # A run with model.ema was validated and tested with its averaged weights: the teacher uses those.
    prefix = AVERAGED_PREFIX if f"{AVERAGED_PREFIX}head.weight" in weights else ""
    wanted = {name: weights[prefix + name] for name in model.state_dict() if prefix + name in weights}
    missing, unexpected = model.load_state_dict(wanted, strict=False)
    if missing:
        raise UserError(
            f"{path} lacks {len(missing)} teacher weights (e.g. {missing[:2]}); give a finished run"
        )
    data = checkpoint.get("datamodule_hyper_parameters", {})
    return Teacher(model.eval(), settings, path, data, checkpoint.get("class_names"))


@torch.inference_mode()
def predict(
    model: nn.Module, loader: DataLoader, device: torch.device, autocast, flip_average: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(confidence, predicted class, true label or None) for every image, in the loader's order.

    `autocast` is a context manager factory (the trainer precision's), so a GPU labels in mixed precision.
    """
    model.to(device).eval()
    confidences, predictions, labels = [], [], []
    for batch in loader:
        images = (batch[0] if isinstance(batch, list | tuple) else batch).to(device, non_blocking=True)
        with autocast():
            probabilities = model(images).float().softmax(dim=1)
            if flip_average:
                probabilities = (probabilities + model(images.flip(-1)).float().softmax(dim=1)) / 2
        confidence, prediction = probabilities.max(dim=1)
        confidences.append(confidence)  # kept on the device: a .cpu() per batch would wait for the GPU
        predictions.append(prediction)
        if isinstance(batch, list | tuple):
            labels.append(batch[1])
    true = torch.cat(labels).numpy() if labels else None
    return torch.cat(confidences).cpu().numpy(), torch.cat(predictions).cpu().numpy(), true


def select(
    confidence: np.ndarray, prediction: np.ndarray, threshold: float, balance: bool = False
) -> np.ndarray:
    """Sorted positions of the kept samples: confidence >= threshold.

    With `balance`, every class keeps only its k most confident, k being the smallest non-zero count of
    any class, so the kept set is class-balanced (classes with none stay at none).
    """
    kept = np.flatnonzero(confidence >= threshold)
    if not balance or len(kept) == 0:
        return kept
    counts = np.bincount(prediction[kept])
    k = counts[counts > 0].min()
    balanced = [
        positions[np.argsort(-confidence[positions], kind="stable")[:k]]
        for cls in np.unique(prediction[kept])
        for positions in [kept[prediction[kept] == cls]]
    ]
    return np.sort(np.concatenate(balanced))
