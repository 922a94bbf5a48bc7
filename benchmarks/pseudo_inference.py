"""Pseudo-label inference: `stages.teacher.predict` against a plain `torch.inference_mode()` loop.

    python -m benchmarks.pseudo_inference [--quick]      (from the repository root)

Both sides label the same unlabeled images with the same teacher (a TinyNet classifier that resizes to
32 px and normalizes, as `load_teacher` builds it) from the same loader: the data module's unlabeled
loader, batches of 512 read in the main process. `predict` gets the forward context of Lightning's
32-true precision, as the pseudo-label stage passes it on this CPU.

Images/s counts images per CPU-second of this process on one torch thread (see benchmarks/timing.py),
in alternating rounds after one untimed pass; the table shows each side's median and the median of
the per-round ratios. Both must predict the same classes.
"""

import numpy as np
import torch
from pytorch_lightning.plugins import Precision
from torch import nn
from torch.utils.data import DataLoader

from benchmarks.cached_data import synthetic_root
from benchmarks.timing import alternate, cpu_seconds, one_thread, print_rows, ratio_row
from stl10_lightning.data import STL10DataModule
from stl10_lightning.stages.teacher import Classifier, predict

IMAGE_SIZE = 32
BATCH_SIZE = 512
BACKBONE = {"_target_": "stl10_lightning.models.TinyNet", "width": 32}


@torch.inference_mode()
def plain_predict(model: nn.Module, loader: DataLoader) -> tuple[np.ndarray, np.ndarray]:
    model.eval()
    confidences, predictions = [], []
    for images in loader:
        confidence, prediction = model(images).softmax(dim=1).max(dim=1)
        confidences.append(confidence)
        predictions.append(prediction)
    return torch.cat(confidences).numpy(), torch.cat(predictions).numpy()


def ours_predict(model: nn.Module, loader: DataLoader) -> tuple[np.ndarray, np.ndarray]:
    confidence, prediction, _ = predict(model, loader, torch.device("cpu"), Precision().forward_context)
    return confidence, prediction


def images_per_second(label, model: nn.Module, loader: DataLoader) -> float:
    start = cpu_seconds()
    _, prediction = label(model, loader)
    return len(prediction) / (cpu_seconds() - start)


def run(quick: bool = False) -> list[dict]:
    images, rounds = (1024, 1) if quick else (3072, 5)
    data = STL10DataModule(
        str(synthetic_root(20_000)), unlabeled_count=images, eval_batch_size=BATCH_SIZE, num_workers=0
    )
    loader = data.unlabeled_dataloader()
    torch.manual_seed(0)
    model = Classifier(BACKBONE, num_classes=10, image_size=IMAGE_SIZE).eval()
    with one_thread():
        _, expected = plain_predict(model, loader)  # warm-up; also the classes both must give
        if not np.array_equal(ours_predict(model, loader)[1], expected):
            raise AssertionError("predict() and the plain loop disagree on the predicted classes")
        ours, baseline = alternate(
            lambda: images_per_second(ours_predict, model, loader),
            lambda: images_per_second(plain_predict, model, loader),
            rounds,
        )
    return [
        ratio_row(
            benchmark="pseudo-label inference, predict() vs inference_mode loop",
            ours=ours,
            baseline=baseline,
            unit="images/CPU-s",
            goal=">= 0.95x",
            setup=f"TinyNet teacher at {IMAGE_SIZE} px, {images:,} unlabeled images, batch {BATCH_SIZE}, "
            f"CPU, 1 thread; medians of {rounds} alternating rounds",
        )
    ]


if __name__ == "__main__":
    print_rows(run, __doc__, "fewer images, to check that it runs")
