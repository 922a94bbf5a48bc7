"""Features of a frozen backbone over a whole loader: the kNN bank and the linear probe's cache."""

import torch
from torch import nn
from torch.utils.data import DataLoader


@torch.no_grad()
def frozen_features(
    backbone: nn.Module, transform: nn.Module, loader: DataLoader, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """(features, labels) on `device`, in the loader's order, with the backbone in eval mode (BatchNorm
    uses its running statistics and does not update them); its train/eval mode is restored after."""
    was_training = backbone.training
    backbone.eval()
    features, labels = [], []
    for images, batch_labels in loader:
        features.append(backbone(transform(images.to(device))).float())
        labels.append(batch_labels.to(device))
    backbone.train(was_training)
    return torch.cat(features), torch.cat(labels)
