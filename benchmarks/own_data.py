"""Your own images: preparing a folder of JPEGs, reading the prepared folder, and predicting.

    python -m benchmarks.own_data [--quick]      (from the repository root)

The JPEGs are written once into benchmarks/.cache/: synthetic shapes of 10 classes at 400x300, noisy, at
quality 90, in SRC/train/<class>/ (the test share is carved out).

- preparation: `stl10-prepare`'s whole conversion (decode, RGB, short-side resize to 96 px and centre
  crop, write, statistics) with one worker process per core, against a plain loop in this process that
  only decodes and resizes the same files with PIL (nothing written). Wall-clock images/s, since the
  workers' CPU time is not this process's; the ratio is the parallel speed-up, less what writing costs.
- reading: passes of the data module's shuffled train loader over the prepared folder against a
  synthetic STL-10 folder with the same counts and side: the same reader, so the ratio should be ~1.
- prediction: `predict.class_probabilities` on each batch (what `stl10-predict` runs once its images are
  decoded) against a plain `torch.inference_mode()` loop over the same uint8 batches, with the same
  TinyNet classifier at 32 px; images per CPU-second on one torch thread (see benchmarks/timing.py).
"""

import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from benchmarks.cached_data import CACHE, synthetic_root
from benchmarks.timing import alternate, cpu_seconds, one_thread, print_rows, ratio_row
from stl10_lightning.data import STL10DataModule, synthetic
from stl10_lightning.data.image_files import image_files, square, to_rgb
from stl10_lightning.data.prepare import prepare
from stl10_lightning.data.stl10_binary import STL10Binary, to_upright
from stl10_lightning.predict import class_probabilities
from stl10_lightning.stages.teacher import Classifier

PHOTO = (400, 300)
SIDE = 96
BATCH_SIZE = 256
BACKBONE = {"_target_": "stl10_lightning.models.TinyNet", "width": 32}


def jpeg_folder(count: int) -> Path:
    """SRC/train/<class>/ with `count` JPEGs, written once."""
    src = CACHE / f"jpegs_{count}"
    if (src / "train").is_dir():
        return src
    print(f"writing {count} JPEGs into {src} (once)", flush=True)
    rng = np.random.default_rng(0)
    labels = np.arange(count) % 10
    staging = CACHE / f".jpegs_{count}.{os.getpid()}"
    for start in range(0, count, 500):
        for number, image in enumerate(synthetic.draw(labels[start : start + 500], rng), start):
            photo = Image.fromarray(image.transpose(1, 2, 0)).resize(PHOTO, Image.Resampling.BICUBIC)
            noisy = np.asarray(photo, dtype=np.int16) + rng.integers(-12, 13, size=(*PHOTO[::-1], 3))
            folder = staging / "train" / synthetic.CLASS_NAMES[labels[number]]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(
                folder / f"{number:05d}.jpg", quality=90
            )
    staging.rename(src)
    return src


def plain_decode(files: list[Path]) -> int:
    for path in files:
        with Image.open(path) as image:
            square(to_rgb(image), SIDE)
    return len(files)


def preparation(src: Path, scratch: Path, rounds: int) -> tuple[dict, Path]:
    """The row, and the first round's prepared folder (under `scratch`)."""
    files = image_files(src / "train")
    ours, baseline = [], []
    for number in range(rounds):
        start = time.perf_counter()
        prepare(scratch / f"prepared_{number}", src, size=SIDE, workers=os.cpu_count())
        ours.append(len(files) / (time.perf_counter() - start))
        start = time.perf_counter()
        baseline.append(plain_decode(files) / (time.perf_counter() - start))
    row = ratio_row(
        benchmark="stl10-prepare, JPEG folder -> prepared layout",
        ours=ours,
        baseline=baseline,
        unit="images/s",
        goal="info",
        setup=f"{len(files):,} JPEGs of {PHOTO[0]}x{PHOTO[1]} to {SIDE} px; ours {os.cpu_count()} worker "
        f"processes, JPEG draft decoding, writing; baseline: PIL open, RGB and resize in one plain loop, "
        f"nothing written; medians of {rounds} rounds",
    )
    return row, scratch / "prepared_0"


PASSES = 10  # one pass over a few thousand images takes tens of milliseconds: too short to time alone


def read_passes(root: Path) -> float:
    data = STL10DataModule(str(root), val_size=100, batch_size=128, num_workers=0)
    data.setup("fit")
    loader = data.train_dataloader()
    start, images = cpu_seconds(), 0
    for _ in range(PASSES):
        for batch, _ in loader:
            images += len(batch)
    return images / (cpu_seconds() - start)


def reading(prepared: Path, rounds: int) -> dict:
    counts = STL10Binary(prepared).counts
    stl10 = synthetic_root(counts["unlabeled"], counts["train"], counts["test"])
    with one_thread():
        read_passes(prepared), read_passes(stl10)  # warm the page cache
        ours, baseline = alternate(lambda: read_passes(prepared), lambda: read_passes(stl10), rounds)
    return ratio_row(
        benchmark="reading a prepared folder vs the STL-10 layout",
        ours=ours,
        baseline=baseline,
        unit="images/CPU-s",
        goal=">= 0.9x",
        setup=f"{PASSES} shuffled passes of the train loader (batch 128, in-process) over "
        f"{counts['train']:,} images at {SIDE} px on each side, 1 thread; medians of {rounds} rounds",
    )


@torch.inference_mode()
def plain_loop(model: torch.nn.Module, batches: list[torch.Tensor]) -> int:
    for images in batches:
        model(images).softmax(dim=1)
    return sum(len(images) for images in batches)


def ours_loop(model: torch.nn.Module, batches: list[torch.Tensor]) -> int:
    for images in batches:
        class_probabilities(model, images, torch.device("cpu"))
    return sum(len(images) for images in batches)


def images_per_second(loop, model, batches) -> float:
    start = cpu_seconds()
    images = loop(model, batches)
    return images / (cpu_seconds() - start)


def prediction(prepared: Path, rounds: int) -> dict:
    images = torch.from_numpy(to_upright(STL10Binary(prepared).images("train")[:]))
    batches = list(images.split(BATCH_SIZE))
    torch.manual_seed(0)
    model = Classifier(BACKBONE, num_classes=10, image_size=32).eval()
    with one_thread():
        plain_loop(model, batches)  # warm-up
        ours, baseline = alternate(
            lambda: images_per_second(ours_loop, model, batches),
            lambda: images_per_second(plain_loop, model, batches),
            rounds,
        )
    return ratio_row(
        benchmark="stl10-predict's batches vs inference_mode loop",
        ours=ours,
        baseline=baseline,
        unit="images/CPU-s",
        goal=">= 0.95x",
        setup=f"TinyNet classifier at 32 px on {len(images):,} prepared {SIDE} px images, batch "
        f"{BATCH_SIZE}, CPU, 1 thread; medians of {rounds} alternating rounds",
    )


def run(quick: bool = False) -> list[dict]:
    count, rounds = (300, 1) if quick else (2000, 3)
    src = jpeg_folder(count)
    with tempfile.TemporaryDirectory(dir=CACHE) as scratch:
        preparing, prepared = preparation(src, Path(scratch), 1 if quick else 2)
        return [preparing, reading(prepared, rounds), prediction(prepared, rounds)]


if __name__ == "__main__":
    print_rows(run, __doc__, "fewer JPEGs and rounds, to check that it runs")
