"""LARS (You et al., 2017), the optimizer of the Barlow Twins paper.

Written here because neither torch nor our dependencies ship one (it lives in lightning-bolts and
several unmaintained packages). As in the paper's code, parameters with one dimension (biases and
BatchNorm) get neither weight decay (`build_optimizer` puts them in a group with weight_decay 0 and
their own learning rate) nor the layer-wise trust ratio. A group with `lars_adaptation: False` (the
online probe of the Barlow Twins stage) is plain SGD with momentum.
"""

import torch
from torch.optim import Optimizer


class LARS(Optimizer):
    """SGD with momentum whose step for each weight tensor is scaled by eta * ||w|| / ||grad + wd * w||."""

    def __init__(
        self, params, lr: float, weight_decay: float = 0.0, momentum: float = 0.9, eta: float = 1e-3
    ):
        if lr <= 0 or weight_decay < 0 or not 0 <= momentum < 1 or eta <= 0:
            raise ValueError(
                f"LARS needs lr > 0, weight_decay >= 0, 0 <= momentum < 1 and eta > 0, not {lr=}"
            )
        super().__init__(params, {"lr": lr, "weight_decay": weight_decay, "momentum": momentum, "eta": eta})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                update = param.grad.add(param, alpha=group["weight_decay"])
                if param.ndim > 1 and group.get("lars_adaptation", True):
                    param_norm, update_norm = (
                        torch.linalg.vector_norm(param),
                        torch.linalg.vector_norm(update),
                    )
                    trust = torch.where(
                        (param_norm > 0) & (update_norm > 0), group["eta"] * param_norm / update_norm, 1.0
                    )
                    update = update.mul(trust)
                state = self.state[param]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(param)
                buffer = state["momentum_buffer"]
                buffer.mul_(group["momentum"]).add_(update)
                param.add_(buffer, alpha=-group["lr"])
        return loss
