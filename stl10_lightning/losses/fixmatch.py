"""FixMatch's unlabeled loss (Sohn et al. 2020, eq. 4): cross-entropy on confident pseudo-labels.

The pseudo-label is the argmax of the weakly augmented view's prediction, kept only where that
prediction's confidence is at least `threshold`; the strongly augmented view is trained towards it:

    l_u = 1 / (mu B) * sum_b 1[max q_b >= threshold] * CE(argmax q_b, p(y | strong(u_b)))

The sum is divided by the number of unlabeled images, not by the number kept, as in the paper: early
in training few pass the threshold and the unlabeled term stays small.

Internally a prediction passes when its doubt, the probability of every class but its top one, is at
most 1 - threshold. That is the same test, but doubt keeps confident predictions apart where the top
probability has rounded to 1.0 in float32 (class-balanced selection ranks them, pseudo_label_guards.py).
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
    return masked_consistency(weak_logits.detach().float().softmax(dim=1), strong_logits, 1 - threshold)


def masked_consistency(
    weak_probabilities: torch.Tensor, strong_logits: torch.Tensor, most_doubt: float | torch.Tensor
) -> ConsistencyLoss:
    """The same from the weak view's (possibly aligned) probabilities, keeping each image whose doubt is at
    most `most_doubt` (1 - threshold): one number, or one per class applied to each image's pseudo-label
    class."""
    confidence, pseudo_labels = weak_probabilities.detach().max(dim=1)
    mask = passes(doubt(weak_probabilities.detach(), pseudo_labels), pseudo_labels, most_doubt)
    per_sample = F.cross_entropy(strong_logits.float(), pseudo_labels, reduction="none")
    return ConsistencyLoss((per_sample * mask).mean(), mask, pseudo_labels, confidence)


def doubt(probabilities: torch.Tensor, top: torch.Tensor) -> torch.Tensor:
    """Each row's probability outside its `top` class, summed over the other classes rather than taken as
    1 - max, which is 0 for every row whose top probability rounds to 1.0."""
    return probabilities.scatter(1, top[:, None], 0.0).sum(dim=1)


def passes(doubts: torch.Tensor, labels: torch.Tensor, most_doubt: float | torch.Tensor) -> torch.Tensor:
    """Which doubts are at most the bar: one number, or one per class read at each label."""
    return doubts <= (most_doubt[labels] if isinstance(most_doubt, torch.Tensor) else most_doubt)
