"""FixMatch's weak and strong views, drawn per sample on the device from a uint8 batch.

FixMatch (Sohn et al. 2020) makes the weak view with a random horizontal flip and a translation of up to
12.5% of the side, and the strong view with the same flip and crop, RandAugment with a random
magnitude for every op, then Cutout. Neither library's RandAugment draws per sample: torchvision's v2
RandAugment picks its ops (with replacement) once per call for the whole batch, at one fixed magnitude;
`kornia.augmentation.auto.RandAugment` also picks its ops once per call for the whole batch, sets every
magnitude from one fixed `m` (only the sign is drawn per sample), and its default pool adds Invert and
SolarizeAdd to FixMatch's.
"""

import math

import kornia.augmentation as K
import torch
from torch import nn
from torchvision.transforms import v2

from stl10_lightning.data.stl10_binary import STL10_MEAN, STL10_STD
from stl10_lightning.data.transforms import Channels, classification_train_transform

# FixMatch's magnitude ranges: an enhancement factor, and a shear factor that kornia takes as an angle.
ENHANCE = (0.05, 0.95)
SHEAR_DEGREES = math.degrees(math.atan(0.3))
# The weak view's flip and pad-and-crop: fixed by the method, not by the labeled view's `model.augment`.
FIXMATCH_CROP_AND_FLIP = {"crop_padding": 0.125, "flip": True}


def randaugment_pool() -> dict[str, nn.Module]:
    """FixMatch's RandAugment ops on float images in [0, 1]; each draws its magnitude per sample."""
    return {
        "identity": nn.Identity(),
        # Unlike kornia's RandomAutoContrast, torchvision's leaves a constant channel as it is, like PIL.
        "auto_contrast": v2.RandomAutocontrast(p=1.0),
        # ColorJitter's steps are PIL's ImageEnhance blends, towards black, grey (the grayscale mean) and the
        # grayscale image; kornia's RandomBrightness adds, RandomContrast multiplies, RandomSaturation scales
        # the HSV saturation.
        "brightness": K.ColorJitter(brightness=ENHANCE),
        "color": K.ColorJitter(saturation=ENHANCE),
        "contrast": K.ColorJitter(contrast=ENHANCE),
        "equalize": K.RandomEqualize(p=1.0),
        # kornia rounds a uniform draw half to even: bits 4 to 7 are equally likely, 8 (no-op) half as likely.
        "posterize": K.RandomPosterize(bits=(3.5, 8.0), p=1.0),
        # Bilinear and filled with black (PIL's rotate defaults to nearest).
        "rotate": K.RandomRotation(30.0, p=1.0),
        # PIL's blend with its 3x3 SMOOTH filter, the border left as it is.
        "sharpness": K.RandomSharpness(ENHANCE, p=1.0),
        # The factor tan(angle) spans [-0.3, 0.3], but the angle is uniform, not the factor (they differ by at
        # most 0.004). kornia shears about the centre; PIL about the top-left corner, which also shifts.
        "shear_x": K.RandomShear((-SHEAR_DEGREES, SHEAR_DEGREES), p=1.0),
        "shear_y": K.RandomShear((0.0, 0.0, -SHEAR_DEGREES, SHEAR_DEGREES), p=1.0),
        # Inverts every value at or above the threshold, as PIL does; kornia's default also adds a shift.
        "solarize": K.RandomSolarize(thresholds=(0.0, 1.0), additions=(0.0, 0.0), p=1.0),
        "translate_x": K.RandomTranslate(translate_x=(-0.3, 0.3), p=1.0),
        "translate_y": K.RandomTranslate(translate_y=(-0.3, 0.3), p=1.0),
    }


class PerSampleRandAugment(nn.Module):
    """RandAugment with every sample drawing its own `num_ops` distinct ops and their magnitudes.

    float (B, 3, H, W) in [0, 1] -> the same shape, still in [0, 1]. The chosen ops are applied in the fixed
    order of the pool, not the order drawn, so that each op runs once on the samples that drew it.
    """

    def __init__(self, num_ops: int = 2):
        super().__init__()
        self.pool = nn.ModuleDict(randaugment_pool())
        if not 0 <= num_ops <= len(self.pool):
            raise ValueError(f"num_ops must be in [0, {len(self.pool)}], got {num_ops}")
        self.num_ops = num_ops

    def choose(self, batch_size: int) -> torch.Tensor:
        """A bool (batch_size, len(pool)) mask: each row holds `num_ops` ops drawn without replacement."""
        # Drawn on the CPU, like kornia's parameters, so that finding each op's samples needs no device sync.
        ranks = torch.rand(batch_size, len(self.pool)).argsort(dim=1)
        return torch.zeros(ranks.shape, dtype=torch.bool).scatter_(1, ranks[:, : self.num_ops], True)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        chosen = self.choose(images.shape[0])
        out = images.clone()
        for column, op in enumerate(self.pool.values()):
            rows = chosen[:, column].nonzero().squeeze(1)
            if len(rows):
                rows = rows.to(images.device)
                out[rows] = op(out[rows])
        # A bilinear warp of an all-ones image can come out a rounding error above 1.
        return out.clamp_(0.0, 1.0)


def weak_transform(image_size: int, mean: Channels = STL10_MEAN, std: Channels = STL10_STD) -> nn.Sequential:
    """uint8 (B, 3, S, S) -> normalized float32 (B, 3, image_size, image_size): FixMatch's weak view."""
    return classification_train_transform(image_size, **FIXMATCH_CROP_AND_FLIP, mean=mean, std=std)


def strong_transform(
    image_size: int,
    num_ops: int = 2,
    cutout: float = 0.5,
    mean: Channels = STL10_MEAN,
    std: Channels = STL10_STD,
) -> nn.Sequential:
    """uint8 (B, 3, S, S) -> normalized float32 (B, 3, image_size, image_size): FixMatch's strong view.

    The weak view's flip and pad-and-crop, then RandAugment (inserted just before normalization) and
    cutout. `cutout` is the erased square's side as a fraction of the image side.
    """
    steps = list(
        classification_train_transform(
            image_size, **FIXMATCH_CROP_AND_FLIP, cutout=cutout, mean=mean, std=std
        )
    )
    at = next(i for i, step in enumerate(steps) if isinstance(step, v2.Normalize))
    steps.insert(at, PerSampleRandAugment(num_ops))
    return nn.Sequential(*steps)
