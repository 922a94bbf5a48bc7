"""What stl10-prepare converts: a tree of image folders, or a dataset torchvision reads from a local root.

SRC/train/<class>/...      labeled images, one folder per class (the folder name is the class name)
SRC/test/<class>/...       optional; without it a stratified, seeded share of train becomes the test set
SRC/unlabeled/...          optional, at any depth
"""

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from stl10_lightning.common.errors import UserError
from stl10_lightning.data.image_files import image_files
from stl10_lightning.data.splits import stratified_split

MAX_CLASSES = 255  # labels are stored as one byte, 1-based
TORCHVISION = ("cifar10", "cifar100", "stl10")


@dataclass
class Split:
    """File paths to decode, or (N, H, W, 3) uint8 images torchvision already decoded, with 0-based labels
    (None: unlabeled)."""

    items: list[str] | np.ndarray
    labels: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.items)

    def take(self, positions: np.ndarray, keep_labels: bool = True) -> "Split":
        items = (
            self.items[positions]
            if isinstance(self.items, np.ndarray)
            else [self.items[i] for i in positions]
        )
        labels = self.labels[positions] if keep_labels and self.labels is not None else None
        return Split(items, labels)

    def name(self, position: int, split: str) -> str:
        """How skipped.txt and error messages name one image."""
        return self.items[position] if isinstance(self.items, list) else f"{split}[{position}]"


@dataclass
class Source:
    description: str  # the manifest's "source"
    class_names: list[str]
    splits: dict[str, Split]  # train, test, unlabeled
    test_split: str  # how the test split was made, for the manifest
    side: int | None = None  # a torchvision dataset's own side: the default --size
    ignored: list[tuple[str, str]] = field(default_factory=list)  # (path, why) of what was not read


def _class_folders(folder: Path) -> list[str]:
    names = sorted(path.name for path in folder.iterdir() if path.is_dir() and not path.name.startswith("."))
    for name in names:
        if not name.isprintable() or not _is_utf8(name):
            raise UserError(
                f"{str(folder / name)!r}: a class name becomes a line of class_names.txt, a TensorBoard tag "
                "and a CSV value, so it must be printable UTF-8; rename the folder"
            )
    return names


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")  # a file name that was not UTF-8 holds surrogates, which do not encode
    except UnicodeEncodeError:
        return False
    return True


def _labeled(folder: Path, names: list[str], index: dict[str, int], dropped: list) -> Split:
    files, labels = [], []
    for name in names:
        found = image_files(folder / name, dropped)
        if not found:
            raise UserError(f"{folder / name} is an empty class folder; add its images or remove the folder")
        files += [str(path) for path in found]
        labels += [index[name]] * len(found)
    return Split(files, np.array(labels, dtype=np.int64))


def _stratified_share(
    train: Split, option: str, fraction: float, seed: int, names: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """(kept, taken) positions: a stratified, seeded `fraction` of `train` taken for `option`, refused
    unless both parts keep at least one image and every class keeps a train image."""
    count = round(fraction * len(train))
    if not 1 <= count < len(train):
        raise UserError(
            f"{option} {fraction:g} of {len(train)} labeled images takes {count}; give a fraction that "
            "leaves some labeled images and takes at least one"
        )
    kept, taken = stratified_split(train.labels, count, seed)
    left = np.bincount(train.labels[kept], minlength=len(names))
    if not left.all():
        name = names[int(np.argmin(left))]
        total = int((train.labels == names.index(name)).sum())
        raise UserError(
            f"{option} {fraction:g} takes all {total} image(s) of class {name!r}, which then has no "
            "train image; give a smaller fraction or more images of that class"
        )
    return kept, taken


def _carve_test(train: Split, fraction: float, seed: int, names: list[str]) -> tuple[Split, Split]:
    kept, test = _stratified_share(train, "--test-fraction", fraction, seed, names)
    return train.take(kept), train.take(test)


def from_folders(src: Path, test_fraction: float, seed: int) -> Source:
    train_folder = src / "train"
    if not train_folder.is_dir():
        raise UserError(
            f"{train_folder} is missing: the labeled images go in {train_folder}/<class>/ (one folder per "
            "class), with optional test/<class>/ and unlabeled/ beside it"
        )
    for part in (src / "test", src / "unlabeled"):
        if (part.exists() or part.is_symlink()) and not part.is_dir():
            raise UserError(
                f"{part} is a file or a broken link, not a folder; make it the folder of {part.name} "
                "images, or remove it"
            )
    names = _class_folders(train_folder)
    if len(names) < 2:
        raise UserError(
            f"{train_folder} has {len(names)} class folder(s); a classifier needs at least 2 classes"
        )
    if len(names) > MAX_CLASSES:
        raise UserError(f"{train_folder} has {len(names)} class folders; at most {MAX_CLASSES} are supported")
    index = {name: number for number, name in enumerate(names)}
    ignored = _not_read(src)
    train = _labeled(train_folder, names, index, ignored)
    test_folder, unlabeled_folder = src / "test", src / "unlabeled"
    unlabeled = image_files(unlabeled_folder, ignored) if unlabeled_folder.is_dir() else []
    test = None
    if test_folder.is_dir():
        test_names = _class_folders(test_folder)
        unknown = [name for name in test_names if name not in index]
        if unknown:
            raise UserError(
                f"{test_folder / unknown[0]} is a class that {train_folder} does not have; every test class "
                "needs train images (rename the folder to a train class, or remove it)"
            )
        if not test_names:
            raise UserError(
                f"{test_folder} has no class folders; put its images in test/<class>/, or remove it so that "
                "--test-fraction of train becomes the test set"
            )
        test, how = _labeled(test_folder, test_names, index, ignored), f"the images of {test_folder}"
    splits = {"train": train, "test": test, "unlabeled": Split([str(path) for path in unlabeled])}
    splits = each_file_once(
        {name: split for name, split in splits.items() if split is not None}, names, ignored
    )
    if test is None:
        splits["train"], splits["test"] = _carve_test(splits["train"], test_fraction, seed, names)
        how = f"a stratified {test_fraction:.0%} of {train_folder} (seed {seed}): {src} has no test folder"
    return Source(
        description=f"image folders in {src}",
        class_names=names,
        splits=splits,
        test_split=how,
        ignored=[(str(path), why) for path, why in ignored],
    )


def each_file_once(splits: dict[str, Split], names: list[str], dropped: list) -> dict[str, Split]:
    """The splits of file paths (train, test, unlabeled, in that order) with each real file read once,
    however many links lead to it. Another link to it in the same class or split is listed in `dropped`,
    and so is an unlabeled one that is a test image. One file in two classes, or in test and train, is
    refused: it would be trained on under a wrong label, or tested on what was trained on. A train image
    may also be an unlabeled one."""
    places: dict[tuple[int, int], dict[str, str]] = {}  # real file: {class or split: its first path there}
    once = {}
    for split_name in [name for name in ("train", "test", "unlabeled") if name in splits]:
        split, keep = splits[split_name], []
        for position, path in enumerate(split.items):
            info = os.stat(path)
            place = split_name if split.labels is None else f"{split_name}/{names[split.labels[position]]}"
            seen = places.setdefault((info.st_dev, info.st_ino), {})
            labeled = [other for other in seen if other != "unlabeled"]
            if place in seen:
                dropped.append((Path(path), f"the same file as {seen[place]}, read once"))
            elif split_name == "unlabeled" and labeled and labeled[0].startswith("test/"):
                dropped.append((Path(path), f"the test image {seen[labeled[0]]}, left out of unlabeled"))
            elif split_name != "unlabeled" and labeled:
                raise UserError(
                    f"{path} is the file {seen[labeled[0]]} (through a link), in {place} and in "
                    f"{labeled[0]}; a file has one class and one split, so remove the link or the copy that "
                    "is wrong"
                )
            else:
                seen[place] = path
                keep.append(position)
        once[split_name] = split.take(np.array(keep, dtype=np.int64))
    return once


def _not_read(src: Path) -> list[tuple[Path, str]]:
    """What the tree holds beside the layout: listed with the skipped files, so that nothing goes unsaid."""
    beside = [
        (path, "outside train/, test/ and unlabeled/, so not read")
        for path in sorted(src.iterdir())
        if path.name not in ("train", "test", "unlabeled")
    ]
    loose = [
        (path, "not in a class folder")
        for split in ("train", "test")
        if (src / split).is_dir()
        for path in sorted((src / split).iterdir())
        if not path.is_dir()
    ]
    return [(path, why) for path, why in beside + loose if not path.name.startswith(".")]


def from_torchvision(name: str, root: Path) -> Source:
    """CIFAR-10, CIFAR-100 or STL-10 as torchvision reads them from `root` (never downloaded, md5-checked)."""
    from torchvision import datasets

    try:
        if name == "stl10":
            parts = {split: datasets.STL10(root, split=split) for split in ("train", "test", "unlabeled")}
            splits = {
                split: Split(
                    part.data.transpose(0, 2, 3, 1),  # torchvision holds STL-10 as (N, 3, H, W)
                    None if split == "unlabeled" else part.labels.astype(np.int64),
                )
                for split, part in parts.items()
            }
            classes, side = parts["train"].classes, 96
        else:
            kind = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
            train, test = kind(root, train=True), kind(root, train=False)
            splits = {
                "train": Split(train.data, np.array(train.targets, dtype=np.int64)),
                "test": Split(test.data, np.array(test.targets, dtype=np.int64)),
                "unlabeled": Split(np.zeros((0, 32, 32, 3), dtype=np.uint8)),
            }
            classes, side = train.classes, 32
    except RuntimeError as err:  # torchvision's "Dataset not found or corrupted"
        raise UserError(
            f"--from {name}: torchvision cannot read it from --root {root} ({err}); give the folder that "
            "holds the extracted download"
        ) from err
    return Source(f"torchvision {name} in {root}", list(classes), splits, f"{name}'s own test set", side)


def move_to_unlabeled(source: Source, fraction: float, seed: int) -> None:
    """Move a stratified, seeded `fraction` of the labeled train images into unlabeled, without labels:
    a dataset that has no unlabeled images of its own (CIFAR) then serves the semi-supervised stages."""
    train = source.splits["train"]
    kept, moved = _stratified_share(train, "--unlabeled-fraction", fraction, seed, source.class_names)
    unlabeled = source.splits["unlabeled"]
    extra = train.take(moved, keep_labels=False)
    items = (
        np.concatenate([unlabeled.items, extra.items])
        if isinstance(unlabeled.items, np.ndarray)
        else [*unlabeled.items, *extra.items]
    )
    source.splits["train"], source.splits["unlabeled"] = train.take(kept), Split(items)
