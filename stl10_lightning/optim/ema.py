"""An exponential moving average of a classifier's weights, the copy that is evaluated (`model.ema`).

Lightning's EMAWeightAveraging callback swaps the average in for validation only: once train.py loads
the best checkpoint, `trainer.test` would score the raw weights although `val/acc` chose that checkpoint
by the averaged ones. Held as a submodule, the average is checkpointed, resumed, validated and tested
together with the model, by torch's AveragedModel.
"""

from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from stl10_lightning.common.errors import UserError
from stl10_lightning.models.backbone_file import AVERAGED_PREFIX


def check_decay(decay: float | None) -> float | None:
    if decay is not None and not 0 <= decay < 1:
        raise UserError(
            f"model.ema={decay} must be in [0, 1): the share of the old average kept each step "
            "(FixMatch: 0.999); null switches the average off"
        )
    return decay


def averaged_copy(parts: dict[str, nn.Module], decay: float) -> AveragedModel:
    """A frozen copy of `parts` (e.g. backbone and head); BatchNorm statistics are averaged too."""
    average = AveragedModel(nn.ModuleDict(parts), multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
    assert AVERAGED_PREFIX == "ema.module.", "the stages hold the average as `ema`"
    return average.requires_grad_(False)


def update(average: AveragedModel, parts: dict[str, nn.Module]) -> None:
    """One EMA step towards the current weights; the first step copies them."""
    average.update_parameters(nn.ModuleDict(parts))
