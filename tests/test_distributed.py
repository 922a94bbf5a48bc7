import os
import socket
from pathlib import Path
from unittest import mock

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from stl10_lightning.common.distributed import CpuSyncBatchNorm, SyncBatchNormPlugin
from stl10_lightning.losses import BarlowTwinsLoss, barlow_twins

WORLD_SIZE = 2
BATCH = 16  # images per view, split evenly over the ranks


class TwinNet(nn.Module):
    """Conv backbone with BatchNorm2d and a projector with BatchNorm1d; both views in one forward."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(8, 16),
            nn.BatchNorm1d(16),
            nn.ReLU(),
            nn.Linear(16, 16),
        )

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.net(x1), self.net(x2)


def make_model() -> TwinNet:
    torch.manual_seed(0)
    return TwinNet().double()


def make_views() -> tuple[torch.Tensor, torch.Tensor]:
    """float64, so that differences left by summing in another order are far below the tolerance."""
    generator = torch.Generator().manual_seed(1)
    return tuple(torch.randn(BATCH, 3, 12, 12, generator=generator, dtype=torch.float64) for _ in range(2))


def loss_grads_and_buffers(model: nn.Module, x1: torch.Tensor, x2: torch.Tensor) -> dict[str, torch.Tensor]:
    loss = BarlowTwinsLoss()(*model(x1, x2))["loss"]
    loss.backward()
    grads = {f"{name}.grad": p.grad.clone() for name, p in model.named_parameters()}
    buffers = {name: b.clone() for name, b in model.named_buffers()}  # BatchNorm running statistics
    return {"loss": loss.detach(), **grads, **buffers}


def all_reduce_without_autograd(tensor: torch.Tensor) -> torch.Tensor:
    """The planted bug: summed values, but each rank's gradient only reaches its own rank's input.

    That is what an in-place `dist.all_reduce(c)` does today, with a deprecation warning.
    """
    summed = tensor.detach().clone()
    dist.all_reduce(summed)
    return tensor + (summed - tensor).detach()


def ddp_worker(rank: int, port: int, out_dir: Path) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD_SIZE)
    try:
        shard = slice(rank * BATCH // WORLD_SIZE, (rank + 1) * BATCH // WORLD_SIZE)
        x1, x2 = (x[shard] for x in make_views())
        for name, reduce_c in [
            ("exact", barlow_twins.all_reduce_sum),
            ("plain", all_reduce_without_autograd),
        ]:
            model = nn.parallel.DistributedDataParallel(SyncBatchNormPlugin().apply(make_model()))
            with mock.patch.object(barlow_twins, "all_reduce_sum", reduce_c):
                result = loss_grads_and_buffers(model, x1, x2)
            if rank == 0:
                torch.save({k.removeprefix("module."): v for k, v in result.items()}, out_dir / f"{name}.pt")
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_matches_one_process_on_the_full_batch(tmp_path):
    mp.spawn(ddp_worker, args=(free_port(), tmp_path), nprocs=WORLD_SIZE)
    expected = loss_grads_and_buffers(make_model(), *make_views())
    exact = torch.load(tmp_path / "exact.pt")
    plain = torch.load(tmp_path / "plain.pt")
    assert exact.keys() == expected.keys()
    for key, value in expected.items():
        torch.testing.assert_close(exact[key], value, rtol=0, atol=1e-10, msg=key)
    grads = {key: value for key, value in expected.items() if key.endswith(".grad")}
    assert max(g.abs().max() for g in grads.values()) > 1.0  # large enough for the control to tell apart
    for key, value in grads.items():
        # Control: a gradient-blind all-reduce of c scales every gradient by 1/world_size.
        torch.testing.assert_close(plain[key], value / WORLD_SIZE, rtol=0, atol=1e-10, msg=key)


def test_plugin_converts_every_batchnorm_and_back():
    model = make_model()
    original = make_model()
    classes = [type(m) for m in model.modules()]
    synced = SyncBatchNormPlugin().apply(model)
    assert [type(m) for m in synced.modules()] == [
        CpuSyncBatchNorm if issubclass(c, _BatchNorm) else c for c in classes
    ]
    x1, x2 = make_views()
    for train in (True, False):
        synced.train(train), original.train(train)
        for a, b in zip(synced(x1, x2), original(x1, x2), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
    reverted = SyncBatchNormPlugin().revert(synced)
    assert [type(m) for m in reverted.modules()] == classes
    torch.testing.assert_close(reverted.state_dict(), original.state_dict(), rtol=0, atol=0)
