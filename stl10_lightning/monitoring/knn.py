"""Weighted kNN classification on frozen features (Wu et al., 2018): the usual SSL progress signal.

Hand-written: torchmetrics and torchvision have no kNN classifier, and scikit-learn's would move the
features to the CPU and does not weight votes by exp(similarity / temperature).
"""

import torch
import torch.nn.functional as F


@torch.no_grad()
def knn_predict(
    queries: torch.Tensor,
    bank: torch.Tensor,
    bank_labels: torch.Tensor,
    k: int,
    temperature: float,
    num_classes: int,
    chunk: int = 1024,
) -> torch.Tensor:
    """Class predictions for `queries`: the k most cosine-similar bank entries vote exp(sim / T)."""
    bank = F.normalize(bank.float(), dim=1)
    k = min(k, len(bank))
    predictions = []
    for start in range(0, len(queries), chunk):
        similarity = F.normalize(queries[start : start + chunk].float(), dim=1) @ bank.T
        top_similarity, top_index = similarity.topk(k, dim=1)
        votes = torch.zeros(len(similarity), num_classes, device=similarity.device)
        votes.scatter_add_(1, bank_labels[top_index], (top_similarity / temperature).exp())
        predictions.append(votes.argmax(dim=1))
    return torch.cat(predictions)
