"""Seeded index splits of the labeled and unlabeled pools."""

import numpy as np

from stl10_lightning.common.errors import UserError


def stratified_split(labels: np.ndarray, val_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) positions into `labels`, val holding each class in proportion.

    Hand-written (a few lines of numpy) to avoid a scikit-learn dependency for `train_test_split`.
    Within each class, a seeded shuffle gives every sample a rank; val takes the samples whose rank is
    the smallest fraction of their class size, so every class contributes in proportion.
    """
    if not 0 < val_size < len(labels):
        raise UserError(
            f"data.val_size={val_size} must be between 1 and {len(labels) - 1}: "
            f"the labeled pool has {len(labels)} images and training needs some of them"
        )
    shuffled = np.random.default_rng(seed).permutation(len(labels))
    grouped = shuffled[np.argsort(labels[shuffled], kind="stable")]
    counts = np.bincount(labels)
    rank = np.arange(len(labels)) - np.repeat(np.cumsum(counts) - counts, counts)
    fraction = (rank + 0.5) / np.repeat(counts, counts)
    picked = np.argsort(fraction, kind="stable")
    return np.sort(grouped[picked[val_size:]]), np.sort(grouped[picked[:val_size]])


def seeded_subset(available: int, count: int | None, seed: int, what: str = "unlabeled") -> np.ndarray:
    """Sorted indices of `count` of `available` items (all of them when count is None).

    Every count takes a prefix of the same seeded permutation, so with one seed a smaller subset lies
    inside every larger one: a ratio sweep adds images without swapping the ones it already had.
    Sorted because the memory map reads faster in file order.
    """
    if count is None:
        return np.arange(available)
    if count < 1:
        raise UserError(f"asked for {count} {what} images; ask for at least 1")
    if count > available:
        raise UserError(f"asked for {count} {what} images but the dataset has {available}; ask for fewer")
    return np.sort(np.random.default_rng(seed).permutation(available)[:count])
