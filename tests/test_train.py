import json
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from stl10_lightning.train import train
from tests.conftest import compose_tiny

STAGES = ["supervised"]


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_fast_dev_run_every_stage(make_cfg, stage, precision):
    metrics = train(make_cfg(f"stage={stage}", "debug=fast_dev_run", f"trainer.precision={precision}"))
    assert {"val/acc", "val/f1", "test/acc", "test/f1"} <= metrics.keys()


@pytest.fixture(scope="module")
def finished_run(synthetic_root, tmp_path_factory):
    """15 epochs of the tiny model (~8 s): it learns the synthetic shapes to ~60% (chance is 10%)."""
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


def test_run_folder_is_complete(finished_run):
    run_dir, metrics = finished_run
    assert (run_dir / "config.yaml").read_text().count("${") == 0  # resolved
    assert {p.name for p in (run_dir / "checkpoints").iterdir()} == {"best.ckpt", "last.ckpt"}
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert saved["epochs"] == 15 and saved["best_checkpoint"].endswith("best.ckpt")
    assert saved["test/acc"] == pytest.approx(metrics["test/acc"])
    assert {f"test/class_f1/{name}" for name in ("disk", "ring", "x")} <= saved.keys()
    assert not list(run_dir.glob(".*.tmp"))


def test_the_model_learns(finished_run):
    _, metrics = finished_run
    assert metrics["test/acc"] > 0.35, metrics  # chance is 0.10


def test_tensorboard_has_slash_metrics_hparams_and_confusion_matrix(finished_run):
    run_dir, _ = finished_run
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"images": 0}).Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"train/loss_step", "train/acc", "val/acc", "val/f1", "val/class_f1/disk", "test/acc"} <= scalars
    assert "hp_metric" not in scalars and "hparams/test/acc" in scalars
    assert "test/confusion_matrix" in events.Tags()["images"]
    hparams = events.PluginTagToContent("hparams")
    assert "_hparams_/session_start_info" in hparams
    assert "optimizer:" in (run_dir / "tensorboard" / "hparams.yaml").read_text()


def test_checkpoints_load_with_weights_only_and_describe_the_model(finished_run):
    run_dir, _ = finished_run
    checkpoint = torch.load(run_dir / "checkpoints" / "best.ckpt", weights_only=True)
    assert checkpoint["hyper_parameters"]["backbone"]["_target_"] == "stl10_lightning.models.TinyNet"
    assert checkpoint["hyper_parameters"]["label_smoothing"] == 0.0


def test_resume_from_last_checkpoint_continues_the_run(finished_run, make_cfg):
    run_dir, _ = finished_run
    last = run_dir / "checkpoints" / "last.ckpt"
    steps_done = torch.load(last, weights_only=True)["global_step"]
    cfg = make_cfg(f"ckpt_path={last}", "trainer.max_epochs=16", "optimizer=adamw", "model.augment.cutout=0")
    train(cfg)
    resumed = torch.load(Path(cfg.run_dir) / "checkpoints" / "last.ckpt", weights_only=True)
    assert resumed["epoch"] == 15 and resumed["global_step"] == steps_done * 16 // 15
    assert json.loads((Path(cfg.run_dir) / "metrics.json").read_text())["epochs"] == 16


def test_same_seed_same_result(make_cfg, tmp_path):
    runs = []
    for name in ("a", "b"):
        cfg = make_cfg("trainer.max_epochs=1", "+trainer.limit_train_batches=3", f"run_dir={tmp_path / name}")
        runs.append(train(cfg))
    assert runs[0] == runs[1]
