"""The two asymmetric Barlow Twins views, drawn per sample on the device from a uint8 batch.

Barlow Twins (Zbontar et al. 2021) takes BYOL's augmentations: both views get a random resized crop, a
flip, colour jitter and grayscale; view 1 is always blurred and never solarized, view 2 rarely blurred
and sometimes solarized. The paper works at 224 px; the defaults here are adapted to STL-10's 96 px.
"""

import math

import kornia.augmentation as K
import torch
from torch import nn
from torchvision.transforms import v2

from stl10_lightning.data.stl10_binary import STL10_MEAN, STL10_STD
from stl10_lightning.data.transforms import Channels, normalize

# The side the paper's crops are resized to; its blur sigma is in pixels of that side.
PAPER_SIDE = 224


def blur_sigma(image_size: int, sigma_at_paper_side: tuple[float, float]) -> tuple[float, float]:
    """The paper's sigma range scaled to the view's side, so a view is as blurred as the paper's."""
    low, high = sigma_at_paper_side
    scale = image_size / PAPER_SIDE
    return low * scale, high * scale


def blur_kernel_size(sigma_max: float) -> int:
    """The odd side that covers +-3 sigma_max (99.7% of the Gaussian per axis): 7 px at 96, 3 px at 32."""
    return 2 * math.ceil(3 * sigma_max) + 1


def view(
    image_size: int,
    crop_scale: tuple[float, float],
    blur_sigma_at_paper_side: tuple[float, float],
    blur_p: float,
    solarize_p: float,
) -> nn.Sequential:
    """One view's random steps on float images in [0, 1]; each sample draws its own parameters."""
    steps: list[nn.Module] = [
        # Crops straight from the stored image into image_size, so small views are resized once.
        # align_corners=False is torchvision's sampling grid.
        K.RandomResizedCrop((image_size, image_size), scale=crop_scale, align_corners=False),
        K.RandomHorizontalFlip(),
        # ColorJitter, not ColorJiggle: it uses torchvision's blend formulas and hue in turns of the colour
        # circle, so these factors mean what they mean in the paper. Unlike torchvision, one random order of
        # the four steps is shared by the batch; the factors are still drawn per sample.
        K.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1, p=0.8),
        K.RandomGrayscale(p=0.2),
    ]
    if blur_p:
        sigma = blur_sigma(image_size, blur_sigma_at_paper_side)
        size = blur_kernel_size(sigma[1])
        steps.append(K.RandomGaussianBlur((size, size), sigma, p=blur_p))
    if solarize_p:
        # kornia's defaults draw the threshold from (0.4, 0.6) and add a random brightness shift; BYOL inverts
        # every value at or above a fixed 0.5 (128 of 255) and adds nothing.
        steps.append(K.RandomSolarize(thresholds=(0.5, 0.5), additions=(0.0, 0.0), p=solarize_p))
    return nn.Sequential(*steps)


class BarlowTwinsViews(nn.Module):
    """uint8 (B, 3, S, S) -> two float32 views (B, 3, image_size, image_size), normalized by `mean`, `std`.

    `crop_scale` is the crop's share of the image area. The paper's (0.08, 1.0) at 224 px would leave
    crops of 27 px at 96 px; (0.2, 1.0) is the usual choice for STL-10. `blur_sigma_at_paper_side` is
    the paper's blur sigma range, in pixels at 224 px; it scales with the view's side (0.04-0.86 px at
    96 px, 0.014-0.29 px at 32 px). The module holds no parameters, so it can run under `torch.no_grad()`.
    """

    def __init__(
        self,
        image_size: int = 96,
        crop_scale: tuple[float, float] = (0.2, 1.0),
        blur_sigma_at_paper_side: tuple[float, float] = (0.1, 2.0),
        mean: Channels = STL10_MEAN,
        std: Channels = STL10_STD,
    ):
        super().__init__()
        # Only the dtype changes at the stored side: the crop does all the resizing.
        self.to_float = v2.ToDtype(torch.float32, scale=True)
        self.view1 = view(image_size, crop_scale, blur_sigma_at_paper_side, blur_p=1.0, solarize_p=0.0)
        self.view2 = view(image_size, crop_scale, blur_sigma_at_paper_side, blur_p=0.1, solarize_p=0.2)
        self.normalize = normalize(mean, std)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        images = self.to_float(images)
        return self.normalize(self.view1(images)), self.normalize(self.view2(images))
