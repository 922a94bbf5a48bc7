"""Each bad input stops the run with one line that says what is wrong, and a non-zero exit."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from stl10_lightning.train import main

REPO = Path(__file__).resolve().parent.parent


def run_main(monkeypatch, capfd, tmp_path, *overrides: str) -> tuple[int, str]:
    """`python train.py OVERRIDES` in this process (a subprocess costs seconds of imports)."""
    tiny = ["backbone=tiny", "data.image_size=32", "data.num_workers=0", "trainer.accelerator=cpu"]
    argv = ["train.py", *tiny, f"hydra.run.dir={tmp_path / 'run'}", "callbacks.progress_bar=null", *overrides]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit_info:
        main()
    return exit_info.value.code, capfd.readouterr().err


def assert_one_line_error(stderr: str, pattern: str) -> None:
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, stderr
    assert re.search(pattern, errors[0]), errors[0]


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


@pytest.mark.parametrize(
    ("override", "message"), [("stage=nope", "stage/nope"), ("backbone=nope", "backbone/nope")]
)
def test_unknown_stage_or_backbone(monkeypatch, capfd, tmp_path, override, message):
    code, err = run_main(monkeypatch, capfd, tmp_path, override)
    assert code == 1  # Hydra's own message, with the available options
    assert f"Could not find '{message}'" in err and "Traceback" not in err
