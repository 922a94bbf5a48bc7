"""Each bad input stops the run with one line that says what is wrong, and a non-zero exit."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from stl10_lightning.models import TinyNet
from stl10_lightning.models.backbone_file import save_backbone
from stl10_lightning.train import train
from tests.helpers import REPO, assert_one_line_error, compose_tiny, run_main


@pytest.fixture
def copied_root(synthetic_root, tmp_path) -> Path:
    shutil.copytree(synthetic_root / "stl10_binary", tmp_path / "data" / "stl10_binary")
    return tmp_path / "data"


def test_missing_data_folder_from_the_command_line(tmp_path):
    cmd = [
        sys.executable,
        "train.py",
        f"data.root={tmp_path / 'nowhere'}",
        f"hydra.run.dir={tmp_path / 'run'}",
    ]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert_one_line_error(done.stderr, r"STL-10 not found: .*nowhere/stl10_binary does not exist; put the")
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_truncated_bin_file(monkeypatch, capfd, tmp_path, copied_root):
    path = copied_root / "stl10_binary" / "test_X.bin"
    size = path.stat().st_size
    with path.open("r+b") as f:
        f.truncate(size // 2)
    code, err = run_main(monkeypatch, capfd, tmp_path, f"data.root={copied_root}")
    assert code == 2
    assert_one_line_error(err, rf"test_X.bin has {size // 2} bytes, expected {size}")


def test_labels_out_of_range(monkeypatch, capfd, tmp_path, copied_root):
    path = copied_root / "stl10_binary" / "train_y.bin"
    labels = np.fromfile(path, dtype=np.uint8)
    labels[7] = 0
    labels.tofile(path)
    code, err = run_main(monkeypatch, capfd, tmp_path, f"data.root={copied_root}")
    assert code == 2
    assert_one_line_error(err, r"train_y.bin has labels from 0 to 10, expected 1..10")


def test_val_size_as_large_as_the_labeled_set(monkeypatch, capfd, tmp_path, synthetic_root):
    code, err = run_main(monkeypatch, capfd, tmp_path, f"data.root={synthetic_root}", "data.val_size=5000")
    assert code == 2
    assert_one_line_error(err, r"data.val_size=5000 must be between 1 and 999")


def test_missing_checkpoint(monkeypatch, capfd, tmp_path, synthetic_root):
    code, err = run_main(monkeypatch, capfd, tmp_path, f"data.root={synthetic_root}", "ckpt_path=nope.ckpt")
    assert code == 2
    assert_one_line_error(err, r"ckpt_path=nope.ckpt does not exist")


def lightning_checkpoint(path: Path, **changes) -> Path:
    """A file in the layout of a supervised stage's Lightning checkpoint, with `changes` applied."""
    hparams = dict.fromkeys(
        ["backbone", "optimizer", "num_classes", "image_size", "schedule", "warmup_epochs", "label_smoothing"]
    )
    checkpoint = {
        "state_dict": {"head.weight": torch.zeros(10, 32)},
        "epoch": 0,
        "global_step": 10,
        "loops": {},
        "pytorch-lightning_version": "2.6.6",
        "hyper_parameters": {**hparams, "augment": {}},
        **changes,
    }
    torch.save(checkpoint, path)
    return path


def truncated(path: Path) -> Path:
    with path.open("r+b") as f:
        f.truncate(path.stat().st_size // 2)
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda p: truncated(lightning_checkpoint(p)),
            r"cannot read ckpt_path=.*last.ckpt \(RuntimeError\): the file is",
        ),
        (
            lambda p: (
                save_backbone(p, {"_target_": "stl10_lightning.models.TinyNet", "width": 32}, TinyNet()) or p
            ),
            r"last.ckpt is not a Lightning training checkpoint \(weights such as backbone.pt",
        ),
        (
            lambda p: lightning_checkpoint(p, **{"pytorch-lightning_version": "3.0.0"}),
            r"was written by Lightning 3.0.0, newer than this install",
        ),
        (
            lambda p: lightning_checkpoint(
                p, hyper_parameters={"backbone": {}, "projector": "64", "lambd": 0.005}
            ),
            r"holds another model than stage=supervised builds \(settings \['lambd', 'projector'\]",
        ),
    ],
    ids=["truncated", "a backbone file", "newer Lightning", "another stage"],
)
def test_unusable_checkpoints_to_resume(monkeypatch, capfd, tmp_path, synthetic_root, make, message):
    ckpt = make(tmp_path / "last.ckpt")
    code, err = run_main(monkeypatch, capfd, tmp_path, f"data.root={synthetic_root}", f"ckpt_path={ckpt}")
    assert code == 2
    assert_one_line_error(err, message)
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_an_output_folder_that_cannot_be_created(monkeypatch, capfd, tmp_path, synthetic_root):
    """A path under a file: refused for root too, which writes into folders whatever their mode."""
    (tmp_path / "file").write_text("")
    code, err = run_main(
        monkeypatch, capfd, tmp_path, f"data.root={synthetic_root}", f"hydra.run.dir={tmp_path}/file/run"
    )
    assert code == 2
    assert_one_line_error(
        err, r"cannot create the output folder .*file/run: .*file is not a folder; set hydra.run.dir="
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_an_output_folder_without_write_permission(monkeypatch, capfd, tmp_path, synthetic_root):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    code, err = run_main(
        monkeypatch, capfd, tmp_path, f"data.root={synthetic_root}", f"hydra.run.dir={locked}/run"
    )
    assert code == 2
    assert_one_line_error(err, r"cannot create the output folder .*locked/run: .*locked is not writable")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        pytest.param(
            ["trainer.accelerator=gpu"],
            r"the trainer settings do not fit this machine: No supported gpu backend found!",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU"),
            id="accelerator=gpu without a GPU",
        ),
        pytest.param(
            ["trainer.devices=4096"],
            r"trainer.devices=4096 asks for 4096 CPU processes on a machine with \d+ cores; use at most",
            id="more CPU devices than cores",
        ),
        pytest.param(
            ["backbone=resnet9", "data.image_size=4"],
            r"data.image_size=4 is too small for backbone resnet9\(width=64\) \(.*\); use a larger size",
            id="image too small for the backbone",
        ),
        pytest.param(
            ["stage=pseudo_label", "pseudo.threshold=1.5"],
            r"pseudo.threshold=1.5 is not allowed: it must be a finite number in \(0, 1\]",
            id="threshold outside (0, 1]",
        ),
        pytest.param(
            ["stage=pseudo_label", "pseudo=sometimes"],
            r"pseudo=sometimes is not an option; choose one of offline, online",
            id="unknown pseudo-label mode",
        ),
        pytest.param(
            ["stage=pseudo_label", "pseudo=online", "pseudo.mu=0"],
            r"pseudo.mu=0 is not allowed: it must be a whole number >= 1",
            id="mu below 1",
        ),
        pytest.param(
            ["stage=pseudo_label", "pseudo=online", "pseudo.threshold=0"],
            r"pseudo.threshold=0.0 is not allowed: it must be a finite number in \(0, 1\]",
            id="online threshold outside (0, 1]",
        ),
        pytest.param(
            [
                "stage=pseudo_label",
                "pseudo=online",
                "ratio=0.2",
                "pseudo.init_backbone=nowhere/backbone.pt",
            ],
            r"nowhere/backbone.pt does not exist; give a backbone.pt, a .ckpt file or a run folder",
            id="init backbone missing",
        ),
        pytest.param(
            ["stage=pseudo_label", "pseudo=online", "ratio=0.0001"],
            r"ratio=0.0001 gives 0.1 unlabeled images \(0.0001 x 1000 labeled\); use a ratio of at least "
            r"0.001$",
            id="ratio below one unlabeled image",
        ),
        pytest.param(
            ["data.unlabeled_count=0"],
            r"data.unlabeled_count=0 is not allowed: it must be a whole number >= 1, or null",
            id="unlabeled count of 0",
        ),
        pytest.param(
            ["model.ema=1.0"],
            r"model.ema=1.0 is not allowed: it must be a finite number in \[0, 1\), or null",
            id="EMA decay outside [0, 1)",
        ),
        pytest.param(
            ["stage=barlow_twins", "model.projector=8192-x"],
            r"model.projector='8192-x' is not a list of layer widths",
            id="projector that does not parse",
        ),
        pytest.param(
            ["stage=barlow_twins", "model.projector=64-64", "data.batch_size=1"],
            r"data.batch_size=1: Barlow Twins normalizes each view over the batch, which needs at least 2",
            id="Barlow Twins batch of one",
        ),
        pytest.param(
            ["stage=linear_probe", "probe.backbone=nowhere/backbone.pt"],
            r"nowhere/backbone.pt does not exist; give a backbone.pt, a .ckpt file or a run folder",
            id="probe.backbone missing",
        ),
    ],
)
def test_settings_refused_at_startup(monkeypatch, capfd, tmp_path, synthetic_root, overrides, message):
    code, err = run_main(
        monkeypatch, capfd, tmp_path, f"data.root={synthetic_root}", "debug=fast_dev_run", *overrides
    )
    assert code == 2
    assert_one_line_error(err, message)
    assert not (tmp_path / "run" / "metrics.json").exists()


@pytest.fixture(scope="module")
def teacher(synthetic_root, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("teacher")
    train(compose_tiny(synthetic_root, run_dir, "trainer.max_epochs=1", "+trainer.limit_train_batches=2"))
    return run_dir


def test_a_ratio_above_the_unlabeled_images(monkeypatch, capfd, tmp_path, synthetic_root, teacher):
    pseudo = ["stage=pseudo_label", f"pseudo.teacher={teacher}", "data.val_size=100", "debug=fast_dev_run"]
    code, err = run_main(monkeypatch, capfd, tmp_path, f"data.root={synthetic_root}", *pseudo, "ratio=1")
    assert code == 2
    assert_one_line_error(
        err, r"ratio=1 asks for 1000 unlabeled images \(1 x 1000 labeled\) but the dataset has 400"
    )
    assert not (tmp_path / "run" / "metrics.json").exists()


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs Linux's /dev/full")
def test_a_full_disk(monkeypatch, capfd, tmp_path, synthetic_root):
    """Writes to /dev/full fail as on a full disk (the real thing by hand: docs/bad-input.md)."""
    (tmp_path / "run").mkdir()
    # config.yaml is the run's first file, written through this temporary name (common/atomic.py)
    (tmp_path / "run" / f".config.yaml.{os.getpid()}.tmp").symlink_to("/dev/full")
    code, err = run_main(monkeypatch, capfd, tmp_path, f"data.root={synthetic_root}", "debug=fast_dev_run")
    assert code == 2
    assert_one_line_error(err, r"no space left to write .*run; free some space")
    assert not (tmp_path / "run" / "metrics.json").exists()
