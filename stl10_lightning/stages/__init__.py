"""The study's stages, one LightningModule each."""

from stl10_lightning.stages.barlow_twins import BarlowTwinsModule
from stl10_lightning.stages.linear_probe import LinearProbe
from stl10_lightning.stages.offline_pseudo_label import OfflinePseudoLabelModule
from stl10_lightning.stages.online_pseudo_label import OnlinePseudoLabelModule
from stl10_lightning.stages.supervised import SupervisedResNet

__all__ = [
    "BarlowTwinsModule",
    "LinearProbe",
    "OfflinePseudoLabelModule",
    "OnlinePseudoLabelModule",
    "SupervisedResNet",
]
