"""A Dataset over one memory-mapped STL-10 image file that reads whole batches with one indexing call."""

import numpy as np
import torch
from torch.utils.data import Dataset

from stl10_lightning.data.stl10_binary import STL10Binary, to_upright


class MemmapImages(Dataset):
    """The images at `indices` of one split, with their labels (none for the unlabeled split).

    DataLoader calls `__getitems__` with a whole batch of indices; it returns the collated batch, uint8
    images (B, 3, S, S) at the folder's side S and int64 labels, so use it with `collate_fn=keep_batch`.
    The memory map is opened lazily in each process and never pickled, so spawned workers do not copy
    the file.
    """

    def __init__(
        self, binary: STL10Binary, split: str, indices: np.ndarray, labels: np.ndarray | None = None
    ):
        binary.image_path(split)  # checks the file size now, not later in a DataLoader worker
        self.binary, self.split, self.indices = binary, split, np.asarray(indices)
        self.labels = None if labels is None else torch.from_numpy(labels[self.indices])
        self._images: np.memmap | None = None

    def __len__(self) -> int:
        return len(self.indices)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_images": None}

    def __getitems__(self, positions: list[int]) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        if self._images is None:
            self._images = self.binary.images(self.split)
        images = torch.from_numpy(to_upright(self._images[self.indices[positions]]))
        return images if self.labels is None else (images, self.labels[positions])

    def __getitem__(self, position: int) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        batch = self.__getitems__([position])
        return batch[0] if self.labels is None else (batch[0][0], batch[1][0])


class ConcatImages(Dataset):
    """Several MemmapImages as one dataset, still read a batch at a time.

    torch's ConcatDataset has no `__getitems__`, so it would read image by image. Batches are images
    only, or, when every part has labels, (images, labels, part): `part` says which dataset each image
    came from (e.g. 0 labeled, 1 pseudo-labeled), for per-source loss weights.
    """

    def __init__(self, parts: list[MemmapImages]):
        self.parts = parts
        self.starts = np.cumsum([0] + [len(part) for part in parts])
        self.labeled = all(part.labels is not None for part in parts)

    def __len__(self) -> int:
        return int(self.starts[-1])

    def __getitems__(self, positions: list[int]):
        positions = np.asarray(positions)
        part_of = np.searchsorted(self.starts, positions, side="right") - 1
        images = torch.empty((len(positions), *self.parts[0].binary.image_shape), dtype=torch.uint8)
        labels = torch.empty(len(positions), dtype=torch.int64)
        for number, part in enumerate(self.parts):
            rows = np.flatnonzero(part_of == number)
            if len(rows):
                batch = part.__getitems__((positions[rows] - self.starts[number]).tolist())
                images[torch.from_numpy(rows)] = batch if part.labels is None else batch[0]
                if self.labeled:
                    labels[torch.from_numpy(rows)] = batch[1]
        return (images, labels, torch.from_numpy(part_of)) if self.labeled else images

    def __getitem__(self, position: int):
        batch = self.__getitems__([position])
        return tuple(item[0] for item in batch) if self.labeled else batch[0]


class RepeatedImages(Dataset):
    """`images` (MemmapImages or ConcatImages) repeated to `length` items; item i is image i mod len.

    Shuffled, it serves every image equally often in a random order, and under DDP Lightning splits it
    like any dataset. (A RandomSampler with num_samples would not do: Lightning swaps it for a
    DistributedSampler over the dataset itself, which forgets num_samples.)
    """

    def __init__(self, images: Dataset, length: int):
        self.images, self.length = images, length

    def __len__(self) -> int:
        return self.length

    def __getitems__(self, positions: list[int]):
        return self.images.__getitems__([position % len(self.images) for position in positions])


def keep_batch(batch):
    """collate_fn for datasets whose `__getitems__` already returns a batch."""
    return batch
