"""Reader for the official STL-10 binary layout (the folder `stl10_binary/`), through memory maps.

Each image is 3x96x96 uint8 stored column-major (per channel, x runs slowest), labels are uint8 1..10.
Opening the 100k unlabeled images maps 2.7 GB of file without reading it.
"""

import json
from pathlib import Path

import numpy as np
import torch

from stl10_lightning.common.errors import UserError

FOLDER = "stl10_binary"
IMAGE_SHAPE = (3, 96, 96)
IMAGE_BYTES = 3 * 96 * 96
NUM_CLASSES = 10
OFFICIAL_COUNTS = {"train": 5000, "test": 8000, "unlabeled": 100000}
IMAGE_FILES = {"train": "train_X.bin", "test": "test_X.bin", "unlabeled": "unlabeled_X.bin"}
LABEL_FILES = {"train": "train_y.bin", "test": "test_y.bin"}
CLASS_NAMES_FILE = "class_names.txt"
FOLDS_FILE = "fold_indices.txt"
# Written by our synthetic generator; a real download has none, so the official counts apply.
MANIFEST_FILE = "synthetic.json"

URL = "http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz"
ARCHIVE_MD5 = "91f7769df0f17e558f3565bffb0c7dfb"


def how_to_get(root: Path) -> str:
    return f"put the extracted STL-10 folder at {root / FOLDER}/ (from {URL}), or run with data.download=true"


class STL10Binary:
    """One `stl10_binary/` folder: validated file sizes, memory-mapped images, labels mapped to 0..9."""

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
        manifest = self.folder / MANIFEST_FILE
        self.counts = json.loads(manifest.read_text())["counts"] if manifest.exists() else OFFICIAL_COUNTS

    def _file(self, name: str, expected_bytes: int | None = None) -> Path:
        path = self.folder / name
        if not path.is_file():
            raise UserError(f"missing {path}; {how_to_get(self.root)}")
        if expected_bytes is not None and path.stat().st_size != expected_bytes:
            raise UserError(
                f"{path} has {path.stat().st_size} bytes, expected {expected_bytes}: "
                "the file is truncated or not STL-10; download or generate it again"
            )
        return path

    def image_path(self, split: str) -> Path:
        return self._file(IMAGE_FILES[split], self.counts[split] * IMAGE_BYTES)

    def images(self, split: str) -> np.memmap:
        """The raw (N, 3, 96, 96) array in file order, i.e. each image transposed; see `to_upright`."""
        shape = (self.counts[split], *IMAGE_SHAPE)
        return np.memmap(self.image_path(split), dtype=np.uint8, mode="r", shape=shape)

    def labels(self, split: str) -> np.ndarray:
        path = self._file(LABEL_FILES[split], self.counts[split])
        raw = np.fromfile(path, dtype=np.uint8)
        if raw.size and (raw.min() < 1 or raw.max() > NUM_CLASSES):
            raise UserError(
                f"{path} has labels from {raw.min()} to {raw.max()}, expected 1..{NUM_CLASSES}: "
                "the file is corrupt or not STL-10; download or generate it again"
            )
        return raw.astype(np.int64) - 1

    def class_names(self) -> list[str]:
        names = self._file(CLASS_NAMES_FILE).read_text().split()
        if len(names) != NUM_CLASSES:
            raise UserError(f"{self.folder / CLASS_NAMES_FILE} lists {len(names)} classes, expected 10")
        return names

    def fold(self, index: int) -> np.ndarray:
        """Train-set indices of one of the 10 official folds (0-based in the file)."""
        lines = self._file(FOLDS_FILE).read_text().splitlines()
        if not 0 <= index < len(lines):
            raise UserError(f"data.fold={index} is out of range: {FOLDS_FILE} has folds 0..{len(lines) - 1}")
        return np.array(lines[index].split(), dtype=np.int64)


def to_upright(block: np.ndarray) -> torch.Tensor:
    """(N, 3, 96, 96) uint8 in file order -> (N, 3, H, W) uint8 tensor with rows running top to bottom."""
    return torch.from_numpy(np.ascontiguousarray(block.transpose(0, 1, 3, 2)))


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
