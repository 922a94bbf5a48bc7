"""The study's stages, one LightningModule each."""

from stl10_lightning.stages.supervised import SupervisedResNet

__all__ = ["SupervisedResNet"]
