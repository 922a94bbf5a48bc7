import torch

from stl10_lightning.monitoring.classification_metrics import classification_metrics


def macro_f1_from_confusion(preds: torch.Tensor, target: torch.Tensor, num_classes: int) -> float:
    """sklearn's definition: per-class F1 from the confusion matrix, averaged with equal weights."""
    confusion = torch.zeros(num_classes, num_classes)
    for t, p in zip(target, preds, strict=True):
        confusion[t, p] += 1
    scores = []
    for c in range(num_classes):
        tp = confusion[c, c]
        fp = confusion[:, c].sum() - tp
        fn = confusion[c, :].sum() - tp
        scores.append(0.0 if tp == 0 else float(2 * tp / (2 * tp + fp + fn)))
    return sum(scores) / num_classes


def test_accuracy_and_macro_f1_match_independent_definitions():
    generator = torch.Generator().manual_seed(0)
    target = torch.randint(0, 10, (500,), generator=generator)
    logits = torch.randn(500, 10, generator=generator)
    logits[torch.arange(250), target[:250]] += 3  # half the samples mostly right, classes imbalanced errors
    metrics = classification_metrics(10)
    for start in range(0, 500, 128):  # accumulated over batches, as in an epoch
        metrics.update(logits[start : start + 128], target[start : start + 128])
    values = metrics.compute()
    preds = logits.argmax(1)
    assert torch.isclose(values["acc"], (preds == target).float().mean())
    assert abs(values["f1"].item() - macro_f1_from_confusion(preds, target, 10)) < 1e-6
    assert torch.isclose(values["class_f1"].mean(), values["f1"])
