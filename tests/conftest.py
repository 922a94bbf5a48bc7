import re
from contextlib import contextmanager
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from stl10_lightning.common.errors import UserError, find_cause
from stl10_lightning.data import synthetic
from stl10_lightning.train import CONFIG_DIR, train

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


# Barlow Twins on CPU: small enough for the suite; long enough that the kNN accuracy beats random init.
PRETRAIN = [
    "stage=barlow_twins",
    "optimizer=adam",  # lr 1e-3 learns in fewer steps than LARS warming up over a short run
    "model.projector=512-512",
    "model.warmup_epochs=1",
    "model.monitor_every_n_epochs=4",
    "model.embedding_points=100",
    "data.train_on=train+unlabeled",
    # 20 steps an epoch: at 128 (10 steps) the kNN margin over random init was 0.04-0.10 over seeds 0-2
    "data.batch_size=64",
    "trainer.log_every_n_steps=2",
]
PRETRAIN_EPOCHS = 16


@pytest.fixture(scope="session")
def pretrained_run(synthetic_root, tmp_path_factory):
    """A finished Barlow Twins run: (run folder, final metrics), shared by the probe and teacher tests."""
    run_dir = tmp_path_factory.mktemp("barlow_twins")
    metrics = train(compose_tiny(synthetic_root, run_dir, *PRETRAIN, f"trainer.max_epochs={PRETRAIN_EPOCHS}"))
    return run_dir, metrics


@contextmanager
def raises_user_error(pattern: str):
    """Like pytest.raises(UserError, match=...), also when Hydra's instantiate wraps the error."""
    with pytest.raises(Exception) as info:
        yield
    error = find_cause(info.value, UserError)
    assert error is not None, info.value
    assert re.search(pattern, str(error)), str(error)


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
