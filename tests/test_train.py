import json

import pytest
import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

from stl10_lightning.common.errors import UserError
from stl10_lightning.data import STL10DataModule
from stl10_lightning.runs.folder import run_folder_for
from stl10_lightning.stages import SupervisedResNet
from stl10_lightning.train import train
from tests.helpers import Interrupted, compose_tiny, stage_inputs

STAGES = ["supervised", "barlow_twins", "linear_probe", "pseudo_label", "pseudo_label:online"]


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_fast_dev_run_every_stage(make_cfg, finished_run, tmp_path, stage, precision):
    inputs = stage_inputs(stage, finished_run, tmp_path)
    metrics = train(
        make_cfg(
            f"stage={stage.split(':')[0]}", "debug=fast_dev_run", f"trainer.precision={precision}", *inputs
        )
    )
    expected = (
        {"knn/acc", "probe/acc"} if stage == "barlow_twins" else {"val/acc", "val/f1", "test/acc", "test/f1"}
    )
    assert expected <= metrics.keys()


def test_runs_without_a_logger(make_cfg, tmp_path):
    train(make_cfg("logger=none", "trainer.max_epochs=1", "+trainer.limit_train_batches=2"))
    assert (tmp_path / "run" / "metrics.json").exists() and not (tmp_path / "run" / "tensorboard").exists()


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
    assert "epoch" not in scalars and {"train/loss_step", "train/loss_epoch"} <= scalars  # TIME SERIES' cards
    assert len(events.Scalars("val/acc")) == 15  # one point per epoch; the final evaluation adds none
    assert "test/confusion_matrix" in events.Tags()["images"]
    session = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    listed = HParamsPluginData.FromString(session).session_start_info.hparams
    assert set(listed) == {
        "stage", "backbone", "optimizer", "lr", "epochs", "batch_size", "image_size", "seed",
    }  # fmt: skip
    assert listed["optimizer"].string_value == "AdamW" and listed["epochs"].number_value == 15
    recorded = OmegaConf.load(run_dir / "tensorboard" / "hparams.yaml")  # the whole config, as config.yaml
    assert recorded == OmegaConf.load(run_dir / "config.yaml")


def test_checkpoints_load_with_weights_only_and_describe_the_model(finished_run):
    run_dir, _ = finished_run
    checkpoint = torch.load(run_dir / "checkpoints" / "best.ckpt", weights_only=True)
    assert checkpoint["hyper_parameters"]["backbone"]["_target_"] == "stl10_lightning.models.TinyNet"
    assert checkpoint["hyper_parameters"]["label_smoothing"] == 0.0


def test_final_metrics_come_from_the_best_checkpoint(finished_run, synthetic_root):
    run_dir, metrics = finished_run
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    best_state = next(v for k, v in last["callbacks"].items() if "'monitor': 'val/acc'" in k)
    assert metrics["val/acc"] == pytest.approx(float(best_state["best_model_score"]))
    model = SupervisedResNet.load_from_checkpoint(run_dir / "checkpoints" / "best.ckpt", weights_only=True)
    datamodule = STL10DataModule(str(synthetic_root), image_size=32, val_size=100, num_workers=0)
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False)
    assert trainer.test(model, datamodule=datamodule)[0]["test/acc"] == pytest.approx(metrics["test/acc"])


def test_interrupted_run_resumes_in_its_folder_and_finishes_its_schedule(make_cfg, tmp_path):
    settings = ["trainer.max_epochs=4", "model.warmup_epochs=1", "trainer.log_every_n_steps=1"]
    interrupt = [
        "+callbacks.interrupt._target_=tests.helpers.InterruptAtEpoch",
        "+callbacks.interrupt.epoch=2",
    ]
    with pytest.raises(Interrupted):
        train(make_cfg(*settings, *interrupt))
    run_dir = tmp_path / "run"
    assert not (run_dir / "metrics.json").exists()
    last = run_dir / "checkpoints" / "last.ckpt"
    steps_per_epoch = torch.load(last, weights_only=True)["global_step"] // 2

    train(make_cfg(*settings, f"ckpt_path={last}"))
    resumed = torch.load(last, weights_only=True)
    assert (resumed["epoch"], resumed["global_step"]) == (3, 4 * steps_per_epoch)
    assert json.loads((run_dir / "metrics.json").read_text())["epochs"] == 4
    events = EventAccumulator(str(run_dir / "tensorboard")).Reload()
    lrs = [event.value for event in events.Scalars("lr-SGD/weights")]
    after_warmup = lrs[steps_per_epoch:]
    assert len(lrs) == 4 * steps_per_epoch and after_warmup == sorted(after_warmup, reverse=True)
    assert lrs[-1] < 0.01 * max(lrs)  # the cosine ran to its end, across the resume


def test_resume_with_another_schedule_length_is_refused(make_cfg, tmp_path):
    interrupt = [
        "+callbacks.interrupt._target_=tests.helpers.InterruptAtEpoch",
        "+callbacks.interrupt.epoch=1",
    ]
    with pytest.raises(Interrupted):
        train(make_cfg("trainer.max_epochs=3", "+trainer.limit_train_batches=2", *interrupt))
    recorded = (tmp_path / "run" / "config.yaml").read_text()
    cfg = make_cfg(f"ckpt_path={tmp_path / 'run' / 'checkpoints' / 'last.ckpt'}", "trainer.max_epochs=4")
    with pytest.raises(UserError, match="cannot resume with trainer.max_epochs=4: .* runs 3 epochs"):
        train(cfg)
    assert (tmp_path / "run" / "config.yaml").read_text() == recorded  # still what ran


def test_resume_with_other_model_settings_is_refused(finished_run, synthetic_root):
    run_dir, _ = finished_run
    last = run_dir / "checkpoints" / "last.ckpt"
    cfg = compose_tiny(synthetic_root, run_dir, f"ckpt_path={last}", "trainer.max_epochs=15", "optimizer=sgd")
    changed = r"model.optimizer._target_: torch.optim.AdamW -> torch.optim.SGD"
    with pytest.raises(
        UserError, match=rf"cannot resume: the run in .* was started with other settings .*{changed}"
    ):
        train(cfg)
    assert (run_dir / "metrics.json").exists()  # the finished run is left as it was


def test_run_folder_follows_the_checkpoint(finished_run, tmp_path):
    run_dir, _ = finished_run
    assert run_folder_for(str(run_dir / "checkpoints" / "last.ckpt"), "fresh") == str(run_dir)
    assert run_folder_for(None, "fresh") == "fresh"
    loose = tmp_path / "weights.ckpt"
    assert run_folder_for(str(loose), "fresh") == "fresh"


def test_same_seed_same_result(make_cfg, tmp_path):
    runs = []
    for name in ("a", "b"):
        cfg = make_cfg("trainer.max_epochs=1", "+trainer.limit_train_batches=3", f"run_dir={tmp_path / name}")
        runs.append(train(cfg))
    assert runs[0] == runs[1]
