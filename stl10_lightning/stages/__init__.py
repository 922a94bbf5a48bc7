"""The study's stages, one LightningModule each."""

from stl10_lightning.stages.barlow_twins import BarlowTwinsModule
from stl10_lightning.stages.linear_probe import LinearProbe
from stl10_lightning.stages.pseudo_label import PseudoLabelModule
from stl10_lightning.stages.supervised import SupervisedResNet

__all__ = ["BarlowTwinsModule", "LinearProbe", "PseudoLabelModule", "SupervisedResNet"]
