"""Batched image transforms that run on the device, after the uint8 batch has been transferred.

Deterministic steps (dtype, resize, normalize) come from torchvision's v2 transforms; random steps come
from kornia, which draws parameters per sample (torchvision's v2 draws one set per batch).
"""

import kornia.augmentation as K
import torch
from torch import nn
from torchvision.transforms import v2

# The per-channel mean and std of STL-10 in common use (from its training images), in [0, 1].
STL10_MEAN = (0.4467, 0.4398, 0.4066)
STL10_STD = (0.2603, 0.2566, 0.2713)


def to_float(image_size: int) -> nn.Sequential:
    """uint8 (B, 3, 96, 96) -> float (B, 3, image_size, image_size) in [0, 1]."""
    steps = [v2.ToDtype(torch.float32, scale=True)]
    if image_size != 96:
        steps.append(v2.Resize((image_size, image_size), antialias=True))
    return nn.Sequential(*steps)


def normalize() -> nn.Module:
    return v2.Normalize(STL10_MEAN, STL10_STD)


def eval_transform(image_size: int) -> nn.Sequential:
    return nn.Sequential(to_float(image_size), normalize())


def classification_train_transform(
    image_size: int, crop_padding: float = 0.125, flip: bool = True, cutout: float = 0.0
) -> nn.Sequential:
    """Pad-and-crop, flip and cutout, each random per sample.

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
    steps.append(normalize())
    if cutout:
        area = cutout**2
        steps.append(K.RandomErasing(scale=(area, area), ratio=(1.0, 1.0), value=0.0, p=1.0))
    return nn.Sequential(*steps)
