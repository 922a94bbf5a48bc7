"""Batched image transforms that run on the device, after the uint8 batch has been transferred.

Deterministic steps (dtype, resize, normalize) come from torchvision's v2 transforms; random steps come
from kornia, which draws parameters per sample (torchvision's v2 draws one set per batch).
"""

from collections.abc import Sequence

import kornia.augmentation as K
import torch
from torch import nn
from torchvision.transforms import v2

from stl10_lightning.data.stl10_binary import STL10_MEAN, STL10_STD

# Per-channel values in [0, 1], one per RGB channel: the data's (a prepared folder's manifest) or STL-10's.
Channels = Sequence[float]


def to_float(image_size: int) -> nn.Sequential:
    """uint8 (B, 3, S, S) at any stored side S -> float (B, 3, image_size, image_size) in [0, 1].

    torchvision's Resize hands back a batch that already has the size untouched, so at the stored side
    this only converts.
    """
    return nn.Sequential(
        v2.ToDtype(torch.float32, scale=True), v2.Resize((image_size, image_size), antialias=True)
    )


def normalize(mean: Channels = STL10_MEAN, std: Channels = STL10_STD) -> nn.Module:
    return v2.Normalize(list(mean), list(std))


def eval_transform(image_size: int, mean: Channels = STL10_MEAN, std: Channels = STL10_STD) -> nn.Sequential:
    return nn.Sequential(to_float(image_size), normalize(mean, std))


def classification_train_transform(
    image_size: int,
    crop_padding: float = 0.125,
    flip: bool = True,
    cutout: float = 0.0,
    mean: Channels = STL10_MEAN,
    std: Channels = STL10_STD,
) -> nn.Sequential:
    """Pad-and-crop, flip and cutout, each random per sample; `mean` and `std` normalize.

    `crop_padding` and `cutout` are fractions of the image side, so one config serves every image size:
    at 96 px, 0.125 pads 12 px and a cutout of 1/3 erases a 32x32 square (the Cutout paper's STL-10 size).
    Cutout comes after normalization, so the erased square holds the dataset mean.
    """
    steps: list[nn.Module] = [to_float(image_size)]
    padding = round(crop_padding * image_size)
    if padding:
        steps.append(K.RandomCrop((image_size, image_size), padding=padding, padding_mode="reflect"))
    if flip:
        steps.append(K.RandomHorizontalFlip())
    steps.append(normalize(mean, std))
    if cutout:
        area = cutout**2
        steps.append(K.RandomErasing(scale=(area, area), ratio=(1.0, 1.0), value=0.0, p=1.0))
    return nn.Sequential(*steps)
