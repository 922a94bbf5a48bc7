"""The stages' losses beyond plain cross-entropy."""

from stl10_lightning.losses.barlow_twins import BarlowTwinsLoss
from stl10_lightning.losses.fixmatch import ConsistencyLoss, consistency_loss

__all__ = ["BarlowTwinsLoss", "ConsistencyLoss", "consistency_loss"]
