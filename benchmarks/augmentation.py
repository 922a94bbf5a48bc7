"""Throughput of the two Barlow Twins views at 96 px: our batched kornia path against torchvision's PIL path.

    python -m benchmarks.augmentation [--quick]      (from the repository root)

Both read the same synthetic unlabeled split with the same DataLoader settings (WORKERS processes, batches
of BATCH_SIZE, shuffled) and hand over both views of every image, normalized float32:

- ours: the workers only read uint8 batches from the memory map; `BarlowTwinsViews` transforms each whole
  batch in the main process, as it does on the device in training. That device is the GPU when there is
  one; on the CPU, torch's intra-op threads are set to WORKERS, so both sides use the same number of cores.
- baseline: torchvision's `STL10` dataset with the same steps as per-image PIL transforms in the workers,
  as most Barlow Twins and BYOL code does it.

Images/s counts source images (each gives two views), timed over whole batches after a warm-up.
"""

import tempfile
import time
from collections.abc import Callable, Iterator

import numpy as np
import torch
import torchvision.transforms as T
from torch.utils.data import DataLoader
from torchvision.datasets import STL10

from benchmarks.timing import print_rows
from stl10_lightning.data import synthetic
from stl10_lightning.data.memmap_images import MemmapImages, keep_batch
from stl10_lightning.data.ssl_transforms import BarlowTwinsViews, blur_kernel_size, blur_sigma
from stl10_lightning.data.stl10_binary import STL10Binary
from stl10_lightning.data.transforms import STL10_MEAN, STL10_STD

WORKERS = 2
BATCH_SIZE = 128
IMAGE_SIZE = 96


class UncheckedSTL10(STL10):
    """torchvision's STL10 without its md5 check, which synthetic files cannot pass."""

    def _check_integrity(self) -> bool:
        return True


def pil_view(blur_p: float, solarize_p: float) -> T.Compose:
    sigma = blur_sigma(IMAGE_SIZE, (0.1, 2.0))
    return T.Compose(
        [
            T.RandomResizedCrop(IMAGE_SIZE, scale=(0.2, 1.0)),
            T.RandomHorizontalFlip(),
            T.RandomApply([T.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1)], p=0.8),
            T.RandomGrayscale(p=0.2),
            T.RandomApply([T.GaussianBlur(blur_kernel_size(sigma[1]), sigma=sigma)], p=blur_p),
            T.RandomSolarize(threshold=128, p=solarize_p),
            T.ToTensor(),
            T.Normalize(STL10_MEAN, STL10_STD),
        ]
    )


class PILTwoViews:
    def __init__(self):
        self.view1, self.view2 = pil_view(blur_p=1.0, solarize_p=0.0), pil_view(blur_p=0.1, solarize_p=0.2)

    def __call__(self, image):
        return self.view1(image), self.view2(image)


def loader(dataset, **kwargs) -> DataLoader:
    return DataLoader(dataset, BATCH_SIZE, shuffle=True, drop_last=True, num_workers=WORKERS, **kwargs)


def images_per_second(batches: Iterator, step: Callable, warmup: int, timed: int, device: str) -> float:
    """Runs `step` on `warmup` batches (worker start-up), then times the next `timed` ones."""
    for _ in range(warmup):
        step(next(batches))
    start = time.perf_counter()
    for _ in range(timed):
        step(next(batches))
    if device == "cuda":  # kernels are queued; wait for the last one
        torch.cuda.synchronize()
    return timed * BATCH_SIZE / (time.perf_counter() - start)


def ours(root: str, warmup: int, timed: int, device: str) -> float:
    binary = STL10Binary(root)
    dataset = MemmapImages(binary, "unlabeled", np.arange(binary.counts["unlabeled"]))
    views = BarlowTwinsViews(IMAGE_SIZE)
    batches = iter(loader(dataset, collate_fn=keep_batch, pin_memory=device == "cuda"))
    threads = torch.get_num_threads()
    torch.set_num_threads(WORKERS)
    try:
        with torch.no_grad():
            return images_per_second(
                batches, lambda batch: views(batch.to(device, non_blocking=True)), warmup, timed, device
            )
    finally:
        torch.set_num_threads(threads)


def baseline(root: str, warmup: int, timed: int) -> float:
    dataset = UncheckedSTL10(root, split="unlabeled", transform=PILTwoViews())
    return images_per_second(iter(loader(dataset)), lambda batch: batch, warmup, timed, "cpu")


def run(quick: bool = False) -> list[dict]:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    warmup, timed = (1, 3) if quick else (3, 25)
    with tempfile.TemporaryDirectory() as root:
        synthetic.generate(root, train=10, test=0, unlabeled=(warmup + timed) * BATCH_SIZE, seed=0)
        ours_rate, baseline_rate = ours(root, warmup, timed, device), baseline(root, warmup, timed)
    return [
        {
            "benchmark": f"two-view Barlow Twins augmentation, {IMAGE_SIZE} px",
            "ours": ours_rate,
            "baseline": baseline_rate,
            "unit": "images/s",
            "ratio": ours_rate / baseline_rate,
            "goal": ">= 3x",
            "setup": f"ours on {device}, {WORKERS} workers and {WORKERS} torch threads, batch {BATCH_SIZE}",
        }
    ]


if __name__ == "__main__":
    print_rows(run, __doc__, "a few batches, to check that it runs")
