"""Reader for the STL-10 binary layout (the folder `stl10_binary/`), through memory maps.

Each image is 3xSxS uint8 stored column-major (per channel, x runs slowest), labels are uint8 1..classes.
STL-10 itself has S=96 and 10 classes; a folder that `stl10-prepare` wrote (data/prepare.py) has its own
side, classes and statistics in `manifest.json`. Opening the 100k unlabeled images maps 2.7 GB of file
without reading it.
"""

import json
from pathlib import Path

import numpy as np

from stl10_lightning.common.errors import UserError

FOLDER = "stl10_binary"
IMAGE_SHAPE = (3, 96, 96)  # STL-10's own; a prepared folder's side is in its manifest
IMAGE_BYTES = 3 * 96 * 96
NUM_CLASSES = 10
# The per-channel mean and std of STL-10 in common use (from its training images), in [0, 1].
STL10_MEAN = (0.4467, 0.4398, 0.4066)
STL10_STD = (0.2603, 0.2566, 0.2713)
OFFICIAL_COUNTS = {"train": 5000, "test": 8000, "unlabeled": 100000}
IMAGE_FILES = {"train": "train_X.bin", "test": "test_X.bin", "unlabeled": "unlabeled_X.bin"}
LABEL_FILES = {"train": "train_y.bin", "test": "test_y.bin"}
CLASS_NAMES_FILE = "class_names.txt"
FOLDS_FILE = "fold_indices.txt"
# Written by our synthetic generator; a real download has none, so the official counts apply.
MANIFEST_FILE = "synthetic.json"
# Written by stl10-prepare: counts, image side, class names, normalization statistics.
PREPARED_FILE = "manifest.json"
PREPARED_FORMAT = 1
PREPARED_KEYS = ("counts", "image_size", "class_names", "mean", "std")

URL = "http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz"
ARCHIVE_MD5 = "91f7769df0f17e558f3565bffb0c7dfb"


def how_to_get(root: Path) -> str:
    return f"put the extracted STL-10 folder at {root / FOLDER}/ (from {URL}), or run with data.download=true"


def read_manifest(folder: Path) -> dict:
    """A prepared folder's manifest.json, with every key the reader needs, or a one-line refusal."""
    path = folder / PREPARED_FILE
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError(f"cannot read {path} ({err}); prepare the folder again with stl10-prepare") from err
    missing = [key for key in PREPARED_KEYS if not isinstance(manifest, dict) or key not in manifest]
    if missing or manifest.get("format") != PREPARED_FORMAT:
        raise UserError(
            f"{path} is not a manifest of format {PREPARED_FORMAT} (missing {missing or 'nothing'}, format "
            f"{manifest.get('format') if isinstance(manifest, dict) else None}); prepare the folder again"
        )
    return manifest


def settings_from_data(root: str | Path) -> dict:
    """What the stages take from the data before reading it: classes and normalization statistics.

    A prepared folder's come from its manifest; anything else gets STL-10's, also a folder that is not
    there yet (synthetic data is generated on first use, a download fetched at the start of the run).
    """
    folder = Path(root) / FOLDER
    if not (folder / PREPARED_FILE).is_file():
        return {"num_classes": NUM_CLASSES, "mean": list(STL10_MEAN), "std": list(STL10_STD)}
    manifest = read_manifest(folder)
    return {"num_classes": len(manifest["class_names"]), "mean": manifest["mean"], "std": manifest["std"]}


class STL10Binary:
    """One `stl10_binary/` folder: validated file sizes, memory-mapped images, labels mapped to 0..N-1."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.folder = self.root / FOLDER
        if self.root.is_file():
            raise UserError(
                f"data.root={self.root} is a file; give the folder that contains {FOLDER}/ (or will, with "
                "data.download=true)"
            )
        if not self.folder.is_dir():
            hint = f"{how_to_get(self.root)}, or use data=synthetic"
            raise UserError(f"STL-10 not found: {self.folder} does not exist; {hint}")
        self.prepared = (self.folder / PREPARED_FILE).is_file()
        if self.prepared:
            manifest = read_manifest(self.folder)
            self.counts, self.image_size = manifest["counts"], manifest["image_size"]
            self._class_names = list(manifest["class_names"])
            self.mean, self.std = manifest["mean"], manifest["std"]
        else:
            synthetic = self.folder / MANIFEST_FILE
            self.counts = (
                json.loads(synthetic.read_text())["counts"] if synthetic.exists() else OFFICIAL_COUNTS
            )
            self.image_size, self._class_names = IMAGE_SHAPE[-1], None
            self.mean, self.std = list(STL10_MEAN), list(STL10_STD)
        self.num_classes = len(self._class_names) if self.prepared else NUM_CLASSES
        self.image_shape = (3, self.image_size, self.image_size)

    def _hint(self, where: str) -> str:
        """What to do about a bad file: where it comes from decides it."""
        if self.prepared:
            return f"the file is {where} or does not match {PREPARED_FILE}; prepare the folder again"
        return f"the file is {where} or not STL-10; download or generate it again"

    def _file(self, name: str, expected_bytes: int | None = None) -> Path:
        path = self.folder / name
        if not path.is_file():
            fix = "prepare the folder again with stl10-prepare" if self.prepared else how_to_get(self.root)
            raise UserError(f"missing {path}; {fix}")
        if expected_bytes is not None and path.stat().st_size != expected_bytes:
            found = path.stat().st_size
            raise UserError(f"{path} has {found} bytes, expected {expected_bytes}: {self._hint('truncated')}")
        return path

    def image_path(self, split: str) -> Path:
        return self._file(IMAGE_FILES[split], self.counts[split] * int(np.prod(self.image_shape)))

    def images(self, split: str) -> np.memmap:
        """The raw (N, 3, S, S) array in file order, i.e. each image transposed; see `to_upright`."""
        shape = (self.counts[split], *self.image_shape)
        return np.memmap(self.image_path(split), dtype=np.uint8, mode="r", shape=shape)

    def labels(self, split: str) -> np.ndarray:
        path = self._file(LABEL_FILES[split], self.counts[split])
        raw = np.fromfile(path, dtype=np.uint8)
        if raw.size and (raw.min() < 1 or raw.max() > self.num_classes):
            raise UserError(
                f"{path} has labels from {raw.min()} to {raw.max()}, expected 1..{self.num_classes}: "
                f"{self._hint('corrupt')}"
            )
        return raw.astype(np.int64) - 1

    def class_names(self) -> list[str]:
        """One name per line (a name may hold spaces), in label order."""
        if self._class_names is not None:
            return self._class_names
        lines = self._file(CLASS_NAMES_FILE).read_text(encoding="utf-8").splitlines()
        names = [line.strip() for line in lines if line.strip()]
        if len(names) != self.num_classes:
            raise UserError(
                f"{self.folder / CLASS_NAMES_FILE} lists {len(names)} classes, expected {self.num_classes}"
            )
        return names

    def fold(self, index: int) -> np.ndarray:
        """Train-set indices of one of the 10 official folds (0-based in the file)."""
        if self.prepared:
            raise UserError(
                f"data.fold={index} picks one of STL-10's official folds, and {self.folder} was prepared "
                "from other images, without folds; leave data.fold=null"
            )
        lines = self._file(FOLDS_FILE).read_text().splitlines()
        if not 0 <= index < len(lines):
            raise UserError(f"data.fold={index} is out of range: {FOLDS_FILE} has folds 0..{len(lines) - 1}")
        return np.array(lines[index].split(), dtype=np.int64)


def to_upright(block: np.ndarray) -> np.ndarray:
    """(N, 3, S, S) uint8 in file order -> (N, 3, H, W) uint8 with rows running top to bottom."""
    return np.ascontiguousarray(block.transpose(0, 1, 3, 2))


def to_file_order(upright: np.ndarray) -> np.ndarray:
    """(N, 3, H, W) upright uint8 -> the column-major order of the files; the inverse of `to_upright`."""
    return np.ascontiguousarray(upright.transpose(0, 1, 3, 2))


def download(root: str | Path) -> None:
    """Fetch and extract the official archive unless the folder is already there; md5 is checked once."""
    from torchvision.datasets.utils import download_and_extract_archive

    root = Path(root)
    if (root / FOLDER).is_dir():
        return
    try:
        download_and_extract_archive(URL, download_root=str(root), md5=ARCHIVE_MD5, remove_finished=True)
    except (OSError, RuntimeError) as err:  # URLError is an OSError; a bad md5 is a RuntimeError
        raise UserError(
            f"could not download STL-10 ({err}); without internet, download {URL} elsewhere and extract it "
            f"so that {root / FOLDER}/ exists, or use data=synthetic"
        ) from err
