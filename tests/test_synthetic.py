import json
import subprocess
import sys

import numpy as np
import pytest

from stl10_lightning.common.errors import UserError
from stl10_lightning.data import synthetic
from stl10_lightning.data.stl10_binary import IMAGE_BYTES, STL10Binary


def test_generator_writes_the_official_layout(synthetic_root):
    folder = synthetic_root / "stl10_binary"
    counts = json.loads((folder / "synthetic.json").read_text())["counts"]
    for split, count in counts.items():
        assert (folder / f"{split}_X.bin").stat().st_size == count * IMAGE_BYTES
    for split in ("train", "test"):
        labels = np.fromfile(folder / f"{split}_y.bin", dtype=np.uint8)
        assert len(labels) == counts[split]
        assert np.bincount(labels, minlength=11)[1:].min() == counts[split] // 10  # balanced, 1..10
    assert len((folder / "class_names.txt").read_text().split()) == 10
    folds = (folder / "fold_indices.txt").read_text().splitlines()
    assert len(folds) == 10 and all(len(f.split()) == counts["train"] // 5 for f in folds)


def test_same_seed_same_bytes(tmp_path):
    for name in ("a", "b"):
        synthetic.generate(tmp_path / name, train=20, test=10, unlabeled=10, seed=3)
    for file in ("train_X.bin", "train_y.bin", "unlabeled_X.bin", "fold_indices.txt"):
        assert (tmp_path / "a/stl10_binary" / file).read_bytes() == (
            tmp_path / "b/stl10_binary" / file
        ).read_bytes()


def test_generate_never_overwrites_a_folder(synthetic_root):
    before = (synthetic_root / "stl10_binary" / "train_X.bin").stat().st_mtime_ns
    with pytest.raises(UserError, match="already exists"):
        synthetic.generate(synthetic_root, train=20)
    assert (synthetic_root / "stl10_binary" / "train_X.bin").stat().st_mtime_ns == before


def test_generate_refuses_counts_it_cannot_balance(tmp_path):
    with pytest.raises(UserError, match="need 10\\+ train"):
        synthetic.generate(tmp_path, train=0)
    assert not list(tmp_path.iterdir())


def test_ensure_generates_once_and_refuses_other_settings(tmp_path):
    folder = synthetic.ensure(tmp_path, train=20, test=10, unlabeled=10)
    written = folder.joinpath("train_X.bin").stat().st_mtime_ns
    synthetic.ensure(tmp_path, train=20, test=10, unlabeled=10)
    assert folder.joinpath("train_X.bin").stat().st_mtime_ns == written
    with pytest.raises(UserError, match="was generated with"):
        synthetic.ensure(tmp_path, train=30, test=10, unlabeled=10)
    assert not list(tmp_path.glob(".stl10_binary.*"))  # no staging folder left behind


def test_ensure_never_touches_a_real_download(tmp_path):
    (tmp_path / "stl10_binary").mkdir()
    with pytest.raises(UserError, match="is not a synthetic dataset"):
        synthetic.ensure(tmp_path, train=20, test=10, unlabeled=10)


def test_command_line_refuses_a_file_as_the_output_folder(tmp_path):
    out = tmp_path / "notes.txt"
    out.write_text("not a folder")
    cmd = [sys.executable, "-m", "stl10_lightning.data.synthetic", str(out), "--train", "20"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 2
    assert (
        done.stderr
        == f"error: {out} is a file, not a folder; give a folder to hold stl10_binary/ (new or existing)\n"
    )
    assert out.read_text() == "not a folder"


def test_command_line(tmp_path):
    cmd = [sys.executable, "-m", "stl10_lightning.data.synthetic", str(tmp_path), "--train", "20"]
    cmd += ["--test", "10", "--unlabeled", "10", "--seed", "1"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    assert "wrote synthetic STL-10" in out
    assert STL10Binary(tmp_path).counts == {"train": 20, "test": 10, "unlabeled": 10}
