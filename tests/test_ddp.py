"""`trainer=ddp` with two gloo processes on CPU, for every stage, as users start it: `python train.py`.

Lightning starts rank 1 by running train.py again; both ranks must share one run folder (and, in a
sweep, one sweep folder), and only rank 0 writes results. Evaluation counts every val and test image
exactly once, also when the processes cannot share a split evenly.
"""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

from stl10_lightning.data import STL10DataModule, synthetic
from stl10_lightning.data.transforms import eval_transform
from stl10_lightning.models.backbone_file import read_backbone
from stl10_lightning.monitoring.knn import knn_predict
from stl10_lightning.train import train
from tests.helpers import REPO, compose_tiny, stage_inputs

pytestmark = pytest.mark.slow


# One epoch of one step, then whole val and test splits (fast_dev_run evaluates one batch of each).
ONE_STEP = ["trainer.max_epochs=1", "+trainer.limit_train_batches=1", "data.num_workers=0", "logger=none"]


def train_ddp(cwd: Path, root: Path, *overrides: str, sweep: bool = False, fast_dev_run: bool = True) -> None:
    """`python train.py trainer=ddp ...` (2 processes) in `cwd`, so its outputs/ lands there."""
    command = [
        sys.executable, str(REPO / "train.py"), *(["-m"] if sweep else []),
        "trainer=ddp", "trainer.accelerator=cpu", *(["debug=fast_dev_run"] if fast_dev_run else ONE_STEP),
        f"data.root={root}", "backbone=tiny", "data.image_size=32", "data.val_size=100", "data.batch_size=64",
        "callbacks.progress_bar=null", *overrides,
    ]  # fmt: skip
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]


def only_folder(parent: Path) -> Path:
    folders = list(parent.iterdir())
    assert len(folders) == 1, folders
    return folders[0]


def rank_logs(run_dir: Path) -> tuple[str, str]:
    """The logs of rank 0 (Hydra's train.log) and rank 1 (named by Lightning's launcher)."""
    return (run_dir / "train.log").read_text(), (run_dir / "train_ddp_process_1.log").read_text()


def logged_metrics(log: str) -> dict:
    line = next(line for line in log.splitlines() if "- metrics: " in line)
    return ast.literal_eval(line.split("- metrics: ", 1)[1])


def assert_one_finished_run_of_two_ranks(run_dir: Path) -> dict:
    for log in rank_logs(run_dir):
        assert f"run folder: {run_dir}" in log
    assert not list(run_dir.glob(".*.tmp"))
    return json.loads((run_dir / "metrics.json").read_text())


def test_a_sweep_under_ddp_writes_one_folder_per_job(synthetic_root, tmp_path):
    train_ddp(tmp_path, synthetic_root, "seed=1,2", sweep=True)
    sweep = only_folder(tmp_path / "outputs" / "supervised")  # rank 1 started no sweep of its own
    assert sorted(path.name for path in sweep.iterdir() if path.is_dir()) == ["0", "1"]
    for job, seed in [("0", 1), ("1", 2)]:
        metrics = assert_one_finished_run_of_two_ranks(sweep / job)
        assert metrics["seed"] == seed and "test/acc" in metrics
        # metrics.json holds rank 0's numbers (val/loss is each rank's own mean)
        assert round(metrics["val/loss"], 4) == logged_metrics(rank_logs(sweep / job)[0])["val/loss"]


@pytest.fixture(scope="module")
def odd_root(tmp_path_factory) -> Path:
    """Splits that 2 processes cannot share evenly. With ODD, rank 0 gets 52 val images in batches of 50
    and 2, rank 1 gets 51 in 50 and 1 (a batch of one has no Barlow Twins val loss, so rank 0 computes
    one loss more), and of the 201 test images rank 0 gets 101 in 3 batches and rank 1 100 in 2."""
    root = tmp_path_factory.mktemp("odd")
    synthetic.generate(root, train=300, test=201, unlabeled=256, seed=0)
    return root


ODD = ["data.val_size=103", "data.eval_batch_size=50"]


def counting(path: Path) -> list[str]:
    return [
        "+callbacks.count._target_=tests.evaluation_counts.CountEvaluatedImages",
        f"+callbacks.count.path={path}",
    ]


def test_supervised_under_ddp_evaluates_each_val_and_test_image_once(odd_root, tmp_path):
    train_ddp(tmp_path, odd_root, *ODD, *counting(tmp_path / "counts.json"), fast_dev_run=False)
    metrics = assert_one_finished_run_of_two_ranks(only_folder(tmp_path / "outputs" / "supervised"))
    assert {"val/acc", "test/acc"} <= metrics.keys()
    counts = json.loads((tmp_path / "counts.json").read_text())
    assert counts == {"fit": 103, "validate": 103, "test": 201, "test_confusion": 201}


def test_barlow_twins_under_ddp_scores_knn_on_the_whole_val_split(odd_root, tmp_path):
    inputs = stage_inputs("barlow_twins", None, tmp_path)
    train_ddp(
        tmp_path, odd_root, "stage=barlow_twins", *inputs, *ODD, *counting(tmp_path / "counts.json"),
        "model.knn_k=[100,20]", fast_dev_run=False,  # k up to the 197 labeled train images
    )  # fmt: skip
    run_dir = only_folder(tmp_path / "outputs" / "barlow_twins")
    metrics = assert_one_finished_run_of_two_ranks(run_dir)
    assert json.loads((tmp_path / "counts.json").read_text()) == {"fit": 103, "validate": 103}
    # Each rank validated its share of val; the kNN score must be the one of all 103 val images, against
    # a bank of all 197 labeled train images.
    config, weights, _ = read_backbone(run_dir / "backbone.pt")
    backbone = instantiate(config)
    backbone.load_state_dict(weights)
    datamodule = STL10DataModule(str(odd_root), image_size=32, val_size=103, num_workers=0)
    datamodule.setup()
    transform = eval_transform(32)

    def features(loader) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            pairs = [(backbone.eval()(transform(images)), labels) for images, labels in loader]
        return torch.cat([f for f, _ in pairs]), torch.cat([label for _, label in pairs])

    bank, bank_labels = features(datamodule.labeled_eval_dataloader())
    val, val_labels = features(datamodule.val_dataloader())
    assert (len(bank), len(val)) == (197, 103)
    predictions = knn_predict(val, bank, bank_labels, 100, 0.07, 10)
    assert metrics["knn/acc"] == pytest.approx((predictions == val_labels).float().mean().item(), abs=1e-6)


def test_linear_probe_under_ddp(synthetic_root, tmp_path):
    train_ddp(tmp_path, synthetic_root, "stage=linear_probe", *stage_inputs("linear_probe", None, tmp_path))
    metrics = assert_one_finished_run_of_two_ranks(only_folder(tmp_path / "outputs" / "linear_probe"))
    assert {"val/acc", "test/acc"} <= metrics.keys()


@pytest.fixture(scope="module")
def teacher(synthetic_root, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("teacher")
    train(compose_tiny(synthetic_root, run_dir, "trainer.max_epochs=1", "+trainer.limit_train_batches=3"))
    return run_dir


def test_pseudo_label_under_ddp_labels_the_same_images_on_every_rank(synthetic_root, teacher, tmp_path):
    train_ddp(
        tmp_path, synthetic_root, "stage=pseudo_label", *stage_inputs("pseudo_label", (teacher,), tmp_path)
    )
    run_dir = only_folder(tmp_path / "outputs" / "pseudo_label")
    metrics = assert_one_finished_run_of_two_ranks(run_dir)
    labeled = [
        next(line for line in log.splitlines() if "pseudo-labels: " in line) for log in rank_logs(run_dir)
    ]
    assert labeled[0].split(" - ", 1)[1] == labeled[1].split(" - ", 1)[1]
    assert f"'kept': {metrics['kept']}," in labeled[0] and metrics["unlabeled_used"] == 200


def test_online_pseudo_label_under_ddp_counts_the_masked_labels_of_both_ranks(synthetic_root, tmp_path):
    # All pass at 1/10 when one threshold is used: class-balanced selection would cap the classes.
    online = [
        "pseudo=online",
        "ratio=0.2",
        "pseudo.mu=2",
        "pseudo.threshold=0.1",
        "pseudo.class_balanced=false",
    ]
    train_ddp(tmp_path, synthetic_root, "stage=pseudo_label", *online)
    metrics = assert_one_finished_run_of_two_ranks(only_folder(tmp_path / "outputs" / "pseudo_label"))
    assert metrics["mode"] == "online" and metrics["mask_rate_by_epoch"] == [1.0]
    assert sum(metrics["masked_per_class_last_epoch"]) == 2 * 2 * 64  # ranks x mu x batch
