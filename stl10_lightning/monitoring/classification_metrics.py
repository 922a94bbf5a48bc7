"""Accuracy, macro-F1, per-class F1 and the confusion-matrix figure, from torchmetrics."""

import pytorch_lightning as pl
from pytorch_lightning.loggers import TensorBoardLogger
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix, MulticlassF1Score


def classification_metrics(num_classes: int) -> MetricCollection:
    return MetricCollection(
        {
            "acc": MulticlassAccuracy(num_classes, average="micro"),  # torchmetrics defaults to macro
            "f1": MulticlassF1Score(num_classes, average="macro"),
            "class_f1": MulticlassF1Score(num_classes, average=None),
        }
    )


def class_names(module: pl.LightningModule, num_classes: int) -> list[str]:
    names = getattr(module.trainer.datamodule, "class_names", None)
    return list(names) if names else [str(i) for i in range(num_classes)]


def log_classification(module: pl.LightningModule, metrics: MetricCollection, prefix: str) -> None:
    """Log `prefix/acc`, `prefix/f1` and `prefix/class_f1/<class>`, then reset the metrics."""
    values = metrics.compute()
    per_class = values.pop("class_f1")
    names = class_names(module, len(per_class))
    module.log_dict({f"{prefix}/{name}": value for name, value in values.items()})
    module.log_dict(
        {f"{prefix}/class_f1/{name}": value for name, value in zip(names, per_class, strict=True)}
    )
    metrics.reset()


def log_confusion_matrix(module: pl.LightningModule, confusion: MulticlassConfusionMatrix, tag: str) -> None:
    """Add the row-normalised confusion matrix as a figure to every TensorBoard logger, then reset it."""
    loggers = [logger for logger in module.loggers if isinstance(logger, TensorBoardLogger)]
    if loggers:
        import matplotlib.pyplot as plt  # only needed here, at the end of a test run

        figure, axes = plt.subplots(figsize=(10, 9))  # the default size overlaps 10 classes' numbers
        confusion.plot(ax=axes, labels=class_names(module, confusion.num_classes))
        figure.tight_layout()
        for logger in loggers:
            logger.experiment.add_figure(tag, figure, global_step=module.global_step, close=False)
        plt.close(figure)
    confusion.reset()
