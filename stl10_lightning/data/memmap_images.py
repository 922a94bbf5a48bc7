"""A Dataset over one memory-mapped STL-10 image file that reads whole batches with one indexing call."""

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from stl10_lightning.data.stl10_binary import IMAGE_SHAPE, to_upright


class MemmapImages(Dataset):
    """The images at `indices` of one file, with their labels (none for the unlabeled split).

    DataLoader calls `__getitems__` with a whole batch of indices; it returns the collated batch, uint8
    images (B, 3, 96, 96) and int64 labels, so use it with `collate_fn=keep_batch`. The memory map is
    opened lazily in each process and never pickled, so spawned workers do not copy the file.
    """

    def __init__(self, path: Path, count: int, indices: np.ndarray, labels: np.ndarray | None = None):
        self.path, self.count, self.indices = Path(path), count, np.asarray(indices)
        self.labels = None if labels is None else torch.from_numpy(labels[self.indices])
        self._images: np.memmap | None = None

    def __len__(self) -> int:
        return len(self.indices)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_images": None}

    def _file(self) -> np.memmap:
        if self._images is None:
            self._images = np.memmap(self.path, np.uint8, mode="r", shape=(self.count, *IMAGE_SHAPE))
        return self._images

    def __getitems__(self, positions: list[int]) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        images = to_upright(self._file()[self.indices[positions]])
        return images if self.labels is None else (images, self.labels[positions])

    def __getitem__(self, position: int) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        batch = self.__getitems__([position])
        return batch[0] if self.labels is None else (batch[0][0], batch[1][0])


def keep_batch(batch):
    """collate_fn for datasets whose `__getitems__` already returns a batch."""
    return batch
