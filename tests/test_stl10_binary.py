import json
import shutil
from urllib.error import URLError

import numpy as np
import pytest
import torchvision

from stl10_lightning.common.errors import UserError
from stl10_lightning.data import stl10_binary
from stl10_lightning.data.stl10_binary import IMAGE_BYTES, STL10Binary, to_upright


def write_folder(root, images: np.ndarray, labels: np.ndarray, manifest: dict | None = None):
    """A one-split folder written byte by byte from the format's definition, not from our generator.

    Without `manifest`, a synthetic.json gives the counts (96 px images); with it, a prepared folder's
    manifest.json, to which the counts are added.
    """
    folder = root / "stl10_binary"
    folder.mkdir(parents=True)
    n, side = len(images), images.shape[-1]
    raw = np.zeros(n * 3 * side * side, dtype=np.uint8)
    for i in range(n):
        for c in range(3):
            for x in range(side):  # column-major: x (the column) runs slowest, y (the row) fastest
                start = (i * 3 + c) * side * side + x * side
                raw[start : start + side] = images[i, c, :, x]
    raw.tofile(folder / "train_X.bin")
    labels.astype(np.uint8).tofile(folder / "train_y.bin")
    counts = {"train": n, "test": 0, "unlabeled": 0}
    if manifest is None:
        (folder / "synthetic.json").write_text(json.dumps({"counts": counts}))
    else:
        (folder / "manifest.json").write_text(json.dumps({**manifest, "counts": counts}))
    return folder


PREPARED = {
    "format": 1,
    "image_size": 24,
    "class_names": ["hot air balloon", "kite", "sail boat"],
    "mean": [0.5, 0.4, 0.3],
    "std": [0.2, 0.25, 0.3],
}


def test_known_pattern_comes_back_upright(tmp_path):
    upright = np.zeros((2, 3, 96, 96), dtype=np.uint8)
    upright[0, 0, :10, :] = 255  # red band along the top
    upright[1, 1, :, :10] = 200  # green band down the left side
    write_folder(tmp_path, upright, np.array([1, 10]))
    binary = STL10Binary(tmp_path)
    images = to_upright(binary.images("train")[:])
    assert images.shape == (2, 3, 96, 96)
    assert images[0, 0, :10].min() == 255 and images[0, 0, 10:].max() == 0
    assert images[1, 1, :, :10].min() == 200 and images[1, 1, :, 10:].max() == 0
    assert binary.labels("train").tolist() == [0, 9]


def test_prepared_folder_has_its_own_side_classes_and_statistics(tmp_path):
    upright = np.zeros((3, 3, 24, 24), dtype=np.uint8)
    upright[0, 2, :5, :] = 255  # blue band along the top
    upright[2, 0, :, :7] = 90  # red band down the left side
    write_folder(tmp_path, upright, np.array([3, 1, 2]), PREPARED)
    binary = STL10Binary(tmp_path)
    images = to_upright(binary.images("train")[:])
    assert images.shape == (3, 3, 24, 24)
    assert images[0, 2, :5].min() == 255 and images[0, 2, 5:].max() == 0
    assert images[2, 0, :, :7].min() == 90 and images[2, 0, :, 7:].max() == 0
    assert binary.labels("train").tolist() == [2, 0, 1]
    assert binary.class_names() == ["hot air balloon", "kite", "sail boat"]
    assert (binary.mean, binary.std) == (PREPARED["mean"], PREPARED["std"])
    assert stl10_binary.settings_from_data(tmp_path) == {
        "num_classes": 3,
        "mean": [0.5, 0.4, 0.3],
        "std": [0.2, 0.25, 0.3],
    }
    with pytest.raises(UserError, match=r"labels from 1 to 4, expected 1..3"):
        (tmp_path / "stl10_binary" / "train_y.bin").write_bytes(bytes([1, 4, 2]))
        binary.labels("train")
    with pytest.raises(UserError, match=r"data.fold=0 picks one of STL-10's official folds.*data.fold=null"):
        binary.fold(0)


def test_without_a_manifest_the_stages_get_stl10s_settings(synthetic_root, tmp_path):
    stl10 = {"num_classes": 10, "mean": list(stl10_binary.STL10_MEAN), "std": list(stl10_binary.STL10_STD)}
    assert stl10_binary.settings_from_data(synthetic_root) == stl10
    assert stl10_binary.settings_from_data(tmp_path / "not there yet") == stl10


def test_a_broken_manifest_is_one_line(tmp_path):
    write_folder(tmp_path, np.zeros((1, 3, 24, 24), np.uint8), np.array([1]), PREPARED)
    (tmp_path / "stl10_binary" / "manifest.json").write_text('{"format": 1, "counts": {}}')
    with pytest.raises(
        UserError, match=r"manifest.json is not a manifest of format 1 \(missing \['image_size'"
    ):
        STL10Binary(tmp_path)


def test_class_names_are_read_by_line(synthetic_root, tmp_path):
    shutil.copytree(synthetic_root / "stl10_binary", tmp_path / "stl10_binary")
    names = [f"class number {i}" for i in range(10)]
    (tmp_path / "stl10_binary" / "class_names.txt").write_text("\n".join(names) + "\n\n")
    assert STL10Binary(tmp_path).class_names() == names


def test_images_and_labels_match_torchvision(synthetic_root):
    class NoChecksumSTL10(torchvision.datasets.STL10):
        def _check_integrity(self):  # synthetic files have other md5 sums than the real ones
            return True

    reference = NoChecksumSTL10(str(synthetic_root), split="test")
    binary = STL10Binary(synthetic_root)
    np.testing.assert_array_equal(to_upright(binary.images("test")[:]), reference.data)
    np.testing.assert_array_equal(binary.labels("test"), reference.labels)


def test_missing_folder_says_where_to_put_it(tmp_path):
    with pytest.raises(UserError, match=r"stl10_binary does not exist; put the extracted STL-10 folder"):
        STL10Binary(tmp_path)


def test_truncated_file_names_file_and_expected_size(synthetic_root, tmp_path):
    shutil.copytree(synthetic_root / "stl10_binary", tmp_path / "stl10_binary")
    path = tmp_path / "stl10_binary" / "train_X.bin"
    expected = path.stat().st_size
    with path.open("r+b") as f:
        f.truncate(expected - 100)
    with pytest.raises(UserError, match=rf"train_X.bin has {expected - 100} bytes, expected {expected}"):
        STL10Binary(tmp_path).images("train")


def test_real_folder_without_manifest_expects_official_sizes(synthetic_root, tmp_path):
    shutil.copytree(synthetic_root / "stl10_binary", tmp_path / "stl10_binary")
    (tmp_path / "stl10_binary" / "synthetic.json").unlink()
    with pytest.raises(UserError, match=rf"expected {100_000 * IMAGE_BYTES}"):
        STL10Binary(tmp_path).images("unlabeled")


def test_labels_out_of_range_are_refused(tmp_path):
    write_folder(tmp_path, np.zeros((2, 3, 96, 96), np.uint8), np.array([0, 11]))
    with pytest.raises(UserError, match=r"labels from 0 to 11, expected 1..10"):
        STL10Binary(tmp_path).labels("train")


def test_offline_download_fails_with_one_clear_line(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr("torchvision.datasets.utils.download_and_extract_archive", offline)
    with pytest.raises(
        UserError,
        match=r"could not download STL-10 .*name resolution.*extract it so that .*stl10_binary/ exists",
    ):
        stl10_binary.download(tmp_path)


def test_download_skips_an_existing_folder(synthetic_root, monkeypatch):
    monkeypatch.setattr("torchvision.datasets.utils.download_and_extract_archive", pytest.fail)
    stl10_binary.download(synthetic_root)
