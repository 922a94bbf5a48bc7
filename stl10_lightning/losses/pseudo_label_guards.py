"""Guards against confirmation bias in online pseudo-labeling, as options of `pseudo=online`.

A model that grows confident on one class labels more and more unlabeled images as that class and trains
on its own mistakes. Three guards, each a running statistic of the weak view's predictions:

- DistributionAlignment (ReMixMatch, Berthelot et al. 2020): each weak prediction q is scaled by
  target / p_model and renormalized, where p_model is the running mean of q and target the labeled
  images' class frequencies. A class the model over-predicts is scaled down until the pseudo-labels
  follow the labeled distribution again.
- SelfAdaptiveThreshold (FreeMatch, Wang et al. 2023): class c's threshold is
  tau * p(c) / max_k p(k), where tau is the running mean of the top confidence and p the running mean
  of q. Classes the model rarely predicts get a lower bar; capped at `pseudo.threshold`.
- ClassBalancedSelection (class-balanced selection as in CBST, Zou et al. 2018, online): over the last
  `window` predictions, the share r at or above `threshold` is measured, and each class passes its own
  most confident r of the predictions of that class, but no more than its labeled frequency's share of
  all that pass. An easy class can no longer pass first alone: its bar rises above `threshold` and the
  others' fall; an over-predicted class is capped at its share.

Hand-written: neither torchmetrics nor the other libraries of the stack have them, and each is a few
tensor operations. The running statistics are buffers: checkpointed, resumed, and fed every process's
predictions under DDP so that each process keeps the same values.
"""

import torch
import torch.distributed as dist
from torch import Tensor, nn

from stl10_lightning.common.distributed import world_size
from stl10_lightning.losses.fixmatch import doubt


def mean_over_processes(batch_mean: Tensor) -> Tensor:
    """The batch mean averaged over every process (each holds an equal share of the batch)."""
    if world_size() == 1:
        return batch_mean
    summed = batch_mean.clone()
    dist.all_reduce(summed)
    return summed / world_size()


def gathered_over_processes(batch: Tensor) -> Tensor:
    """Every process's `batch`, concatenated in rank order (each holds an equal share of the batch)."""
    if world_size() == 1:
        return batch
    gathered = [torch.empty_like(batch) for _ in range(world_size())]
    dist.all_gather(gathered, batch.contiguous())
    return torch.cat(gathered)


class DistributionAlignment(nn.Module):
    """q -> normalize(q * target / p_model); call `update` with each batch's predictions first."""

    def __init__(self, num_classes: int, momentum: float):
        super().__init__()
        self.momentum = momentum
        uniform = torch.full((num_classes,), 1.0 / num_classes)
        self.register_buffer("target", uniform.clone())
        self.register_buffer("model_mean", uniform.clone())

    def set_target(self, labels: Tensor) -> None:
        """The labeled images' class frequencies (labels 0..C-1); a class with no image keeps a tiny share."""
        counts = torch.bincount(labels.flatten(), minlength=len(self.target)).float().clamp_min(1e-3)
        self.target.copy_(counts / counts.sum())

    @torch.no_grad()
    def update(self, probabilities: Tensor) -> None:
        batch_mean = mean_over_processes(probabilities.float().mean(dim=0))
        self.model_mean.lerp_(batch_mean, 1 - self.momentum)

    def forward(self, probabilities: Tensor) -> Tensor:
        aligned = probabilities * (self.target / self.model_mean.clamp_min(1e-6))
        return aligned / aligned.sum(dim=1, keepdim=True)


class SelfAdaptiveThreshold(nn.Module):
    """Per-class thresholds tau * p(c) / max p, at most `ceiling`; call `update` with each batch first."""

    def __init__(self, num_classes: int, momentum: float, ceiling: float):
        super().__init__()
        self.momentum, self.ceiling = momentum, ceiling
        # FreeMatch starts both at 1/C: early on the bar is low and most confident guesses are used.
        self.register_buffer("mean_confidence", torch.tensor(1.0 / num_classes))
        self.register_buffer("class_mean", torch.full((num_classes,), 1.0 / num_classes))

    @torch.no_grad()
    def update(self, probabilities: Tensor) -> None:
        probabilities = probabilities.float()
        statistics = torch.cat([probabilities.max(dim=1).values.mean()[None], probabilities.mean(dim=0)])
        statistics = mean_over_processes(statistics)
        self.mean_confidence.lerp_(statistics[0], 1 - self.momentum)
        self.class_mean.lerp_(statistics[1:], 1 - self.momentum)

    def thresholds(self) -> Tensor:
        per_class = self.mean_confidence * self.class_mean / self.class_mean.max()
        return per_class.clamp_max(self.ceiling)


class ClassBalancedSelection(nn.Module):
    """Per-class bars that pass each class's top r of its recent predictions, r being the share of all
    recent predictions at or above `threshold`, and at most the class's `target` share of all passes;
    call `update` with each batch first.

    Predictions are ranked by doubt (fixmatch.doubt), not by the top probability: a model sure of one
    class gives many of them a top probability of exactly 1.0 in float32, and a bar of 1.0 would pass
    them all, past the cap."""

    def __init__(self, num_classes: int, threshold: float, window: int):
        super().__init__()
        self.num_classes, self.threshold = num_classes, threshold
        self.register_buffer("target", torch.full((num_classes,), 1.0 / num_classes))
        self.register_buffer("doubt", torch.zeros(window))
        self.register_buffer("labels", torch.full((window,), -1))  # -1: a slot not filled yet
        self.register_buffer("next_slot", torch.tensor(0))

    def set_target(self, labels: Tensor) -> None:
        """The labeled images' class frequencies (labels 0..C-1): each class's most of the passes."""
        self.target.copy_(torch.bincount(labels.flatten(), minlength=self.num_classes) / labels.numel())

    @torch.no_grad()
    def update(self, probabilities: Tensor) -> None:
        probabilities = gathered_over_processes(probabilities.float())
        labels = probabilities.max(dim=1).indices  # the pseudo-labels, as masked_consistency takes them
        doubts = doubt(probabilities, labels)
        window = len(self.labels)
        doubts, labels = doubts[-window:], labels[-window:]
        slots = (self.next_slot + torch.arange(len(labels), device=labels.device)) % window
        self.doubt[slots], self.labels[slots] = doubts, labels
        self.next_slot.copy_((self.next_slot + len(labels)) % window)

    def most_doubt(self) -> Tensor:
        """One bar per class, the most doubt that passes: its k-th lowest recent doubt, k = round(r x its
        recent predictions), at most round(target x all that pass); below 0 (nothing passes) for a class
        with k = 0. No value leaves the device: no step waits on it."""
        filled = self.labels >= 0
        passing = ((self.doubt <= 1 - self.threshold) & filled).sum()
        share = passing / filled.sum().clamp_min(1)
        classes = torch.arange(self.num_classes, device=self.labels.device)
        mine = self.labels[None, :] == classes[:, None]  # (classes, window)
        ranked = torch.where(mine, self.doubt, 2.0).sort(dim=1).values
        kept = torch.minimum((share * mine.sum(dim=1)).round(), (self.target * passing).round()).long()
        kth = ranked.gather(1, (kept - 1).clamp_min(0)[:, None])[:, 0]
        return torch.where(kept > 0, kth, torch.full_like(kth, -1.0))
