import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from stl10_lightning.common.errors import UserError
from stl10_lightning.data import STL10DataModule
from stl10_lightning.stages.teacher import select
from stl10_lightning.train import train
from tests.helpers import REPO, raises_user_error


@pytest.fixture(scope="module")
def official_layout(tmp_path_factory) -> Path:
    """Files of the official sizes (sparse: no image data), to count the ratios of the real dataset."""
    folder = tmp_path_factory.mktemp("official") / "stl10_binary"
    folder.mkdir()
    for split, count in {"train": 5000, "test": 8000, "unlabeled": 100000}.items():
        with (folder / f"{split}_X.bin").open("wb") as f:
            f.truncate(count * 3 * 96 * 96)
        if split != "unlabeled":
            (np.arange(count) % 10 + 1).astype(np.uint8).tofile(folder / f"{split}_y.bin")
    (folder / "class_names.txt").write_text("\n".join(str(i) for i in range(10)) + "\n")
    return folder.parent


@pytest.mark.parametrize(("ratio", "count"), [(0.4, 2000), (1, 5000), (2, 10000), (10, 50000)])
def test_ratio_to_unlabeled_count_on_the_official_layout(official_layout, ratio, count):
    datamodule = STL10DataModule(str(official_layout), unlabeled_ratio=ratio, num_workers=0)
    subset = datamodule.unlabeled_set()
    assert len(subset) == count and subset.split == "unlabeled" and subset.labels is None
    again = STL10DataModule(str(official_layout), unlabeled_ratio=ratio, num_workers=0).unlabeled_set()
    assert np.array_equal(subset.indices, again.indices)  # seeded by data.seed
    assert len(np.unique(subset.indices)) == count


def test_smaller_ratios_take_subsets_of_larger_ones(official_layout):
    """A ratio sweep adds unlabeled images; it never swaps the ones a smaller ratio had."""

    def subset(**settings) -> np.ndarray:
        return STL10DataModule(str(official_layout), num_workers=0, **settings).unlabeled_set().indices

    nested = [subset(unlabeled_ratio=ratio) for ratio in (0.4, 1, 2, 10)]
    for smaller, larger in itertools.pairwise(nested):
        assert set(smaller) < set(larger)
    assert all(np.all(np.diff(indices) > 0) for indices in nested)  # sorted: the memmap reads in order
    assert np.array_equal(subset(unlabeled_count=2000), nested[0])  # a count is a prefix of the same order
    assert set(subset(unlabeled_ratio=1, seed=1)) != set(nested[1])  # data.seed picks another order


def test_ratio_errors(official_layout):
    with pytest.raises(UserError, match=r"ratio=21 asks for 105000 unlabeled images .* at most 20"):
        STL10DataModule(str(official_layout), unlabeled_ratio=21).unlabeled_set()
    too_few = (
        r"ratio=0.0001 gives 0.5 unlabeled images \(0.0001 x 5000 labeled\); use a ratio of at least 0.0002$"
    )
    with pytest.raises(UserError, match=too_few):
        STL10DataModule(str(official_layout), unlabeled_ratio=0.0001).unlabeled_set()
    assert len(STL10DataModule(str(official_layout), unlabeled_ratio=0.0002).unlabeled_set()) == 1
    with pytest.raises(UserError, match="ratio=-1 must be above 0"):
        STL10DataModule(str(official_layout), unlabeled_ratio=-1)
    with pytest.raises(UserError, match="not both"):
        STL10DataModule(str(official_layout), unlabeled_ratio=1, unlabeled_count=10)


def test_exactly_the_samples_at_or_above_the_threshold_are_kept():
    confidence = np.array([0.5, 0.99, 0.989999, 1.0, 0.995, 0.2])
    prediction = np.array([0, 1, 1, 2, 1, 0])
    assert select(confidence, prediction, 0.99).tolist() == [1, 3, 4]
    assert select(confidence, prediction, 1.0).tolist() == [3]
    # balanced: class 1 has two kept, class 2 one, so each class keeps its single most confident
    assert select(confidence, prediction, 0.99, balance=True).tolist() == [3, 4]


def test_student_data_is_labeled_plus_kept_with_pseudo_labels_as_targets(synthetic_root):
    datamodule = STL10DataModule(str(synthetic_root), val_size=100, num_workers=0, batch_size=2000)
    datamodule.setup()
    kept = np.array([0, 5, 7])
    datamodule.add_pseudo_labels(kept, np.array([3, 3, 9]))
    loader = datamodule.train_dataloader()
    assert len(loader.dataset) == 900 + 3
    images, labels, source = next(iter(loader))
    assert images.shape[0] == 903 and images.dtype == torch.uint8
    assert sorted(labels[source == 1].tolist()) == [3, 3, 9]
    unlabeled_images = datamodule.unlabeled_set().__getitems__(kept.tolist())
    pseudo_images = images[source == 1]
    assert all(any(torch.equal(p, u) for u in unlabeled_images) for p in pseudo_images)


def pseudo_cfg(make_cfg, teacher, *overrides):
    return make_cfg("stage=pseudo_label", f"pseudo.teacher={teacher}", "ratio=0.4", *overrides)


def test_student_trains_on_kept_images_and_records_them(finished_run, make_cfg, tmp_path):
    teacher_dir, teacher_metrics = finished_run
    metrics = train(pseudo_cfg(make_cfg, teacher_dir, "pseudo.threshold=0.9", "trainer.max_epochs=2"))
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["unlabeled_used"] == 400 and saved["ratio"] == 0.4 and saved["threshold"] == 0.9
    assert 0 < saved["kept"] <= 400 and sum(saved["kept_per_class"]) == saved["kept"]
    assert saved["teacher_val_acc"] == pytest.approx(teacher_metrics["val/acc"], abs=1e-6)
    assert 0 <= saved["val_precision"] <= 1 and saved["mode"] == "offline"
    assert saved["teacher"].endswith("best.ckpt") and "test/acc" in metrics


def test_a_student_can_teach_the_next_round(finished_run, make_cfg, tmp_path):
    """Iterative self-training is a chain of runs: a pseudo_label run is itself a teacher."""
    teacher_dir, _ = finished_run
    first = ["pseudo.threshold=0.9", "trainer.max_epochs=1", "+trainer.limit_train_batches=2"]
    train(pseudo_cfg(make_cfg, teacher_dir, *first, f"run_dir={tmp_path / 'round1'}"))
    train(pseudo_cfg(make_cfg, tmp_path / "round1", "pseudo.threshold=0.5", "debug=fast_dev_run"))
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["teacher"] == str(tmp_path / "round1" / "checkpoints" / "best.ckpt")


def test_zero_kept_warns_and_trains_on_labeled_only(finished_run, make_cfg, tmp_path, caplog):
    teacher_dir, _ = finished_run
    train(pseudo_cfg(make_cfg, teacher_dir, "pseudo.threshold=1.0", "debug=fast_dev_run"))
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["kept"] == 0 and "no unlabeled image reached confidence 1.0" in caplog.text


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["pseudo.threshold=0"],
            r"pseudo.threshold=0.0 is not allowed: it must be a finite number in \(0, 1\]",
        ),
        (
            ["pseudo.threshold=1.5"],
            r"pseudo.threshold=1.5 is not allowed: it must be a finite number in \(0, 1\]",
        ),
        (["pseudo.init=teacher", "backbone=resnet9"], "pseudo.init=teacher needs the teacher's backbone"),
        (["data.val_size=50"], "trained with another train/val split .*data.val_size=100"),
    ],
)
def test_bad_pseudo_settings(finished_run, make_cfg, overrides, message):
    teacher_dir, _ = finished_run
    with raises_user_error(message):
        train(pseudo_cfg(make_cfg, teacher_dir, "debug=fast_dev_run", *overrides))


def test_a_smoothed_teacher_cannot_reach_the_threshold(make_cfg, tmp_path):
    smoothed = ["model.label_smoothing=0.1", "trainer.max_epochs=1", "+trainer.limit_train_batches=1"]
    train(make_cfg(*smoothed, f"run_dir={tmp_path / 'smooth'}"))
    with raises_user_error("label smoothing 0.1, so its confidence stays below 0.910"):
        train(pseudo_cfg(make_cfg, tmp_path / "smooth", "debug=fast_dev_run"))


def test_a_barlow_twins_run_is_no_teacher(pretrained_run, make_cfg):
    run_dir, _ = pretrained_run
    with raises_user_error("not a checkpoint|not a classifier checkpoint"):
        train(pseudo_cfg(make_cfg, run_dir, "debug=fast_dev_run"))


def test_multirun_of_two_ratios_writes_two_folders(finished_run, synthetic_root, tmp_path):
    teacher_dir, _ = finished_run
    command = [
        sys.executable, "train.py", "-m", "stage=pseudo_label", "ratio=0.1,0.2",
        f"pseudo.teacher={teacher_dir}",
        f"data.root={synthetic_root}", "backbone=tiny", "data.image_size=32", "data.val_size=100",
        "data.num_workers=0", "trainer.accelerator=cpu", "callbacks.progress_bar=null", "debug=fast_dev_run",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
    ]  # fmt: skip
    subprocess.run(command, cwd=REPO, check=True, capture_output=True, timeout=300)
    results = sorted((tmp_path / "sweep").glob("*/metrics.json"))
    assert [p.parent.name for p in results] == ["0", "1"]
    assert [json.loads(p.read_text())["unlabeled_used"] for p in results] == [100, 200]


@pytest.mark.parametrize(("budget", "more_steps"), [("epochs", True), ("match_supervised", False)])
def test_the_student_budget_is_the_supervised_runs_steps_when_asked(
    finished_run, make_cfg, tmp_path, budget, more_steps
):
    """900 labeled train images at batch 64 give 14 steps an epoch; the kept images add more, unless
    pseudo.steps=match_supervised keeps the student at the supervised run's 14 an epoch."""
    settings = ["pseudo.threshold=0.5", "trainer.max_epochs=2", f"pseudo.steps={budget}"]
    train(pseudo_cfg(make_cfg, finished_run[0], *settings))
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["kept"] >= 64  # enough for at least one more batch an epoch
    assert (saved["steps"] > 2 * 14) == more_steps and saved["steps"] >= 2 * 14
