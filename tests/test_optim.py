import torch
from torch import nn

from stl10_lightning.stages.optim import build_optimizer, warmup_cosine


def test_weight_decay_skips_biases_and_batchnorm():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(2))
    model(torch.randn(1, 3, 8, 8))
    optimizer = build_optimizer({"_target_": "torch.optim.SGD", "lr": 0.1, "weight_decay": 5e-4}, model)
    decayed, plain = optimizer.param_groups
    assert decayed["weight_decay"] == 5e-4 and plain["weight_decay"] == 0.0
    assert [p.ndim for p in decayed["params"]] == [4, 2]
    assert len(plain["params"]) == 4  # conv bias, BatchNorm weight and bias, linear bias


def test_warmup_then_cosine_to_zero():
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = warmup_cosine(optimizer, warmup_steps=10, total_steps=110)
    lrs = []
    for _ in range(110):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[0] < 0.01
    assert max(lrs) == lrs[10] == 1.0
    assert abs(lrs[60] - 0.5) < 0.02  # halfway through the cosine
    assert lrs[-1] < 0.001
