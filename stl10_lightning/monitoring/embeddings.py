"""Val embeddings in TensorBoard: a PCA scatter image and the projector with image thumbnails."""

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import TensorBoardLogger

from stl10_lightning.monitoring.classification_metrics import class_names


def log_embeddings(
    module: pl.LightningModule,
    features: torch.Tensor,
    labels: torch.Tensor,
    thumbnails: torch.Tensor,
    tag: str,
) -> None:
    """`thumbnails` are float images in [0, 1], one per feature row."""
    loggers = [logger for logger in module.loggers if isinstance(logger, TensorBoardLogger)]
    if not loggers or len(features) < 3:
        return
    import matplotlib.pyplot as plt  # only needed on the epochs that log embeddings

    features, labels = features.float().cpu(), labels.cpu()
    names = class_names(module, int(labels.max()) + 1)
    centred = features - features.mean(dim=0)
    _, _, components = torch.pca_lowrank(centred, q=2, center=False)
    points = centred @ components
    figure, axes = plt.subplots(figsize=(7, 6))
    for number, name in enumerate(names):
        chosen = labels == number
        axes.scatter(points[chosen, 0], points[chosen, 1], s=6, label=name, color=plt.cm.tab10(number % 10))
    axes.set(title=f"val features, PCA (epoch {module.current_epoch})", xlabel="PC 1", ylabel="PC 2")
    axes.legend(markerscale=3, fontsize=8, loc="best")
    figure.tight_layout()
    for logger in loggers:
        logger.experiment.add_figure(f"{tag}/pca", figure, global_step=module.global_step, close=False)
        logger.experiment.add_embedding(
            features,
            metadata=[names[i] for i in labels.tolist()],
            label_img=thumbnails.float().cpu(),
            global_step=module.global_step,
            tag=tag,
        )
    plt.close(figure)
