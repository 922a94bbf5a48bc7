"""stl10-prepare: convert your own images, once, into the memory-mapped layout every stage reads.

    stl10-prepare SRC OUT [--size S] [--strict] [--workers N] [--test-fraction F] [--seed N]
    stl10-prepare OUT --from cifar10|cifar100|stl10 --root DIR [--size S] [--unlabeled-fraction F] ...
    (also: python -m stl10_lightning.data.prepare ...)

SRC holds train/<class>/ (labeled images, one folder per class), optionally test/<class>/ (without it, a
stratified, seeded --test-fraction of train becomes the test set) and unlabeled/ (at any depth). Images
are made RGB, resized on the short side to S and centre-cropped. OUT then holds stl10_binary/ (images,
labels, class_names.txt and manifest.json with the counts, side, class names and the per-channel mean
and std of the labeled train images) and skipped.txt (the files that could not be read); train with
`python train.py data.root=OUT`. OUT is written under a temporary name and renamed at the end, so an
interrupted conversion leaves no OUT. --unlabeled-fraction moves a stratified share of the labeled train
images into the unlabeled split, without their labels (CIFAR has no unlabeled images of its own).
"""

import argparse
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from multiprocessing.pool import Pool
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from stl10_lightning.common.errors import OneLineArgumentParser, UserError
from stl10_lightning.common.output_paths import check_new_output
from stl10_lightning.data.image_files import decoded, decoding_pool, most_workers, shown, square
from stl10_lightning.data.prepare_sources import (
    TORCHVISION,
    Source,
    Split,
    each_file_once,
    from_folders,
    from_torchvision,
    move_to_unlabeled,
)
from stl10_lightning.data.stl10_binary import (
    CLASS_NAMES_FILE,
    FOLDER,
    IMAGE_FILES,
    LABEL_FILES,
    PREPARED_FILE,
    PREPARED_FORMAT,
    to_file_order,
)

DEFAULT_SIZE = 96  # STL-10's side, for image folders; a torchvision dataset keeps its own
SIZES = (8, 1024)
SKIPPED_FILE = "skipped.txt"


class ChannelStatistics:
    """Per-channel mean and std of uint8 images in [0, 1], from exact integer sums."""

    def __init__(self):
        self.pixels, self.total, self.squares = 0, np.zeros(3, np.uint64), np.zeros(3, np.uint64)

    def add(self, image: np.ndarray) -> None:
        flat = image.reshape(3, -1)
        self.pixels += flat.shape[1]
        self.total += flat.sum(axis=1, dtype=np.uint64)
        self.squares += (flat.astype(np.uint32) ** 2).sum(axis=1, dtype=np.uint64)

    def mean_std(self) -> tuple[list[float], list[float]]:
        mean = self.total / (self.pixels * 255)
        variance = self.squares / (self.pixels * 255**2) - mean**2
        # A channel that never varies would divide by zero; one grey level's worth keeps it finite.
        std = np.maximum(np.sqrt(np.maximum(variance, 0)), 1 / 255)
        return [round(float(m), 4) for m in mean], [round(float(s), 4) for s in std]


@dataclass(frozen=True)
class Conversion:
    size: int  # the stored side
    pool: Pool | None  # the processes that decode files; None decodes in this process
    strict: bool  # refuse an unreadable file instead of skipping it


def converted(split: Split, conversion: Conversion):
    """(image (3, size, size) or None, why not) for each item of the split, in order."""
    size = conversion.size
    if isinstance(split.items, list):
        yield from decoded(split.items, size, conversion.pool)
        return
    for image in split.items:  # torchvision's, already decoded: only resized when the side differs
        if image.shape[:2] == (size, size):
            yield image.transpose(2, 0, 1), None
        else:
            yield np.asarray(square(Image.fromarray(image), size)).transpose(2, 0, 1), None


def write_split(
    folder: Path,
    name: str,
    split: Split,
    conversion: Conversion,
    skipped: list[tuple[str, str]],
    statistics: ChannelStatistics | None = None,
) -> tuple[int, np.ndarray | None]:
    """Write one split's images (and labels), adding unreadable files to `skipped` and the written images
    to `statistics`; return (count, kept labels)."""
    kept = []
    with (folder / IMAGE_FILES[name]).open("wb") as images:
        progress = tqdm(converted(split, conversion), total=len(split), desc=f"{name:>9}", unit=" images")
        for position, (image, reason) in enumerate(progress):
            if image is None:
                if conversion.strict:
                    raise UserError(
                        f"{split.name(position, name)} cannot be read ({reason}); without --strict it is "
                        f"skipped and listed in {SKIPPED_FILE}"
                    )
                skipped.append((split.name(position, name), reason))
                continue
            images.write(to_file_order(image[None]).tobytes())
            if statistics is not None:
                statistics.add(image)
            kept.append(position)
    labels = None if split.labels is None else split.labels[kept]
    if labels is not None:
        (labels + 1).astype(np.uint8).tofile(folder / LABEL_FILES[name])
    return len(kept), labels


def _check_every_class_kept(labels: np.ndarray, names: list[str]) -> None:
    missing = [name for number, name in enumerate(names) if not (labels == number).any()]
    if missing:
        raise UserError(
            f"no train image of class {missing[0]!r} could be read; replace its files and prepare again"
        )


def _version() -> str:
    try:
        return metadata.version("stl10-lightning")
    except metadata.PackageNotFoundError:
        return "unknown"


def write_layout(source: Source, out: Path, conversion: Conversion) -> dict:
    """OUT/stl10_binary/ and OUT/skipped.txt from `source`; returns the manifest."""
    folder = out / FOLDER
    folder.mkdir(parents=True)
    skipped = list(source.ignored)
    statistics = ChannelStatistics()  # of the labeled train images: what normalization is computed on
    counts = {}
    counts["train"], labels = write_split(
        folder, "train", source.splits["train"], conversion, skipped, statistics
    )
    _check_every_class_kept(labels, source.class_names)
    for name in ("test", "unlabeled"):
        counts[name], _ = write_split(folder, name, source.splits[name], conversion, skipped)
    if not counts["test"]:  # every stage ends by testing: refuse now rather than after training
        raise UserError(
            f"none of the {len(source.splits['test'])} test images could be read ({skipped[-1][1]}); "
            "replace them and prepare again"
        )
    (folder / CLASS_NAMES_FILE).write_text("\n".join(source.class_names) + "\n", encoding="utf-8")
    mean, std = statistics.mean_std()
    manifest = {
        "format": PREPARED_FORMAT,
        "tool": f"stl10-lightning {_version()}",
        "source": source.description,
        "image_size": conversion.size,
        "counts": counts,
        "class_names": source.class_names,
        "mean": mean,
        "std": std,
        "test_split": source.test_split,
        "skipped": len(skipped),
    }
    (folder / PREPARED_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    lines = [f"{shown(path)}\t{why}" for path, why in skipped] + [f"{len(skipped)} skipped"]
    # File names that are not UTF-8 are written back as the bytes they were, so they can be found.
    (out / SKIPPED_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8", errors="surrogateescape")
    return manifest


def prepare(
    out: Path,
    src: Path | None = None,
    size: int | None = None,
    strict: bool = False,
    workers: int = 0,
    dataset: str | None = None,
    root: Path | None = None,
    test_fraction: float = 0.2,
    unlabeled_fraction: float = 0.0,
    seed: int = 0,
) -> dict:
    """Convert `src` (image folders) or torchvision's `dataset` at `root` into `out`; returns the manifest."""
    check_new_output(out, "OUT")  # first: it also refuses a parent this process cannot open
    if out.exists() or out.is_symlink():
        raise UserError(f"{out} already exists; give a new folder, or delete that one first")
    if src is not None and out.resolve().is_relative_to(src.resolve()):
        raise UserError(f"OUT {out} is inside SRC {src}, where it would become images; give a folder outside")
    if size is not None and not SIZES[0] <= size <= SIZES[1]:
        raise UserError(f"--size {size}: give an image side from {SIZES[0]} to {SIZES[1]} pixels")
    source = from_torchvision(dataset, root) if dataset else from_folders(src, test_fraction, seed)
    if unlabeled_fraction:
        move_to_unlabeled(source, unlabeled_fraction, seed)
    if not dataset:  # again, now that the test share and the unlabeled share are taken
        dropped = []
        source.splits = each_file_once(source.splits, source.class_names, dropped)
        source.ignored += [(str(path), why) for path, why in dropped]
    staging = out.with_name(f"{out.name}.partial-{os.getpid()}")
    try:
        with decoding_pool(workers) as pool:
            manifest = write_layout(
                source, staging, Conversion(size or source.side or DEFAULT_SIZE, pool, strict)
            )
        if out.exists():  # made by someone else while this ran
            raise UserError(f"{out} appeared while preparing; nothing was written to it")
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest


def _parser() -> argparse.ArgumentParser:
    parser = OneLineArgumentParser(
        prog="stl10-prepare", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("paths", nargs="+", metavar="[SRC] OUT", help="SRC: image folders (not with --from)")
    parser.add_argument("--size", type=int, help=f"stored image side (default {DEFAULT_SIZE}; --from: own)")
    parser.add_argument("--strict", action="store_true", help="refuse an unreadable file instead of skipping")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="decoding processes (0: none)")
    parser.add_argument("--from", dest="dataset", choices=TORCHVISION, help="a dataset torchvision reads")
    parser.add_argument("--root", type=Path, help="with --from: the folder that holds the download")
    parser.add_argument("--test-fraction", type=float, default=0.2, help="without SRC/test: test share")
    parser.add_argument(
        "--unlabeled-fraction", type=float, default=0.0, help="share of train moved to unlabeled, unlabeled"
    )
    parser.add_argument("--seed", type=int, default=0, help="of the test and unlabeled shares")
    return parser


def _check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[Path | None, Path]:
    wanted = 1 if args.dataset else 2
    if len(args.paths) != wanted:
        parser.error(
            f"give {'OUT with --from' if args.dataset else 'SRC and OUT'}, not {len(args.paths)} paths"
        )
    if bool(args.dataset) != bool(args.root):
        parser.error("--from and --root go together: --from names the dataset, --root where it is")
    if not 0 <= args.workers <= most_workers():
        parser.error(f"--workers {args.workers}: give 0 (decode in this process) to {most_workers()}")
    if not 0 < args.test_fraction < 1 or not 0 <= args.unlabeled_fraction < 1:
        parser.error("--test-fraction must be in (0, 1) and --unlabeled-fraction in [0, 1)")
    if args.seed < 0:
        parser.error(f"--seed {args.seed}: give 0 or more")
    return (None, Path(args.paths[0])) if args.dataset else (Path(args.paths[0]), Path(args.paths[1]))


def main(argv: list[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    src, out = _check_arguments(parser, args)
    started = time.perf_counter()
    try:
        manifest = prepare(
            out, src, args.size, args.strict, args.workers, args.dataset, args.root,
            args.test_fraction, args.unlabeled_fraction, args.seed,
        )  # fmt: skip
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(f"interrupted: {out} was not written", file=sys.stderr)
        sys.exit(130)
    seconds = time.perf_counter() - started
    counts = manifest["counts"]
    images = sum(counts.values())
    print(
        f"prepared {out}: {len(manifest['class_names'])} classes; {counts['train']} train, {counts['test']} "
        f"test, {counts['unlabeled']} unlabeled images at {manifest['image_size']} px in {seconds:.1f} s "
        f"({images / seconds:.0f} images/s); {manifest['skipped']} skipped, listed in {out / SKIPPED_FILE}"
    )
    print(f"train with: python train.py data.root={out}")


if __name__ == "__main__":
    main()
