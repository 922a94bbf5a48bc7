"""An exponential moving average of a classifier's weights, the copy that is evaluated (`model.ema`).

Lightning's EMAWeightAveraging callback swaps the average in for validation only: once train.py loads
the best checkpoint, `trainer.test` would score the raw weights although `val/acc` chose that checkpoint
by the averaged ones. Held as a submodule, the average is checkpointed, resumed, validated and tested
together with the model, by torch's AveragedModel.

The decay warms up as in TensorFlow's ExponentialMovingAverage: step n keeps min(decay, (1 + n) / (10 + n))
of the old average. A fixed 0.999 would still hold 0.999^1000 = 37 % of the first step's (nearly random)
weights after 1,000 steps, so a short run would evaluate mostly its start.
"""

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from stl10_lightning.common.errors import UserError
from stl10_lightning.models.backbone_file import AVERAGED_PREFIX


def check_decay(decay: float | None) -> float | None:
    if decay is not None and not 0 <= decay < 1:
        raise UserError(
            f"model.ema={decay} must be in [0, 1): the share of the old average kept each step "
            "(FixMatch: 0.999); null switches the average off"
        )
    return decay


def warmed_up_decay(decay: float, updates: int) -> float:
    """The share of the old average kept at the update after `updates` earlier ones (the first copies)."""
    return min(decay, (1 + updates) / (10 + updates))


class WarmedUpAverage:
    """AveragedModel's multi_avg_fn with the warmed-up decay (a class, not a closure: it pickles)."""

    def __init__(self, decay: float):
        self.decay = decay

    @torch.no_grad()
    def __call__(self, averaged: list, current: list, updates: torch.Tensor) -> None:
        if not torch.is_floating_point(averaged[0]):  # BatchNorm's step counters: not averaged
            torch._foreach_copy_(averaged, current)
            return
        torch._foreach_lerp_(averaged, current, 1 - warmed_up_decay(self.decay, int(updates)))


def averaged_copy(parts: dict[str, nn.Module], decay: float) -> AveragedModel:
    """A frozen copy of `parts` (e.g. backbone and head); BatchNorm statistics are averaged too."""
    average = AveragedModel(nn.ModuleDict(parts), multi_avg_fn=WarmedUpAverage(decay), use_buffers=True)
    assert AVERAGED_PREFIX == "ema.module.", "the stages hold the average as `ema`"
    return average.requires_grad_(False)


def update(average: AveragedModel, parts: dict[str, nn.Module]) -> None:
    """One EMA step towards the current weights; the first step copies them."""
    average.update_parameters(nn.ModuleDict(parts))
