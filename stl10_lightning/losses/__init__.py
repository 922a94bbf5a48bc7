"""The stages' losses beyond plain cross-entropy."""

from stl10_lightning.losses.barlow_twins import BarlowTwinsLoss
from stl10_lightning.losses.fixmatch import (
    ConsistencyLoss,
    consistency_loss,
    doubt,
    masked_consistency,
    passes,
)
from stl10_lightning.losses.pseudo_label_guards import (
    ClassBalancedSelection,
    DistributionAlignment,
    SelfAdaptiveThreshold,
)

__all__ = [
    "BarlowTwinsLoss",
    "ClassBalancedSelection",
    "ConsistencyLoss",
    "DistributionAlignment",
    "SelfAdaptiveThreshold",
    "consistency_loss",
    "doubt",
    "masked_consistency",
    "passes",
]
