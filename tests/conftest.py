from pathlib import Path

import pytest

from stl10_lightning.data import synthetic
from stl10_lightning.data.prepare import prepare
from stl10_lightning.train import train
from tests.helpers import PRETRAIN, PRETRAIN_EPOCHS, SYNTHETIC, compose_tiny
from tests.image_tree import write_image_tree


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("stl10")
    synthetic.generate(root, **SYNTHETIC)
    return root


@pytest.fixture
def make_cfg(synthetic_root, tmp_path):
    """compose_tiny with outputs in tmp_path/run."""

    def make(*overrides: str):
        return compose_tiny(synthetic_root, tmp_path / "run", *overrides)

    return make


@pytest.fixture(scope="session")
def pretrained_run(synthetic_root, tmp_path_factory):
    """A finished Barlow Twins run: (run folder, final metrics), shared by the probe and teacher tests."""
    run_dir = tmp_path_factory.mktemp("barlow_twins")
    metrics = train(compose_tiny(synthetic_root, run_dir, *PRETRAIN, f"trainer.max_epochs={PRETRAIN_EPOCHS}"))
    return run_dir, metrics


@pytest.fixture(scope="session")
def finished_run(synthetic_root, tmp_path_factory):
    """15 epochs of the tiny supervised model (~10 s): it learns the synthetic shapes to ~60% (chance
    is 10%), confident enough to serve as a pseudo-label teacher."""
    run_dir = tmp_path_factory.mktemp("run")
    cfg = compose_tiny(
        synthetic_root,
        run_dir,
        "trainer.max_epochs=15",
        "optimizer=adamw",  # converges in fewer steps than SGD on this tiny budget
        "model.augment.cutout=0",
        "model.warmup_epochs=1",
    )
    return run_dir, train(cfg)


@pytest.fixture(scope="session")
def image_tree(tmp_path_factory) -> Path:
    """Image folders as users have them (tests/image_tree.py): 3 classes, one corrupt file."""
    return write_image_tree(tmp_path_factory.mktemp("images") / "src")


@pytest.fixture(scope="session")
def prepared_root(image_tree, tmp_path_factory) -> Path:
    """`image_tree` through stl10-prepare at 40 px (not STL-10's 96), decoded by 2 worker processes."""
    out = tmp_path_factory.mktemp("prepared") / "out"
    prepare(out, image_tree, size=40, workers=2)
    return out
