import json
import os
from pathlib import Path

import pytest
import torch
from filelock import FileLock

from stl10_lightning.data import synthetic
from stl10_lightning.data.prepare import prepare
from stl10_lightning.train import train
from tests.helpers import PRETRAIN, PRETRAIN_EPOCHS, SYNTHETIC, compose_tiny
from tests.image_tree import write_image_tree


def usable_cores() -> int:
    """The cores this process may run on, as pytest-xdist counts them."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def pytest_xdist_auto_num_workers(config):
    """`-n auto` (`make test`): one worker more than cores, up to 4. While a worker waits on a process its
    test started, the others keep the cores busy: on 2 cores, 3 workers ran the suite in 769 s and 2
    workers in 883 to 929 s."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None  # xdist's own setting decides
    return min(usable_cores() + 1, 4)


def pytest_configure(config):
    """Under pytest-xdist, share the cores among the workers: each worker's torch (and every process a
    test starts) would otherwise use one thread per core, and the workers' threads would contend."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        threads = max(1, usable_cores() // workers)
        os.environ["OMP_NUM_THREADS"] = str(threads)
        torch.set_num_threads(threads)


def pytest_collection_modifyitems(items):
    """The longest tests first. Under pytest-xdist a test of several minutes that starts last keeps
    one worker busy after the others have finished. `slow(seconds=N)` gives a test's measured length.
    Tests that use `pretrained_run` count 100 s more: whichever starts first trains the Barlow Twins run."""

    def expected_seconds(item) -> float:
        slow = item.get_closest_marker("slow")
        own = 0 if slow is None else slow.kwargs.get("seconds", 20)
        return own + (100 if "pretrained_run" in item.fixturenames else 0)

    items.sort(key=expected_seconds, reverse=True)  # stable: file order among equals


def built_once(tmp_path_factory, name: str, build):
    """(folder, build(folder)) for a session fixture, built once per pytest run.

    pytest-xdist gives each worker its own session fixtures, so a Barlow Twins run that takes minutes
    would run once per worker. Under xdist the first worker to ask builds it into the run's shared
    temporary folder, under a file lock, and leaves build's JSON result beside it for the others."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        folder = tmp_path_factory.mktemp(name)
        return folder, build(folder)
    shared = tmp_path_factory.getbasetemp().parent  # this run's folder; each worker has one below it
    folder, result = shared / name, shared / f"{name}.json"
    with FileLock(shared / f"{name}.lock"):
        if result.exists():
            return folder, json.loads(result.read_text())
        if folder.exists():
            pytest.fail(f"building {name} failed in another worker; its error is reported there")
        folder.mkdir()
        value = build(folder)
        result.write_text(json.dumps(value))
        return folder, value


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    def generate(root: Path) -> None:
        synthetic.generate(root, **SYNTHETIC)

    return built_once(tmp_path_factory, "stl10", generate)[0]


@pytest.fixture
def make_cfg(synthetic_root, tmp_path):
    """compose_tiny with outputs in tmp_path/run."""

    def make(*overrides: str):
        return compose_tiny(synthetic_root, tmp_path / "run", *overrides)

    return make


@pytest.fixture(scope="session")
def pretrained_run(synthetic_root, tmp_path_factory):
    """A finished Barlow Twins run: (run folder, final metrics), shared by the probe and teacher tests."""
    return built_once(
        tmp_path_factory,
        "barlow_twins",
        lambda run_dir: train(
            compose_tiny(synthetic_root, run_dir, *PRETRAIN, f"trainer.max_epochs={PRETRAIN_EPOCHS}")
        ),
    )


@pytest.fixture(scope="session")
def finished_run(synthetic_root, tmp_path_factory):
    """15 epochs of the tiny supervised model: it learns the synthetic shapes to ~60% (chance
    is 10%), confident enough to serve as a pseudo-label teacher."""
    settings = [
        "trainer.max_epochs=15",
        "optimizer=adamw",  # converges in fewer steps than SGD on this tiny budget
        "model.augment.cutout=0",
        "model.warmup_epochs=1",
    ]
    return built_once(
        tmp_path_factory, "run", lambda run_dir: train(compose_tiny(synthetic_root, run_dir, *settings))
    )


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
