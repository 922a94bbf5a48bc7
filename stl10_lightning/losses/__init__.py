"""Self-supervised losses."""

from stl10_lightning.losses.barlow_twins import BarlowTwinsLoss

__all__ = ["BarlowTwinsLoss"]
