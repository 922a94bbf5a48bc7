"""Every setting is checked by type and range before any work starts: one `error:` line naming the key."""

import copy
import dataclasses
import subprocess
import sys
import typing
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from stl10_lightning.common.errors import UserError
from stl10_lightning.launch.startup import warn_about_ignored_settings
from stl10_lightning.runs.resume import check_same_settings
from stl10_lightning.settings import check_settings, one_line
from stl10_lightning.settings.check import _ranged_fields
from stl10_lightning.settings.ranges import ALLOWED
from stl10_lightning.study import check_arguments, for_step, steps
from stl10_lightning.train import train
from tests.helpers import REPO, assert_one_line_error, compose_train, run_main, run_study_main

STAGES = ["supervised", "barlow_twins", "linear_probe", "pseudo_label"]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("ratio=abc", r"ratio='abc' is not allowed: it must be a finite number > 0, or null"),
        ("data.batch_size=0", r"data.batch_size=0 is not allowed: it must be a whole number >= 1"),
        ("data.num_workers=-1", r"data.num_workers=-1 is not allowed: it must be a whole number >= 0"),
        ("seed=abc", r"seed='abc' is not allowed: it must be a whole number in \[0, 4294967295\]"),
        ("optimizer.lr=-0.1", r"optimizer.lr=-0.1 is not allowed: it must be a finite number > 0"),
        ("trainer.max_epochs=-1", r"trainer.max_epochs=-1 is not allowed: it must be a whole number >= 1"),
        ("trainer.max_epochs=0", r"trainer.max_epochs=0 is not allowed"),
        ("data.image_size=abc", r"data.image_size='abc' is not allowed: it must be a whole number >= 1"),
        (
            "model.augment.cutout=1",
            r"model.augment.cutout=1.0 is not allowed: it must be a finite number in \[0, 1\)",
        ),
        ("model.augment.flip=maybe", r"model.augment.flip='maybe' is not allowed: it must be true or false"),
        ("data.unlabeled_count=0", r"data.unlabeled_count=0 is not allowed: it must be a whole number >= 1"),
        ("data.fold=10", r"data.fold=10 is not allowed: it must be a whole number in \[0, 9\], or null"),
        ("trainer.precision=15", r"trainer.precision=15 is not allowed: it must be one of 32-true"),
        ("trainer.devices=0", r"trainer.devices=0 is not allowed: it must be a count >= 1, -1"),
        ("seed=-1", r"seed=-1 is not allowed"),
        ("ratio=inf", r"ratio=inf is not allowed"),
        (
            "model.schedule=linear",
            r"model.schedule='linear' is not allowed: it must be one of cosine, constant",
        ),
        ("data.batchsize=3", r"data.batchsize is not a setting \(did you mean data.batch_size\?\)"),
        ("pseudo.mu=2", r"pseudo.mu is a setting of stage=pseudo_label only"),
        ("stage=nope", r"stage=nope is not an option; choose one of barlow_twins, linear_probe"),
        ("backbone=nope", r"backbone=nope is not an option; choose one of resnet18, resnet50, resnet9, tiny"),
        ("callbacks.finite_loss.every_n_steps=0", r"callbacks.finite_loss.every_n_steps=0 must be a whole"),
        ("callbacks.best_checkpoint.mode=best", r"callbacks.best_checkpoint: .*mode"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_key(
    monkeypatch, capfd, tmp_path, synthetic_root, override, message
):
    code, err = run_main(monkeypatch, capfd, tmp_path, f"data.root={synthetic_root}", override)
    assert code == 2
    assert_one_line_error(err, message)
    assert_nothing_written(tmp_path / "run")


def assert_nothing_written(run_dir: Path) -> None:
    """Hydra makes the folder and opens its log file before any check; nothing else may be there."""
    left = {path.name: path.stat().st_size for path in run_dir.iterdir()} if run_dir.exists() else {}
    assert left in ({}, {"train.log": 0}), left


@pytest.mark.parametrize(
    ("stage", "override", "message"),
    [
        (
            "pseudo_label pseudo=online",
            "pseudo.mu=1.5",
            r"pseudo.mu=1.5 is not allowed: it must be a whole number >= 1",
        ),
        ("pseudo_label pseudo=online", "pseudo.strong_cutout=2", r"pseudo.strong_cutout=2.0 is not allowed"),
        ("pseudo_label", "pseudo.threshold=abc", r"pseudo.threshold='abc' is not allowed: .* in \(0, 1\]"),
        (
            "pseudo_label",
            "pseudo.steps=all",
            r"pseudo.steps='all' is not allowed: it must be one of epochs, match",
        ),
        ("pseudo_label", "pseudo.weight=-1", r"pseudo.weight=-1.0 is not allowed"),
        ("barlow_twins", "model.knn_k=[0]", r"model.knn_k=\[0\] is not allowed: it must be a non-empty list"),
        ("barlow_twins", "model.lambd=-1", r"model.lambd=-1.0 is not allowed"),
        ("barlow_twins", "model.knn_temperature=0", r"model.knn_temperature=0.0 is not allowed"),
        ("linear_probe", "probe.backbone_lr=-1", r"probe.backbone_lr=-1.0 is not allowed"),
        ("linear_probe", "probe.augment=maybe", r"probe.augment='maybe' is not allowed"),
    ],
)
def test_stage_settings_are_checked_too(
    monkeypatch, capfd, tmp_path, synthetic_root, stage, override, message
):
    code, err = run_main(
        monkeypatch, capfd, tmp_path, f"data.root={synthetic_root}", *f"stage={stage}".split(), override
    )
    assert code == 2
    assert_one_line_error(err, message)


def outside(field: dataclasses.Field):
    """A value just outside the field's range, from the words the schema states for it."""
    allowed = field.metadata[ALLOWED]
    if allowed.startswith("one of"):
        return "not-an-option"
    if allowed.startswith(">="):
        return float(allowed.split()[-1]) - 1
    if allowed.startswith(">"):
        return float(allowed.split()[-1])
    if allowed.startswith("in "):
        return float(allowed.rstrip(")]").split(", ")[-1]) + 1
    return [-1] if "list" in allowed else 0


@pytest.mark.parametrize("stage", [*STAGES, "pseudo_label pseudo=online"])
def test_every_ranged_setting_refuses_a_value_outside_its_range(stage):
    cfg = compose_train(*f"stage={stage}".split())
    check_settings(cfg)  # the defaults pass
    fields = list(_ranged_fields(cfg, ""))
    assert len(fields) > 20
    for key, _, field in fields:
        bad = copy.deepcopy(cfg)  # composing again per field costs seconds; the copy is the same config
        whole = int in (typing.get_args(field.type) or (field.type,))
        value = outside(field)
        OmegaConf.update(bad, key, int(value) if whole and isinstance(value, float) else value, merge=False)
        with pytest.raises(UserError, match=rf"^{key}=.* is not allowed: it must be"):
            check_settings(bad)


def test_the_demos_barlow_twins_records_the_adam_it_trains_with():
    cfg = compose_train("experiment=demo", "stage=barlow_twins")
    assert cfg.optimizer._target_ == "torch.optim.Adam" and cfg.model.optimizer == cfg.optimizer
    assert "demo_optimizer" not in cfg
    assert compose_train("experiment=demo", "stage=linear_probe").optimizer.lr_reference_batch == 256
    assert compose_train("stage=barlow_twins").optimizer._target_.endswith("LARS")


def test_the_cfg_job_printout_shows_the_optimizer_that_trains():
    command = [sys.executable, "train.py", "experiment=demo", "stage=barlow_twins", "--cfg", "job"]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    printed = OmegaConf.create(done.stdout)
    assert printed.optimizer._target_ == "torch.optim.Adam"
    assert printed.model.optimizer == printed.optimizer  # the module builds the recorded optimizer


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--ratios", "abc"], r"--ratios abc: 'abc' is not a number > 0"),
        (["--ratios", "0.4,-1"], r"--ratios 0.4,-1: '-1' is not a number > 0"),
        (
            ["--modes", "sometimes"],
            r"--modes sometimes: 'sometimes' is not a mode; choose from offline, online",
        ),
        (["data.batch_size=0"], r"data.batch_size=0 is not allowed"),
        (["--ratios", "0.1", "pseudo.mu=0"], r"pseudo.mu=0 is not allowed"),  # only the pseudo steps have it
        (["pseudo=online"], r"pseudo=online: the study runs each mode of --modes; give --modes online"),
    ],
)
def test_the_study_checks_every_step_before_the_first_runs(
    synthetic_root, tmp_path, capfd, arguments, message
):
    out = tmp_path / "study"
    code, err = run_study_main(capfd, "--out", str(out), f"data.root={synthetic_root}", *arguments)
    assert code == 2, err[-2000:]
    assert_one_line_error(err, message)
    assert not out.exists()  # nothing trained


def test_the_study_gives_each_setting_to_the_steps_that_have_it(tmp_path):
    given = [
        "data.batch_size=32",
        "probe.augment=true",
        "pseudo.threshold=0.9",
        "pseudo.mu=3",
        "pseudo.teacher=t",
    ]
    received = {
        folder.relative_to(tmp_path).as_posix(): for_step(given, arguments)
        for folder, arguments in steps(tmp_path, "1", "offline,online", given)
    }
    assert received["supervised"] == received["barlow_twins"] == ["data.batch_size=32"]
    assert received["linear_probe"] == ["data.batch_size=32", "probe.augment=true"]
    assert received["pseudo_label/offline/ratio_1"] == [
        "data.batch_size=32",
        "pseudo.threshold=0.9",
        "pseudo.teacher=t",
    ]
    assert received["pseudo_label/online/ratio_1"] == [
        "data.batch_size=32",
        "pseudo.threshold=0.9",
        "pseudo.mu=3",
    ]


@pytest.mark.parametrize(
    ("module", "arguments", "message"),
    [
        (
            "stl10_lightning.report",
            ["--colour", "outputs"],
            r"unrecognized arguments: --colour; see .* --help",
        ),
        ("stl10_lightning.report", [], r"the following arguments are required: PATH"),
        ("stl10_lightning.study", ["--ratios"], r"argument --ratios: expected one argument"),
    ],
)
def test_command_line_mistakes_are_one_line_too(module, arguments, message):
    done = subprocess.run(
        [sys.executable, "-m", module, *arguments], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2
    assert_one_line_error(done.stderr, message)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model.num_classes=5"], r"model.num_classes=5 does not match the 10 classes of .*; leave it at 10"),
        (["data.train_on=unlabeled"], r"data.train_on=unlabeled: this stage trains a classifier on labeled"),
    ],
)
def test_settings_that_do_not_fit_the_data_are_refused_before_the_run_starts(
    monkeypatch, capfd, tmp_path, synthetic_root, overrides, message
):
    code, err = run_main(monkeypatch, capfd, tmp_path, f"data.root={synthetic_root}", *overrides)
    assert code == 2
    assert_one_line_error(err, message)
    assert_nothing_written(tmp_path / "run")


def test_a_data_root_that_is_a_file_is_named_as_one(monkeypatch, capfd, tmp_path):
    (tmp_path / "stl10.tar.gz").write_bytes(b"")
    code, err = run_main(monkeypatch, capfd, tmp_path, f"data.root={tmp_path / 'stl10.tar.gz'}")
    assert code == 2
    assert_one_line_error(
        err, r"data.root=.*stl10.tar.gz is a file; give the folder that contains stl10_binary/"
    )


def test_a_setting_lightning_refuses_mid_run_is_one_line(monkeypatch, capfd, tmp_path, synthetic_root):
    """A checkpoint monitor that no stage logs is only found out at the first epoch's end."""
    overrides = [
        "callbacks.best_checkpoint.monitor=val/acx",
        "trainer.max_epochs=1",
        "+trainer.limit_train_batches=1",
    ]
    code, err = run_main(monkeypatch, capfd, tmp_path, f"data.root={synthetic_root}", *overrides)
    assert code == 2
    assert_one_line_error(err, r"Lightning refused a setting: .*monitor='val/acx'")
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_the_demos_barlow_twins_run_records_the_optimizer_it_trained_with(synthetic_root, tmp_path):
    demo = ["experiment=demo", "stage=barlow_twins", "data.synthetic=null", "data.unlabeled_count=null"]
    fast = ["model.projector=64-64", "debug=fast_dev_run", "callbacks.progress_bar=null"]
    cfg = compose_train(*demo, *fast, f"data.root={synthetic_root}", f"run_dir={tmp_path / 'run'}")
    train(cfg)
    recorded = OmegaConf.load(tmp_path / "run" / "config.yaml")
    assert (
        recorded.optimizer._target_ == "torch.optim.Adam" and recorded.model.optimizer == recorded.optimizer
    )


def test_a_checkpoint_folder_as_ckpt_path_names_the_file_to_give(
    monkeypatch, capfd, tmp_path, synthetic_root
):
    folder = tmp_path / "elsewhere" / "checkpoints"
    folder.mkdir(parents=True)
    code, err = run_main(monkeypatch, capfd, tmp_path, f"data.root={synthetic_root}", f"ckpt_path={folder}")
    assert code == 2
    assert_one_line_error(err, rf"ckpt_path={folder} is a folder; give the checkpoint file in it to resume")


def test_the_old_pseudo_mode_setting_names_the_group():
    with pytest.raises(Exception) as raised:
        compose_train("stage=pseudo_label", "pseudo.mode=online")
    assert one_line(raised.value).startswith(
        "pseudo.mode is not a setting: the mode is a group; choose it with pseudo=offline or pseudo=online"
    )


def test_settings_of_the_other_pseudo_label_mode_are_named_in_a_warning(caplog):
    """Accepted, so that one sweep over both modes can give each its own settings."""
    cfg = compose_train("stage=pseudo_label", "pseudo=online", "pseudo.teacher=x", "pseudo.weight=2")
    given = ["pseudo=online", "pseudo.teacher=x", "pseudo.weight=2", "pseudo.mu=2", "pseudo.threshold=0.9"]
    warn_about_ignored_settings(cfg, given)
    assert "pseudo=online ignores pseudo.teacher, pseudo.weight (settings of the offline mode)" in caplog.text
    assert "pseudo.mu" not in caplog.text and "threshold" not in caplog.text
    caplog.clear()
    warn_about_ignored_settings(compose_train("stage=pseudo_label", "pseudo.mu=2"), ["pseudo.mu=2"])
    assert "pseudo=offline ignores pseudo.mu (settings of the online mode)" in caplog.text


def test_the_pseudo_group_outside_its_stage_names_the_stage():
    with pytest.raises(Exception) as raised:
        compose_train("pseudo=online")
    assert (
        one_line(raised.value)
        == "pseudo= is a group of stage=pseudo_label only; add stage=pseudo_label, or drop it"
    )


def test_the_study_refuses_a_file_as_its_folder(tmp_path, capfd):
    (tmp_path / "study").write_text("")
    code, err = run_study_main(capfd, "--out", str(tmp_path / "study"))
    assert code == 2
    assert_one_line_error(err, r"--out .*study is a file; give a folder for the study")


def test_the_study_refuses_a_folder_inside_a_run(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text(OmegaConf.to_yaml(compose_train()))
    with pytest.raises(UserError, match=r"--out .*run/study is inside the run folder .*run, and a later"):
        check_arguments(tmp_path / "run" / "study", "1", "offline", [])
    assert sorted(path.name for path in (tmp_path / "run").iterdir()) == ["config.yaml"]


def test_a_knn_k_above_the_bank_is_refused(monkeypatch, capfd, tmp_path, synthetic_root):
    bt = ["stage=barlow_twins", "model.projector=64-64", "model.knn_k=[5000]"]
    code, err = run_main(monkeypatch, capfd, tmp_path, f"data.root={synthetic_root}", *bt)
    assert code == 2
    assert_one_line_error(err, r"model.knn_k has 5000 neighbours, more than the 500 labeled train images")


def test_a_run_from_before_the_pseudo_group_is_refused_in_one_line(tmp_path):
    saved = compose_train("stage=pseudo_label")
    OmegaConf.update(saved, "model.modes", {"offline": {"teacher": None}}, force_add=True)
    (tmp_path / "config.yaml").write_text(OmegaConf.to_yaml(saved))
    with pytest.raises(
        UserError, match=r"started when the pseudo-label mode was pseudo.mode.*start a new run"
    ):
        check_same_settings(compose_train("stage=pseudo_label"), tmp_path / "config.yaml")


def test_a_refused_resume_names_the_first_changed_settings_and_counts_the_rest(tmp_path):
    (tmp_path / "config.yaml").write_text(OmegaConf.to_yaml(compose_train("stage=supervised")))
    changed = ["model.augment.cutout=0.1", "data.image_size=32", "seed=3", "data.val_size=10", "data.fold=1"]
    with pytest.raises(UserError, match=r"other settings \(([^;]+; ){5}and 2 more\)"):
        check_same_settings(
            compose_train("stage=supervised", *changed, "data.batch_size=7"), tmp_path / "config.yaml"
        )
