from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from stl10_lightning.data import synthetic
from stl10_lightning.train import CONFIG_DIR

# Small enough to generate in about a second, large enough for a tiny CNN to learn the shapes.
SYNTHETIC = {"train": 1000, "test": 300, "unlabeled": 400, "seed": 0}


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("stl10")
    synthetic.generate(root, **SYNTHETIC)
    return root


def compose_tiny(root: Path, run_dir: Path, *overrides: str):
    """The real composed config, set for a tiny, fast CPU run on synthetic data."""
    base = [
        f"data.root={root}",
        f"run_dir={run_dir}",
        "backbone=tiny",
        "data.image_size=32",
        "data.val_size=100",
        "data.batch_size=64",
        "data.num_workers=0",
        "trainer.accelerator=cpu",
        "callbacks.progress_bar=null",
    ]
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return compose("train", overrides=[*base, *overrides])


@pytest.fixture
def make_cfg(synthetic_root, tmp_path):
    """compose_tiny with outputs in tmp_path/run."""

    def make(*overrides: str):
        return compose_tiny(synthetic_root, tmp_path / "run", *overrides)

    return make
