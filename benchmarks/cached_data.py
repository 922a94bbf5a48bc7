"""Synthetic STL-10 folders shared by the benchmarks, generated once into benchmarks/.cache/ (git-ignored)."""

from pathlib import Path

from stl10_lightning.data import synthetic
from stl10_lightning.data.stl10_binary import FOLDER

CACHE = Path(__file__).resolve().parent / ".cache"


def synthetic_root(unlabeled: int, train: int = 5000, test: int = 1000) -> Path:
    """The folder that holds stl10_binary/ with these counts; 20,000 unlabeled take ~40 s to draw once."""
    root = CACHE / f"stl10_{train}_{test}_{unlabeled}"
    if not (root / FOLDER).exists():
        print(f"generating synthetic STL-10 into {root} (once)", flush=True)
    synthetic.ensure(root, train, test, unlabeled, seed=0)
    return root
