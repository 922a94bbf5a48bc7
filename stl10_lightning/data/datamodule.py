"""STL10DataModule: the one data source of all four stages."""

import math
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.overrides.distributed import UnrepeatedDistributedSampler
from pytorch_lightning.utilities import CombinedLoader
from torch.utils.data import DataLoader, Dataset, Sampler, TensorDataset

from stl10_lightning.common.errors import UserError
from stl10_lightning.data import stl10_binary
from stl10_lightning.data.memmap_images import ConcatImages, MemmapImages, RepeatedImages, keep_batch
from stl10_lightning.data.splits import seeded_subset, stratified_split

TRAIN_ON = ("labeled", "unlabeled", "train+unlabeled")


class STL10DataModule(pl.LightningDataModule):
    """Splits of one `stl10_binary/` folder, served as uint8 batches; stages transform them on the device.

    - train: the labeled train images (or one official fold, or a stratified subset of `labeled_count`)
      minus a stratified, seeded `val_size` split
    - val: that split; it selects checkpoints
    - test: the 8,000 test images, for the final evaluation only
    - unlabeled: all unlabeled images, or a seeded subset of `unlabeled_count` images, or of
      `unlabeled_ratio` x the labeled pool (5,000 images, 1,000 with a fold, or `labeled_count`): 0.4
      -> 2,000 images.
      Subsets are prefixes of one seeded order, so the 0.4 subset lies inside the 1 subset, and so on.
    - pseudo (after `add_pseudo_labels`): unlabeled images with predicted labels, trained on with train

    `train_on` picks the training batches: `labeled` gives (images, labels); `unlabeled` and
    `train+unlabeled` give `{"unlabeled": images, "labeled": (images, labels)}`, the labeled loader
    cycling beside the unlabeled one (`unlabeled_batch_size` images a step) for online monitoring.
    After `pair_unlabeled(n)` (the online pseudo-label mode) batches have the same form, but an epoch
    is one pass over the labeled images, each step with n unlabeled ones. Unlabeled batches never
    carry labels.

    Under DDP, `val_dataloader` and `test_dataloader` give each process its share of the split without
    the padding of Lightning's DistributedSampler, so every image is evaluated exactly once (a process
    may hold one image more than another); `labeled_eval_dataloader` gives a whole split to each process.

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
        labeled_count: int | None = None,
        unlabeled_count: int | None = None,
        unlabeled_ratio: float | None = None,
        train_on: str = "labeled",
        batch_size: int = 128,
        unlabeled_batch_size: int | None = None,
        eval_batch_size: int | None = None,
        num_workers: int = 4,
        pin_memory: bool | None = None,
        seed: int = 0,
    ):
        super().__init__()
        if train_on not in TRAIN_ON:
            raise UserError(f"data.train_on={train_on!r}; choose one of {TRAIN_ON}")
        if unlabeled_ratio is not None and unlabeled_count is not None:
            raise UserError("set either ratio (data.unlabeled_ratio) or data.unlabeled_count, not both")
        if unlabeled_ratio is not None and unlabeled_ratio <= 0:
            raise UserError(
                f"ratio={unlabeled_ratio} must be above 0: it is unlabeled images per labeled one"
            )
        if unlabeled_count is not None and unlabeled_count < 1:
            raise UserError(
                f"data.unlabeled_count={unlabeled_count} must be at least 1; set it to null to use every "
                "unlabeled image"
            )
        self.save_hyperparameters(logger=False)
        self.root = Path(root)
        self.class_names: list[str] = []
        self.splits: dict[str, Dataset] = {}
        self.unlabeled_per_step: int | None = None
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
        pool = self._labeled_subset(pool, labels)
        train, val = stratified_split(labels[pool], self.hparams.val_size, self.hparams.seed)
        self.splits = {
            "train": MemmapImages(binary, "train", pool[train], labels),
            "val": MemmapImages(binary, "train", pool[val], labels),
            "test": MemmapImages(binary, "test", np.arange(binary.counts["test"]), binary.labels("test")),
        }
        self.class_names = binary.class_names()
        self._binary = binary

    def _labeled_subset(self, pool: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """`labeled_count` images of the pool, each class in proportion; the whole pool when it is null."""
        count = self.hparams.labeled_count
        if count is None or count == len(pool):
            return pool
        if count > len(pool):
            raise UserError(
                f"data.labeled_count={count} is more than the {len(pool)} labeled images; ask for at most "
                f"{len(pool)}, or null for all"
            )
        _, kept = stratified_split(labels[pool], count, self.hparams.seed)
        return pool[kept]

    def unlabeled_set(self) -> MemmapImages:
        """The unlabeled images (a seeded subset when `unlabeled_count` is set); they have no labels."""
        if "unlabeled" not in self.splits:
            self.setup()
            binary = self._binary
            subset = seeded_subset(binary.counts["unlabeled"], self.unlabeled_count(), self.hparams.seed)
            self.splits["unlabeled"] = MemmapImages(binary, "unlabeled", subset)
        return self.splits["unlabeled"]

    def unlabeled_count(self) -> int | None:
        """How many unlabeled images the run uses; None: all of them."""
        ratio = self.hparams.unlabeled_ratio
        if ratio is None:
            return self.hparams.unlabeled_count
        self.setup()
        pool = len(self.splits["train"]) + len(self.splits["val"])
        images = ratio * pool
        if images < 1 and not math.isclose(images, 1):
            raise UserError(
                f"ratio={ratio:g} gives {images:g} unlabeled images ({ratio:g} x {pool} labeled); use a "
                f"ratio of at least {1 / pool:g}"
            )
        count = round(images)
        if count > self._binary.counts["unlabeled"]:
            raise UserError(
                f"ratio={ratio:g} asks for {count} unlabeled images ({ratio:g} x {pool} labeled) but the "
                f"dataset has {self._binary.counts['unlabeled']}; use a ratio of at most "
                f"{self._binary.counts['unlabeled'] / pool:g}"
            )
        return count

    def add_pseudo_labels(self, positions: np.ndarray, labels: np.ndarray) -> None:
        """Train on the labeled split plus the unlabeled images at `positions` (into unlabeled_set())."""
        unlabeled = self.unlabeled_set()
        full = np.full(self._binary.counts["unlabeled"], -1, dtype=np.int64)
        full[unlabeled.indices[positions]] = labels
        self.splits["pseudo"] = MemmapImages(self._binary, "unlabeled", unlabeled.indices[positions], full)

    def pair_unlabeled(self, per_step: int) -> None:
        """Each training step also draws `per_step` images of the unlabeled subset (semi-supervised).

        An epoch stays one pass over the labeled train split, as in the supervised stage, whatever the
        ratio: the unlabeled subset is repeated to the epoch's steps x `per_step` images and shuffled,
        so each image is drawn equally often (a small subset may repeat within a step).
        """
        if self.hparams.train_on != "labeled":
            raise UserError(
                f"data.train_on={self.hparams.train_on} cannot be combined with the semi-supervised mode, "
                "which draws its own unlabeled images; leave data.train_on=labeled"
            )
        self.unlabeled_per_step = per_step

    def serve_features(self, features: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> None:
        """Serve (features, labels) tensors instead of images for the named splits.

        The linear probe computes its frozen backbone's features once and trains on them.
        """
        self.splits.update({name: TensorDataset(*tensors) for name, tensors in features.items()})

    def _loader(
        self, dataset: Dataset, train: bool, batch_size: int | None = None, sampler: Sampler | None = None
    ) -> DataLoader:
        if batch_size is None:
            batch_size = self.hparams.batch_size if train else self.hparams.eval_batch_size
        batch_size = batch_size or self.hparams.batch_size
        # A last batch of one breaks BatchNorm; but a process's share no larger than the batch is one batch.
        drop_last = train and self._share(len(dataset)) > batch_size
        if isinstance(dataset, TensorDataset):  # features in memory: workers would only add overhead
            return DataLoader(
                dataset, batch_size=batch_size, shuffle=train, sampler=sampler, drop_last=drop_last
            )
        workers = self.hparams.num_workers
        pin = torch.cuda.is_available() if self.hparams.pin_memory is None else self.hparams.pin_memory
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=train,
            sampler=sampler,
            drop_last=drop_last,
            num_workers=workers,
            persistent_workers=workers > 0,
            pin_memory=pin,
            collate_fn=keep_batch,
        )

    def batches_per_epoch(self, split: str = "train") -> int:
        """Training batches an epoch of `split` gives each process, by the loader's drop_last rule."""
        share, batch = self._share(len(self.splits[split])), self.hparams.batch_size
        return share // batch if share > batch else 1

    def _share(self, images: int) -> int:
        """Images each process trains on: Lightning splits training sets evenly over the processes."""
        processes = self.trainer.world_size if self.trainer is not None else 1
        return math.ceil(images / processes)

    def _unlabeled_training_images(self) -> Dataset:
        if self.hparams.train_on == "unlabeled":
            return self.unlabeled_set()
        return ConcatImages([self.splits["train"], self.unlabeled_set()])

    def train_dataloader(self) -> DataLoader | CombinedLoader:
        if "pseudo" in self.splits:  # batches are (images, labels, source): 0 labeled, 1 pseudo-labeled
            return self._loader(ConcatImages([self.splits["train"], self.splits["pseudo"]]), train=True)
        labeled = self._loader(self.splits["train"], train=True)
        if self.unlabeled_per_step:
            return self._with_unlabeled_each_step(labeled)
        if self.hparams.train_on == "labeled" or isinstance(self.splits["train"], TensorDataset):
            return labeled
        unlabeled_batch = self.hparams.unlabeled_batch_size or self.hparams.batch_size
        unlabeled = self._loader(self._unlabeled_training_images(), train=True, batch_size=unlabeled_batch)
        return CombinedLoader({"unlabeled": unlabeled, "labeled": labeled}, mode="max_size_cycle")

    def _with_unlabeled_each_step(self, labeled: DataLoader) -> CombinedLoader:
        per_step = self.unlabeled_per_step
        # As many unlabeled batches as labeled ones, each image drawn equally often.
        images = RepeatedImages(self.unlabeled_set(), len(labeled) * per_step)
        unlabeled = self._loader(images, train=True, batch_size=per_step)
        return CombinedLoader({"unlabeled": unlabeled, "labeled": labeled}, mode="min_size")

    def labeled_eval_dataloader(self, split: str = "train") -> DataLoader:
        """A whole labeled split in order, on every process: a kNN feature bank, a feature cache, or a
        teacher's predictions. Lightning never sees this loader: under DDP it is neither split nor padded."""
        return self._loader(self.splits[split], train=False)

    def val_dataloader(self) -> DataLoader:
        return self._evaluation_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._evaluation_loader("test")

    def _evaluation_loader(self, split: str) -> DataLoader:
        """This process's share of `split`, each image on exactly one process.

        Lightning would split it with a DistributedSampler, which repeats images until every process has
        as many, so some would count twice in val/acc and test/acc. Lightning leaves a DistributedSampler
        it is given alone; torchmetrics then sums the uneven shares across processes.
        """
        dataset = self.splits[split]
        sharding = self.trainer.distributed_sampler_kwargs if self.trainer is not None else None
        if not sharding or sharding["num_replicas"] == 1:
            return self._loader(dataset, train=False)
        processes = sharding["num_replicas"]
        if len(dataset) < processes:
            larger = f"data.val_size >= {processes} or " if split == "val" else ""
            raise UserError(
                f"the {split} split is too small for {processes} processes ({len(dataset)} images): each "
                f"needs at least one image to evaluate; use {larger}fewer processes (trainer.devices)"
            )
        sampler = UnrepeatedDistributedSampler(dataset, shuffle=False, **sharding)
        return self._loader(dataset, train=False, sampler=sampler)

    def unlabeled_dataloader(self, train: bool = False) -> DataLoader:
        return self._loader(self.unlabeled_set(), train=train)
