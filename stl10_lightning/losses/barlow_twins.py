"""Barlow Twins loss (Zbontar et al. 2021, "Barlow Twins: Self-Supervised Learning via Redundancy Reduction").

    L = sum_i (1 - c_ii)^2 + lambd * sum_i sum_{j != i} c_ij^2

where c is the cross-correlation between the two views' projections, each standardized over the batch.
"""

import torch
from torch import Tensor, nn

from stl10_lightning.common.distributed import all_reduce_sum, global_batch_moments, world_size
from stl10_lightning.common.errors import UserError

BATCHNORM_EPS = 1e-5  # the paper's code standardizes with BatchNorm1d(affine=False), whose eps this is


class BarlowTwinsLoss(nn.Module):
    """Pull the cross-correlation of two views' projections towards the identity.

    Batch statistics come from the global batch under DDP, as with the paper's SyncBatchNorm, and are
    used in eval mode too (no running statistics), so a validation loss means the same as a training one.
    `across_processes=False` takes them from this process's batch alone, with no collective call: for
    validation, where processes may hold different numbers of batches and a collective would hang.
    """

    def __init__(self, lambd: float = 5e-3) -> None:
        super().__init__()
        if lambd < 0:
            raise UserError(f"Barlow Twins lambd must be >= 0, got {lambd}")
        self.lambd = lambd

    def forward(self, z1: Tensor, z2: Tensor, across_processes: bool = True) -> dict[str, Tensor]:
        """`z1`, `z2`: (B, D) projections of two views of the same B images, row i pairs with row i."""
        if z1.shape != z2.shape:
            raise UserError(f"Barlow Twins views differ in shape: {tuple(z1.shape)} vs {tuple(z2.shape)}")
        if z1.size(0) * (world_size() if across_processes else 1) < 2:
            raise UserError(
                "Barlow Twins got a batch of 1, which has no batch statistics; use data.batch_size >= 2"
            )
        # At least float32, even under autocast: sums over thousands of bf16 products drift visibly.
        dtype = torch.promote_types(z1.dtype, torch.float32)
        with torch.autocast(z1.device.type, enabled=False):
            c = cross_correlation(z1.to(dtype), z2.to(dtype), across_processes)
        on_diag = (1 - torch.diagonal(c)).pow(2).sum()
        off_diag = self.lambd * off_diagonal(c).pow(2).sum()
        return {
            "loss": on_diag + off_diag,
            "on_diag": on_diag,
            "off_diag": off_diag,
            "mean_abs_off_diag": off_diagonal(c).abs().mean().detach(),
        }


def cross_correlation(z1: Tensor, z2: Tensor, across_processes: bool = True) -> Tensor:
    """(D, D) correlation between features of `z1` and `z2` over the global batch (or this process's)."""
    z1, batch_size = standardize(z1, across_processes)
    z2, _ = standardize(z2, across_processes)
    c = z1.T @ z2 / batch_size
    # Each rank's matrix is already divided by the global batch size, so their sum is the global one.
    return all_reduce_sum(c) if across_processes else c


def standardize(z: Tensor, across_processes: bool = True) -> tuple[Tensor, Tensor]:
    """Zero mean, unit (biased) variance per feature over the global batch; also returns its size."""
    centred, _, var, batch_size = global_batch_moments(z, dims=[0], across_processes=across_processes)
    return centred / torch.sqrt(var + BATCHNORM_EPS), batch_size


def off_diagonal(c: Tensor) -> Tensor:
    """The D * (D - 1) entries of square `c` off its diagonal, flattened."""
    d = c.size(0)
    # Dropping the last entry leaves d - 1 rows of d + 1 that each start with a diagonal entry.
    return c.flatten()[:-1].view(d - 1, d + 1)[:, 1:].flatten()
