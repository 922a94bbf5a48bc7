"""Synthetic STL-10 in the exact binary layout, so the whole project runs offline.

Ten classes of shapes and textures (disk, square, ring, ...) with random grey levels, tint, position,
scale and pixel noise. A small CNN learns them well above chance, but not perfectly in one epoch.

    python -m stl10_lightning.data.synthetic OUT --train 500 --test 500 --unlabeled 1000 --seed 0
"""

import argparse
import json
import os
import shutil
from pathlib import Path

import numpy as np

from stl10_lightning.common.errors import UserError
from stl10_lightning.data.stl10_binary import (
    CLASS_NAMES_FILE,
    FOLDER,
    FOLDS_FILE,
    IMAGE_FILES,
    LABEL_FILES,
    MANIFEST_FILE,
    NUM_CLASSES,
)

SIZE = 96
VERSION = 2  # of the drawing code; a folder drawn by another version is regenerated only by hand
CHUNK = 2000  # images drawn at once; bounds memory for large unlabeled files


def _disk(u, v):
    return np.hypot(u, v) < 1


def _inside(u, v):
    return np.maximum(abs(u), abs(v)) < 1


# One mask function per class, on coordinates normalised to the shape's centre and scale.
SHAPES = {
    "disk": _disk,
    "square": lambda u, v: np.maximum(abs(u), abs(v)) < 0.8,
    "triangle": lambda u, v: (v < 0.8) & (abs(u) < (v + 1) / 2),  # apex up
    "ring": lambda u, v: _disk(u, v) & ~_disk(u / 0.6, v / 0.6),
    "plus": lambda u, v: ((abs(u) < 0.3) | (abs(v) < 0.3)) & _inside(u, v),
    "diamond": lambda u, v: abs(u) + abs(v) < 1,
    "hstripes": lambda u, v: (np.sin(v * 3 * np.pi) > 0) & _inside(u, v),
    "vstripes": lambda u, v: (np.sin(u * 3 * np.pi) > 0) & _inside(u, v),
    "checker": lambda u, v: ((np.floor(u * 2) + np.floor(v * 2)) % 2 == 0) & _inside(u, v),
    "x": lambda u, v: ((abs(u - v) < 0.3) | (abs(u + v) < 0.3)) & _inside(u, v),
}
CLASS_NAMES = list(SHAPES)


def draw(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Upright images (N, 3, 96, 96) uint8 for the given 0-based labels."""
    n = len(labels)
    ys, xs = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    centre = rng.uniform(30, 66, size=(n, 2, 1, 1)).astype(np.float32)
    scale = rng.uniform(14, 30, size=(n, 1, 1)).astype(np.float32)
    u = (xs - centre[:, 0]) / scale
    v = (ys - centre[:, 1]) / scale
    mask = np.zeros((n, SIZE, SIZE), dtype=bool)
    for cls, shape in enumerate(SHAPES.values()):
        rows = labels == cls
        mask[rows] = shape(u[rows], v[rows])
    # Grey levels with a faint per-image tint. Saturated random colours would let a self-supervised
    # model tell images apart by colour alone (colour jitter keeps hue within a tenth of the circle),
    # and Barlow Twins then learns colour instead of shape: kNN accuracy stayed at chance for 400 steps.
    background = rng.uniform(0, 1, size=(n, 1, 1, 1)).astype(np.float32)
    foreground = (background + rng.uniform(0.3, 0.7, size=(n, 1, 1, 1)).astype(np.float32)) % 1  # contrast
    tint = rng.uniform(0.8, 1.0, size=(n, 3, 1, 1)).astype(np.float32)
    background, foreground = background * tint, foreground * tint
    images = np.where(mask[:, None], foreground, background)
    images += 0.12 * rng.standard_normal(size=images.shape, dtype=np.float32)
    return (np.clip(images, 0, 1) * 255).astype(np.uint8)


def _write_images(path: Path, labels: np.ndarray, rng: np.random.Generator) -> None:
    with path.open("wb") as f:
        for start in range(0, len(labels), CHUNK):
            upright = draw(labels[start : start + CHUNK], rng)
            f.write(np.ascontiguousarray(upright.transpose(0, 1, 3, 2)).tobytes())  # column-major on disk


def _balanced_labels(n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.permutation(np.arange(n) % NUM_CLASSES)


def _write_folder(folder: Path, counts: dict[str, int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for split, count in counts.items():
        labels = _balanced_labels(count, rng)
        _write_images(folder / IMAGE_FILES[split], labels, rng)
        if split in LABEL_FILES:
            (labels + 1).astype(np.uint8).tofile(folder / LABEL_FILES[split])
    (folder / CLASS_NAMES_FILE).write_text("\n".join(CLASS_NAMES) + "\n")
    fold_size = counts["train"] // 5  # the official file has 10 folds of 1,000 of the 5,000 train images
    folds = [" ".join(map(str, rng.choice(counts["train"], fold_size, replace=False))) for _ in range(10)]
    (folder / FOLDS_FILE).write_text("\n".join(folds) + "\n")
    manifest = {"counts": counts, "seed": seed, "version": VERSION}
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")


def generate(
    root: str | Path, train: int = 500, test: int = 500, unlabeled: int = 1000, seed: int = 0
) -> Path:
    """Write `root/stl10_binary/`, which must not exist yet, and return it.

    Unlabeled images are drawn from the same ten classes. The folder is written under a temporary name
    and renamed into place, so an interrupted generation leaves nothing that looks complete.
    """
    if train < 10 or test < 0 or unlabeled < 0:
        raise UserError(
            f"cannot generate {train} train, {test} test, {unlabeled} unlabeled images: need 10+ train"
        )
    if Path(root).exists() and not Path(root).is_dir():
        raise UserError(f"{root} is a file, not a folder; give a folder to hold {FOLDER}/ (new or existing)")
    folder = Path(root) / FOLDER
    if folder.exists():
        raise UserError(f"{folder} already exists; delete it or generate into another folder")
    staging = Path(root) / f".{FOLDER}.{os.getpid()}.tmp"
    try:
        _write_folder(staging, {"train": train, "test": test, "unlabeled": unlabeled}, seed)
        staging.rename(folder)
    except OSError as err:
        if folder.exists():  # another process renamed its folder into place first
            raise UserError(f"{folder} already exists; delete it or generate into another folder") from err
        raise UserError(
            f"cannot write {folder} ({err.strerror or err}); generate into a folder you can write to, with "
            "room for the images"
        ) from err
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def ensure(root: str | Path, train: int, test: int, unlabeled: int, seed: int = 0) -> Path:
    """Generate `root/stl10_binary/` on first use; reuse it when it was made with the same settings.

    A folder that is not ours (a real download) is never touched.
    """
    folder = Path(root) / FOLDER
    if not folder.exists():
        try:
            generate(root, train, test, unlabeled, seed)
        except UserError:
            if not folder.exists():  # bad counts; a concurrent generation is checked below
                raise
    manifest = folder / MANIFEST_FILE
    if not manifest.exists():
        raise UserError(f"{folder} exists but is not a synthetic dataset; point data.root at another folder")
    found = json.loads(manifest.read_text())
    wanted = {
        "counts": {"train": train, "test": test, "unlabeled": unlabeled},
        "seed": seed,
        "version": VERSION,
    }
    if found != wanted:
        raise UserError(
            f"{folder} was generated with {found}, not {wanted}; delete it or point data.root elsewhere"
        )
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", help="folder that will contain stl10_binary/ (use it as data.root)")
    parser.add_argument("--train", type=int, default=500)
    parser.add_argument("--test", type=int, default=500)
    parser.add_argument("--unlabeled", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    try:
        folder = generate(args.out, args.train, args.test, args.unlabeled, args.seed)
    except UserError as err:
        parser.exit(2, f"error: {err}\n")
    print(f"wrote synthetic STL-10 to {folder}")


if __name__ == "__main__":
    main()
