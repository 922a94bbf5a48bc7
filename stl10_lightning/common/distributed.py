"""Gradient-exact collectives, and a BatchNorm that syncs under DDP on CPU (gloo) as well as on GPU."""

import math

import torch
import torch.distributed as dist
from pytorch_lightning.plugins import LayerSync
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm


def world_size() -> int:
    """Number of processes, 1 when torch.distributed is not running."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


class _AllReduceSum(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tensor: Tensor) -> Tensor:
        summed = tensor.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(summed, op=dist.ReduceOp.SUM)
        return summed

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        # Every rank's loss depends on every rank's input, so each input's gradient is the sum over ranks.
        summed = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(summed, op=dist.ReduceOp.SUM)
        return summed


def all_reduce_sum(tensor: Tensor) -> Tensor:
    """Sum `tensor` over all processes, with the matching sum of gradients in backward.

    Hand-written because `torch.distributed.nn.functional.all_reduce` is deprecated (its FutureWarning
    points to a private module), and Lightning's `all_gather(sync_grads=True)` would hold world_size
    copies of a d x d matrix (8192 x 8192 for the Barlow Twins cross-correlation). A plain
    `dist.all_reduce` is not enough: it drops the other ranks' gradients, scaling them by 1/world_size.
    """
    if world_size() == 1:
        return tensor
    return _AllReduceSum.apply(tensor)


def global_batch_moments(
    x: Tensor, dims: list[int], across_processes: bool = True
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """`x` centred on its mean over `dims` and all processes, that mean, the biased variance, the count.

    With `across_processes=False`, over this process's `x` only, with no collective call.
    The centred `x` is returned so that callers reuse it: it is the one full-size tensor autograd keeps.
    Two passes (mean, then squared deviations) because sum-of-squares minus squared mean loses float32
    precision when |mean| is large against the spread.
    """
    reduce = all_reduce_sum if across_processes else _unchanged
    count = x.new_tensor([math.prod(x.size(d) for d in dims)])
    count_and_sum = reduce(torch.cat([count, x.sum(dims)]))
    count, mean = count_and_sum[0], count_and_sum[1:] / count_and_sum[0]
    centred = x - mean.view([1 if d in dims else -1 for d in range(x.dim())])
    var = reduce(centred.pow(2).sum(dims)) / count
    return centred, mean, var, count


def _unchanged(tensor: Tensor) -> Tensor:
    return tensor


class CpuSyncBatchNorm(_BatchNorm):
    """BatchNorm over the global batch under DDP, for CPU (gloo) runs; any device works.

    torch's `nn.SyncBatchNorm` raises "expected input tensor to be on GPU" on CPU, and DDP refuses any
    subclass of it in a CPU module, hence a sibling class. Outside training under DDP (eval mode, one
    process) it is a plain BatchNorm. On GPU, torch's fused layer (Lightning's `sync_batchnorm=True`)
    does the same with less temporary memory.
    """

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, input: Tensor) -> Tensor:
        if not self.training or world_size() == 1:
            return super().forward(input)
        self._check_input_dim(input)
        dims = [0, *range(2, input.dim())]
        # Ranks hold equal batches under DDP; this spares a host sync per layer on GPU.
        if math.prod(input.size(d) for d in dims) * world_size() < 2:
            raise ValueError("Expected more than 1 value per channel when training, got a global batch of 1")
        # At least float32 for the statistics, as F.batch_norm does for half-precision inputs.
        x = input.to(torch.promote_types(input.dtype, torch.float32))
        centred, mean, var, count = global_batch_moments(x, dims)
        if self.track_running_stats:
            self._update_running_stats(mean.detach(), var.detach() * count / (count - 1))
        scale = torch.rsqrt(var + self.eps)
        if self.weight is not None:
            scale = scale * self.weight
        shape = [1, -1] + [1] * (input.dim() - 2)
        out = centred * scale.view(shape)
        if self.bias is not None:
            out = out + self.bias.view(shape)
        return out.to(input.dtype)

    def _update_running_stats(self, mean: Tensor, unbiased_var: Tensor) -> None:
        self.num_batches_tracked.add_(1)
        factor = 1.0 / self.num_batches_tracked.item() if self.momentum is None else self.momentum
        self.running_mean.lerp_(mean.to(self.running_mean.dtype), factor)
        self.running_var.lerp_(unbiased_var.to(self.running_var.dtype), factor)


class SyncBatchNormPlugin(LayerSync):
    """`trainer.plugins=[SyncBatchNormPlugin]`: BatchNorm over the global batch under DDP, CPU or GPU.

    Lightning's own `sync_batchnorm=True` uses `nn.SyncBatchNorm`, which fails on CPU. Parameters and
    buffers are shared, not copied, so optimizers and state dicts see the same tensors.
    """

    def apply(self, model: nn.Module) -> nn.Module:
        """Replace every BatchNorm layer with `CpuSyncBatchNorm`."""
        return _replace_batchnorms(model, _to_synced)

    def revert(self, model: nn.Module) -> nn.Module:
        """Turn the layers `apply` replaced back into their original BatchNorm classes."""
        return _replace_batchnorms(model, _to_unsynced)


def _replace_batchnorms(module: nn.Module, convert) -> nn.Module:
    for name, child in module.named_children():
        module.add_module(name, _replace_batchnorms(child, convert))
    return convert(module) if isinstance(module, _BatchNorm) else module


def _to_synced(bn: _BatchNorm) -> _BatchNorm:
    if isinstance(bn, CpuSyncBatchNorm):
        return bn
    synced = _rebuild(bn, CpuSyncBatchNorm)
    synced.unsynced_class = type(bn)
    return synced


def _to_unsynced(bn: _BatchNorm) -> _BatchNorm:
    original_class = getattr(bn, "unsynced_class", None)
    return bn if original_class is None else _rebuild(bn, original_class)


def _rebuild(bn: _BatchNorm, cls: type[_BatchNorm]) -> _BatchNorm:
    """A `cls` layer holding `bn`'s own parameters and buffers."""
    new = cls(
        bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats, bias=bn.bias is not None
    )
    new.weight, new.bias = bn.weight, bn.bias
    new.running_mean, new.running_var = bn.running_mean, bn.running_var
    new.num_batches_tracked = bn.num_batches_tracked
    return new.train(bn.training)
