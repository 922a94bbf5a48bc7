"""Backbones: each maps (B, 3, H, W) images to (B, feature_dim) features and exposes `feature_dim`."""

from stl10_lightning.models.resnet9 import ResNet9
from stl10_lightning.models.tiny import TinyNet
from stl10_lightning.models.torchvision_resnet import resnet18, resnet50

__all__ = ["ResNet9", "TinyNet", "resnet18", "resnet50"]
