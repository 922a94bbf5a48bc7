"""FixMatch's unlabeled loss (Sohn et al. 2020, eq. 4): cross-entropy on confident pseudo-labels.

The pseudo-label is the argmax of the weakly augmented view's prediction, kept only where that
prediction's confidence is at least `threshold`; the strongly augmented view is trained towards it:

    l_u = 1 / (mu B) * sum_b 1[max q_b >= threshold] * CE(argmax q_b, p(y | strong(u_b)))

The sum is divided by the number of unlabeled images, not by the number kept, as in the paper: early
in training few pass the threshold and the unlabeled term stays small.
"""

from typing import NamedTuple

import torch
import torch.nn.functional as F


class ConsistencyLoss(NamedTuple):
    loss: torch.Tensor  # scalar, differentiable through strong_logits only
    mask: torch.Tensor  # bool (N,): the samples whose weak prediction reached the threshold
    pseudo_labels: torch.Tensor  # (N,) argmax of the weak view, kept or not
    confidence: torch.Tensor  # (N,) max softmax probability of the weak view


def consistency_loss(
    weak_logits: torch.Tensor, strong_logits: torch.Tensor, threshold: float | torch.Tensor
) -> ConsistencyLoss:
    """FixMatch's masked cross-entropy, in float32 under autocast; no gradient reaches `weak_logits`."""
    return masked_consistency(weak_logits.detach().float().softmax(dim=1), strong_logits, threshold)


def masked_consistency(
    weak_probabilities: torch.Tensor, strong_logits: torch.Tensor, threshold: float | torch.Tensor
) -> ConsistencyLoss:
    """The same from the weak view's (possibly aligned) probabilities; `threshold` is one number or one
    per class, applied to each image's pseudo-label class."""
    confidence, pseudo_labels = weak_probabilities.detach().max(dim=1)
    mask = passes(confidence, pseudo_labels, threshold)
    per_sample = F.cross_entropy(strong_logits.float(), pseudo_labels, reduction="none")
    return ConsistencyLoss((per_sample * mask).mean(), mask, pseudo_labels, confidence)


def passes(confidence: torch.Tensor, labels: torch.Tensor, threshold: float | torch.Tensor) -> torch.Tensor:
    """Which confidences reach the threshold: one number, or one per class read at each label."""
    return confidence >= (threshold[labels] if isinstance(threshold, torch.Tensor) else threshold)
