import pickle
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from stl10_lightning.common.errors import UserError
from stl10_lightning.data import STL10DataModule, synthetic
from tests.helpers import SYNTHETIC


def datamodule(root, **kwargs) -> STL10DataModule:
    dm = STL10DataModule(root=str(root), num_workers=0, batch_size=32, **{"val_size": 100, **kwargs})
    dm.setup("fit")
    return dm


def test_split_sizes_disjoint_and_stratified(synthetic_root):
    dm = datamodule(synthetic_root)
    train, val, test = (dm.splits[name] for name in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (SYNTHETIC["train"] - 100, 100, SYNTHETIC["test"])
    assert not set(train.indices) & set(val.indices)
    assert sorted([*train.indices, *val.indices]) == list(range(SYNTHETIC["train"]))
    assert np.bincount(val.labels.numpy(), minlength=10).tolist() == [10] * 10


def test_splits_are_seeded(synthetic_root):
    same = datamodule(synthetic_root, seed=1), datamodule(synthetic_root, seed=1)
    other = datamodule(synthetic_root, seed=2)
    assert np.array_equal(same[0].splits["val"].indices, same[1].splits["val"].indices)
    assert not np.array_equal(same[0].splits["val"].indices, other.splits["val"].indices)


def test_batches_leave_the_loader_as_uint8(synthetic_root):
    dm = datamodule(synthetic_root)
    images, labels = next(iter(dm.train_dataloader()))
    assert images.dtype == torch.uint8 and images.shape == (32, 3, 96, 96)
    assert labels.dtype == torch.int64 and labels.min() >= 0 and labels.max() <= 9
    assert len(dm.test_dataloader().dataset) == SYNTHETIC["test"]


def test_official_fold_is_the_labeled_pool(synthetic_root):
    dm = datamodule(synthetic_root, fold=3, val_size=20)
    fold = np.loadtxt(synthetic_root / "stl10_binary/fold_indices.txt", dtype=int)[3]
    assert sorted([*dm.splits["train"].indices, *dm.splits["val"].indices]) == sorted(fold)


def test_labeled_count_keeps_a_stratified_subset_that_the_ratio_counts_from(synthetic_root):
    dm = datamodule(synthetic_root, labeled_count=200, val_size=50, unlabeled_ratio=2)
    train, val = dm.splits["train"], dm.splits["val"]
    assert (len(train), len(val)) == (150, 50)
    assert np.bincount(np.concatenate([train.labels, val.labels]), minlength=10).tolist() == [20] * 10
    assert len(dm.unlabeled_set()) == 400  # 2 x the 200 labeled images, not x the whole pool
    with pytest.raises(UserError, match=r"data.labeled_count=9999 is more than the \d+ labeled images"):
        datamodule(synthetic_root, labeled_count=9999)


@pytest.mark.parametrize("val_size", [0, SYNTHETIC["train"], 5000])
def test_val_size_must_leave_training_images(synthetic_root, val_size):
    with pytest.raises(UserError, match=rf"data.val_size={val_size} must be between 1 and"):
        datamodule(synthetic_root, val_size=val_size)


def test_unlabeled_subset_is_seeded_and_bounded(synthetic_root):
    subset = datamodule(synthetic_root, unlabeled_count=50).unlabeled_set()
    assert len(subset) == 50 and len(set(subset.indices)) == 50
    assert np.array_equal(
        subset.indices, datamodule(synthetic_root, unlabeled_count=50).unlabeled_set().indices
    )
    assert next(iter(datamodule(synthetic_root, unlabeled_count=50).unlabeled_dataloader())).shape[1:] == (
        3,
        96,
        96,
    )
    with pytest.raises(
        UserError, match=rf"asked for 5000 unlabeled images but the dataset has {SYNTHETIC['unlabeled']}"
    ):
        datamodule(synthetic_root, unlabeled_count=5000).unlabeled_set()


def test_unlabeled_count_below_one_is_refused_as_such(synthetic_root):
    with pytest.raises(UserError, match=r"data.unlabeled_count=0 must be at least 1; set it to null to use"):
        datamodule(synthetic_root, unlabeled_count=0)


def as_rank(dm: STL10DataModule, rank: int, processes: int) -> STL10DataModule:
    """`dm` as the data module of one DDP process (what Lightning's trainer tells it)."""
    dm.trainer = SimpleNamespace(distributed_sampler_kwargs={"num_replicas": processes, "rank": rank})
    return dm


@pytest.mark.parametrize("processes", [2, 7])
@pytest.mark.parametrize("split", ["val", "test"])
def test_ddp_processes_share_val_and_test_without_repeating_an_image(synthetic_root, split, processes):
    """101 val and 300 test images: divided among the processes, each image on exactly one."""
    shares = [
        getattr(as_rank(datamodule(synthetic_root, val_size=101), rank, processes), f"{split}_dataloader")()
        for rank in range(processes)
    ]
    dataset = shares[0].dataset
    indices = np.concatenate([dataset.indices[list(loader.sampler)] for loader in shares])
    assert sorted(indices) == sorted(dataset.indices)
    assert sum(len(labels) for loader in shares for _, labels in loader) == len(dataset)


def test_labeled_eval_loader_is_the_whole_split_on_every_process(synthetic_root):
    """A kNN bank or a teacher's val predictions need every image on every process."""
    dm = as_rank(datamodule(synthetic_root, val_size=101), 1, 2)
    assert sum(len(labels) for _, labels in dm.labeled_eval_dataloader()) == SYNTHETIC["train"] - 101
    assert sum(len(labels) for _, labels in dm.labeled_eval_dataloader("val")) == 101


def test_a_val_split_smaller_than_the_processes_is_refused(synthetic_root):
    with pytest.raises(
        UserError, match=r"the val split is too small for 4 processes \(3 images\): each needs at"
    ):
        as_rank(datamodule(synthetic_root, val_size=3), 0, 4).val_dataloader()


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def test_unlabeled_images_are_memory_mapped_not_read(tmp_path):
    synthetic.generate(tmp_path, train=100, test=10, unlabeled=6000)  # a 166 MB unlabeled file
    before = rss_bytes()
    dm = datamodule(tmp_path, val_size=10)
    batch = next(iter(dm.unlabeled_dataloader()))
    grown = rss_bytes() - before
    assert batch.shape == (32, 3, 96, 96)
    assert grown < 20e6, f"RSS grew by {grown / 1e6:.0f} MB for a 166 MB file"


def test_dataset_pickles_without_its_images(synthetic_root):
    """Spawned DataLoader workers get the path, not a copy of the memory-mapped file."""
    dataset = datamodule(synthetic_root).splits["test"]
    dataset[0]  # opens the memory map in this process
    assert len(pickle.dumps(dataset)) < 20_000
    clone = pickle.loads(pickle.dumps(dataset))
    assert torch.equal(clone[5][0], dataset[5][0])


def test_loader_with_worker_processes(synthetic_root):
    dm = STL10DataModule(root=str(synthetic_root), val_size=100, batch_size=50, num_workers=2)
    dm.setup("fit")
    assert sum(len(labels) for _, labels in dm.val_dataloader()) == 100
