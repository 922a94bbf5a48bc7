"""torchvision ResNets without their classifier, with a stem chosen for STL-10's 96 px images.

Stems (`stem=`):
- `imagenet`: 7x7 stride-2 conv and max-pool, as torchvision ships it. Cheapest; at 96 px the last
  stage is only 3x3, which loses detail.
- `conv3_pool` (default): 3x3 stride-1 conv, then the max-pool. The last stage is 6x6 at 96 px, about
  4x the compute of `imagenet` and a quarter of `conv3`. A good accuracy-per-FLOP point for STL-10.
- `conv3`: 3x3 stride-1 conv and no max-pool (the CIFAR adaptation). 12x12 last stage at 96 px; use
  it for 32-64 px experiments, where the other stems shrink the maps too far.
"""

import torchvision
from torch import nn

from stl10_lightning.common.errors import UserError

STEMS = ("imagenet", "conv3_pool", "conv3")


def torchvision_resnet(arch: str, stem: str = "conv3_pool") -> nn.Module:
    if stem not in STEMS:
        raise UserError(f"backbone.stem={stem!r} is not a stem; choose one of {STEMS}")
    net = getattr(torchvision.models, arch)(weights=None)
    if stem != "imagenet":
        net.conv1 = nn.Conv2d(3, net.conv1.out_channels, 3, 1, 1, bias=False)
    if stem == "conv3":
        net.maxpool = nn.Identity()
    net.feature_dim = net.fc.in_features
    net.fc = nn.Identity()
    return net


def resnet18(stem: str = "conv3_pool") -> nn.Module:
    return torchvision_resnet("resnet18", stem)


def resnet50(stem: str = "conv3_pool") -> nn.Module:
    return torchvision_resnet("resnet50", stem)
