import json
import os
from contextlib import nullcontext
from pathlib import Path

import pytest
import torch

from stl10_lightning.common.errors import UserError
from stl10_lightning.data import STL10DataModule
from stl10_lightning.models import TinyNet
from stl10_lightning.models.backbone_file import load_backbone, save_backbone
from stl10_lightning.runs.folder import newest_finished_run
from stl10_lightning.stages.teacher import load_teacher, predict
from stl10_lightning.train import train

TINY = {"_target_": "stl10_lightning.models.TinyNet", "width": 32}


def probe_cfg(make_cfg, source, *overrides):
    return make_cfg("stage=linear_probe", f"probe.backbone={source}", "trainer.max_epochs=5", *overrides)


def test_probe_learns_on_frozen_features_that_stay_bit_identical(pretrained_run, make_cfg, tmp_path):
    run_dir, _ = pretrained_run
    _, before, _ = _read(run_dir / "backbone.pt")
    metrics = train(probe_cfg(make_cfg, run_dir))
    checkpoint = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    after = {
        k.removeprefix("backbone."): v
        for k, v in checkpoint["state_dict"].items()
        if k.startswith("backbone.")
    }
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BatchNorm statistics included
    assert metrics["test/acc"] > 0.3 and {"val/f1", "test/f1"} <= metrics.keys()
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["backbone_source"] == str(run_dir / "backbone.pt")


def test_probe_beats_random_init_backbone(pretrained_run, make_cfg, tmp_path):
    run_dir, _ = pretrained_run
    pretrained = train(probe_cfg(make_cfg, run_dir, f"run_dir={tmp_path / 'pretrained'}"))
    random_init = train(probe_cfg(make_cfg, "random", f"run_dir={tmp_path / 'random'}"))  # seeded init
    assert json.loads((tmp_path / "random" / "metrics.json").read_text())["backbone_source"] == "random"
    assert pretrained["test/acc"] > random_init["test/acc"] + 0.05, (pretrained, random_init)
    figures = pretrained["test/acc"], random_init["test/acc"]
    print("probe test accuracy: pretrained {:.3f}, random init {:.3f}".format(*figures))


def test_cached_features_train_the_same_probe_as_forward_passes(pretrained_run, make_cfg, tmp_path):
    run_dir, _ = pretrained_run
    cached = train(probe_cfg(make_cfg, run_dir, "trainer.max_epochs=2", f"run_dir={tmp_path / 'a'}"))
    uncached = train(
        probe_cfg(
            make_cfg,
            run_dir,
            "trainer.max_epochs=2",
            f"run_dir={tmp_path / 'b'}",
            "+model.cache_features=false",
        )
    )
    assert cached == pytest.approx(uncached, abs=1e-4)


def test_fine_tuning_changes_the_backbone(pretrained_run, make_cfg, tmp_path):
    run_dir, _ = pretrained_run
    _, before, _ = _read(run_dir / "backbone.pt")
    train(probe_cfg(make_cfg, run_dir, "probe.finetune=true", "trainer.max_epochs=1"))
    checkpoint = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert not torch.equal(
        checkpoint["state_dict"]["backbone.features.0.weight"], before["features.0.weight"]
    )


def test_a_supervised_checkpoint_serves_as_backbone(make_cfg, tmp_path):
    train(make_cfg("trainer.max_epochs=1", "+trainer.limit_train_batches=2", f"run_dir={tmp_path / 'sup'}"))
    metrics = train(probe_cfg(make_cfg, tmp_path / "sup", "trainer.max_epochs=1"))
    assert "test/acc" in metrics


def test_default_source_is_the_newest_finished_barlow_twins_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match="no finished barlow_twins run under outputs/"):
        newest_finished_run("barlow_twins", needs="backbone.pt")
    runs = {  # in the order they finish
        "barlow_twins/old": "barlow_twins",
        "study/x/barlow_twins": "barlow_twins",  # a study's run counts too
        "barlow_twins/unfinished": None,
        "supervised/newer": "supervised",  # another stage
        "barlow_twins/no_config": "barlow_twins",  # no config.yaml: not a run folder
    }
    for finished_at, (name, stage) in enumerate(runs.items()):
        (tmp_path / "outputs" / name).mkdir(parents=True)
        (tmp_path / "outputs" / name / "backbone.pt").touch()
        if name != "barlow_twins/no_config":
            (tmp_path / "outputs" / name / "config.yaml").write_text("stage: {}\n")
        if stage:
            (tmp_path / "outputs" / name / "metrics.json").write_text(json.dumps({"stage": stage}))
            os.utime(tmp_path / "outputs" / name / "metrics.json", (finished_at, finished_at))
    assert newest_finished_run("barlow_twins", needs="backbone.pt") == Path("outputs/study/x/barlow_twins")


def _read(path):
    from stl10_lightning.models.backbone_file import read_backbone

    return read_backbone(path)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", "does not exist"),
        ("folder without weights", "holds neither backbone.pt nor checkpoints/best.ckpt"),
        ("not a checkpoint", "cannot read .* as a backbone or checkpoint"),
        ("foreign dict", "is not a backbone file or a checkpoint of this project"),
        (
            "other architecture",
            r"holds a tinynet\(width=16\) backbone, but this run builds tinynet\(width=32\)",
        ),
        ("missing keys", "does not fit the backbone: 1 missing keys"),
        ("extra keys", "does not fit the backbone: 0 missing keys .* 1 unexpected"),
    ],
)
def test_asserted_loads(tmp_path, case, message):
    source = tmp_path / "backbone.pt"
    weights = TinyNet().state_dict()
    if case == "folder without weights":
        source = tmp_path
    elif case == "not a checkpoint":
        source.write_text("hello")
    elif case == "foreign dict":
        torch.save({"weights": weights}, source)
    elif case == "other architecture":
        save_backbone(source, {**TINY, "width": 16}, TinyNet(16))
    elif case in ("missing keys", "extra keys"):
        save_backbone(source, TINY, TinyNet())
        payload = torch.load(source, weights_only=True)
        if case == "missing keys":
            payload["state_dict"].pop("features.0.weight")
        else:
            payload["state_dict"]["extra.weight"] = torch.zeros(1)
        torch.save(payload, source)
    with pytest.raises(UserError, match=message):
        load_backbone(TinyNet(), TINY, source)


def test_a_probe_run_teaches_with_its_own_predictions(pretrained_run, make_cfg, synthetic_root, tmp_path):
    """The teacher rebuilt from a probe checkpoint (feature standardization included) scores as it did."""
    metrics = train(probe_cfg(make_cfg, pretrained_run[0], "trainer.max_epochs=3"))
    teacher = load_teacher(tmp_path / "run")
    datamodule = STL10DataModule(str(synthetic_root), image_size=32, val_size=100, num_workers=0)
    datamodule.setup()
    _, prediction, labels = predict(
        teacher.model, datamodule.val_dataloader(), torch.device("cpu"), nullcontext
    )
    assert (prediction == labels).mean() == pytest.approx(metrics["val/acc"], abs=1e-6)
