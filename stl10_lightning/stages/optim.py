"""Optimizer and learning-rate schedule shared by the stages."""

from hydra.utils import instantiate
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, LRScheduler, SequentialLR


def build_optimizer(config: dict, module: nn.Module) -> Optimizer:
    """Instantiate `config` (a `_target_` dict) with weight decay on weights only.

    Biases and BatchNorm parameters (every tensor with fewer than two dimensions) get no decay.
    """
    params = [p for p in module.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.ndim > 1], "name": "weights"},
        {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0, "name": "no_decay"},
    ]
    return instantiate({**config, "_partial_": True})(groups)


def warmup_cosine(optimizer: Optimizer, warmup_steps: int, total_steps: int) -> LRScheduler:
    """Linear warm-up from ~0 over `warmup_steps`, then cosine decay to 0 at `total_steps`."""
    cosine = CosineAnnealingLR(optimizer, T_max=max(total_steps - warmup_steps, 1))
    if warmup_steps <= 0:
        return cosine
    warmup = LinearLR(optimizer, start_factor=1e-3, total_iters=warmup_steps)
    return SequentialLR(optimizer, [warmup, cosine], milestones=[warmup_steps])
