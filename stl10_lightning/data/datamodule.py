"""STL10DataModule: the one data source of all four stages."""

from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from stl10_lightning.data import stl10_binary
from stl10_lightning.data.memmap_images import MemmapImages, keep_batch
from stl10_lightning.data.splits import seeded_subset, stratified_split


class STL10DataModule(pl.LightningDataModule):
    """Splits of one `stl10_binary/` folder, served as uint8 batches; stages transform them on the device.

    - train: the labeled train images (or one official fold) minus a stratified, seeded `val_size` split
    - val: that split; it selects checkpoints
    - test: the 8,000 test images, for the final evaluation only
    - unlabeled: all unlabeled images, or a seeded subset of `unlabeled_count`

    `synthetic` (a dict of train/test/unlabeled/seed) generates the folder on first use instead of
    reading a real download.
    """

    def __init__(
        self,
        root: str = "data",
        download: bool = False,
        synthetic: dict | None = None,
        image_size: int = 96,
        val_size: int = 500,
        fold: int | None = None,
        unlabeled_count: int | None = None,
        batch_size: int = 128,
        eval_batch_size: int | None = None,
        num_workers: int = 4,
        pin_memory: bool | None = None,
        seed: int = 0,
    ):
        super().__init__()
        self.save_hyperparameters(logger=False)
        self.root = Path(root)
        self.class_names: list[str] = []
        self.splits: dict[str, MemmapImages] = {}
        self._binary: stl10_binary.STL10Binary | None = None

    def prepare_data(self) -> None:
        if self.hparams.synthetic is not None:
            # Imported here so that `python -m stl10_lightning.data.synthetic` does not import itself twice.
            from stl10_lightning.data import synthetic

            synthetic.ensure(self.root, **self.hparams.synthetic)
        elif self.hparams.download:
            stl10_binary.download(self.root)

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        binary = stl10_binary.STL10Binary(self.root)
        labels = binary.labels("train")
        pool = np.arange(len(labels)) if self.hparams.fold is None else binary.fold(self.hparams.fold)
        train, val = stratified_split(labels[pool], self.hparams.val_size, self.hparams.seed)
        self.splits = {
            "train": MemmapImages(binary, "train", pool[train], labels),
            "val": MemmapImages(binary, "train", pool[val], labels),
            "test": MemmapImages(binary, "test", np.arange(binary.counts["test"]), binary.labels("test")),
        }
        self.class_names = binary.class_names()
        self._binary = binary

    def unlabeled_set(self) -> MemmapImages:
        """The unlabeled images (a seeded subset when `unlabeled_count` is set); they have no labels."""
        if "unlabeled" not in self.splits:
            self.setup()
            binary = self._binary
            subset = seeded_subset(
                binary.counts["unlabeled"], self.hparams.unlabeled_count, self.hparams.seed
            )
            self.splits["unlabeled"] = MemmapImages(binary, "unlabeled", subset)
        return self.splits["unlabeled"]

    def _loader(self, dataset: MemmapImages, train: bool) -> DataLoader:
        batch_size = (
            self.hparams.batch_size if train else self.hparams.eval_batch_size or self.hparams.batch_size
        )
        workers = self.hparams.num_workers
        pin = torch.cuda.is_available() if self.hparams.pin_memory is None else self.hparams.pin_memory
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=train,
            drop_last=train and len(dataset) > batch_size,  # a last batch of one breaks BatchNorm
            num_workers=workers,
            persistent_workers=workers > 0,
            pin_memory=pin,
            collate_fn=keep_batch,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.splits["train"], train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.splits["val"], train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.splits["test"], train=False)

    def unlabeled_dataloader(self, train: bool = False) -> DataLoader:
        return self._loader(self.unlabeled_set(), train=train)
