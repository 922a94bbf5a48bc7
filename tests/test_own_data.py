"""Every stage on a prepared image-folder tree (3 classes, 40 px on disk), and stl10-predict on its runs."""

import csv
import json
import os
import shutil

import pytest
from omegaconf import OmegaConf

from stl10_lightning import predict
from stl10_lightning.study import check_steps, steps
from stl10_lightning.train import train
from tests.helpers import assert_one_line_error, compose_tiny, raises_user_error, stage_inputs
from tests.image_tree import CLASSES

STAGES = ["supervised", "barlow_twins", "linear_probe", "pseudo_label", "pseudo_label:online"]
SMALL = ["data.val_size=6", "data.batch_size=16"]  # 36 labeled images


@pytest.fixture(scope="module")
def supervised_run(prepared_root, tmp_path_factory):
    """A short supervised run on the prepared tree: the offline teacher and what stl10-predict applies."""
    run_dir = tmp_path_factory.mktemp("own_supervised")
    cfg = compose_tiny(prepared_root, run_dir, *SMALL, "trainer.max_epochs=4", "optimizer=adamw")
    return run_dir, train(cfg)


@pytest.mark.parametrize("stage", STAGES)
def test_every_stage_runs_on_prepared_data_with_its_classes(prepared_root, supervised_run, tmp_path, stage):
    inputs = stage_inputs(stage, supervised_run, tmp_path)
    if stage == "barlow_twins":
        inputs.append("model.knn_k=[5]")  # the kNN bank holds the 30 labeled train images
    run_dir = tmp_path / "run"
    cfg = compose_tiny(
        prepared_root, run_dir, *SMALL, f"stage={stage.split(':')[0]}", "debug=fast_dev_run", *inputs
    )
    metrics = train(cfg)
    assert ({"knn/acc"} if stage == "barlow_twins" else {"test/acc", "test/f1"}) <= metrics.keys()
    recorded = OmegaConf.load(run_dir / "config.yaml")
    manifest = json.loads((prepared_root / "stl10_binary" / "manifest.json").read_text())
    assert recorded.model.num_classes == 3  # filled from the data before any check, not STL-10's 10
    assert list(recorded.model.mean) == manifest["mean"] and list(recorded.model.std) == manifest["std"]


def test_class_names_label_the_metrics_and_travel_with_the_checkpoint(supervised_run):
    run_dir, metrics = supervised_run
    assert {f"test/class_f1/{name}" for name in CLASSES} <= metrics.keys()
    written = json.loads((run_dir / "metrics.json").read_text())
    assert written["labeled"] == 30  # 36 minus the 6 of val


def test_a_teacher_with_other_classes_is_refused(prepared_root, finished_run, tmp_path):
    cfg = compose_tiny(
        prepared_root,
        tmp_path / "run",
        *SMALL,
        "stage=pseudo_label",
        "ratio=0.2",
        f"pseudo.teacher={finished_run[0]}",
    )
    with raises_user_error(
        r"predicts 10 classes, but this run's data has 3; give a teacher trained on the same"
    ):
        train(cfg)


def test_the_study_checks_every_step_on_prepared_data(prepared_root, tmp_path):
    overrides = [f"data.root={prepared_root}", "backbone=tiny", *SMALL]
    check_steps(steps(tmp_path / "study", "0.2,0.5", "offline,online", overrides), overrides)
    with raises_user_error(r"ratio=1 asks for 36 unlabeled images .* but the dataset has 24"):
        check_steps(steps(tmp_path / "study", "1", "offline", overrides), overrides)


def test_predict_writes_one_row_per_readable_image(supervised_run, image_tree, tmp_path, capsys):
    run_dir, _ = supervised_run
    out = tmp_path / "predictions.csv"
    predict.main(
        [str(run_dir), str(image_tree / "test"), str(image_tree / "train" / "circle"), "--out", str(out)]
    )
    err = capsys.readouterr().err
    assert "skipped" in err and "broken.jpg" in err and "wrote 24 predictions" in err
    with out.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 12 + 12  # the test folder and the readable circle images
    assert list(rows[0]) == ["path", "class", "confidence", "top1", "top2", "top3"]
    for row in rows:
        ranked = [row[f"top{rank}"].rsplit(":", 1) for rank in (1, 2, 3)]
        assert row["class"] in CLASSES and {name for name, _ in ranked} == set(CLASSES)
        probabilities = [float(value) for _, value in ranked]
        assert probabilities == sorted(probabilities, reverse=True) and sum(probabilities) == pytest.approx(
            1, abs=2e-4
        )
        assert ranked[0] == [row["class"], row["confidence"]]
    assert not list(tmp_path.glob(".*.tmp"))


def test_predict_refuses_a_barlow_twins_run(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.json").write_text(json.dumps({"stage": "barlow_twins"}))
    with pytest.raises(SystemExit) as stopped:
        predict.main([str(tmp_path / "run"), str(tmp_path)])
    assert stopped.value.code == 2
    assert_one_line_error(capsys.readouterr().err, r"a barlow_twins run learned features, not classes")


def _out_refusals(run_dir, image_tree, tmp_path):
    image = image_tree / "test" / "square" / "001.png"
    (tmp_path / "notes.txt").write_text("mine")
    return {
        "a finished run's file": (
            run_dir / "metrics.json",
            r"is inside the run folder .*, and a later command",
        ),
        "an input image": (image, r"001.png exists and is not a .csv file"),
        "a file that is no CSV": (tmp_path / "notes.txt", r"notes.txt exists and is not a .csv file"),
        "a folder": (tmp_path, r"is a folder; give a file name, such as .*predictions.csv"),
        "under a file": (tmp_path / "notes.txt" / "p.csv", r"notes.txt is a file, not a folder"),
    }


def test_predict_never_overwrites_what_is_not_its_own_csv(supervised_run, image_tree, tmp_path, capsys):
    run_dir, _ = supervised_run
    for case, (out, message) in _out_refusals(run_dir, image_tree, tmp_path).items():
        before = {path: path.read_bytes() for path in (run_dir / "metrics.json", tmp_path / "notes.txt")}
        with pytest.raises(SystemExit) as stopped:
            predict.main([str(run_dir), str(image_tree / "test"), "--out", str(out), "--workers", "0"])
        assert stopped.value.code == 2, case
        assert_one_line_error(capsys.readouterr().err, message)
        assert {path: path.read_bytes() for path in before} == before, case


@pytest.mark.parametrize("inputs", ["empty", "unreadable", "too many workers"])
def test_predict_refuses_inputs_with_no_readable_image(supervised_run, tmp_path, capsys, inputs):
    folder = tmp_path / "in"
    folder.mkdir()
    workers = "1000000" if inputs == "too many workers" else "0"
    if inputs != "empty":
        (folder / "a.jpg").write_bytes(b"not an image")
    out = tmp_path / "predictions.csv"
    with pytest.raises(SystemExit) as stopped:
        predict.main([str(supervised_run[0]), str(folder), "--out", str(out), "--workers", workers])
    assert stopped.value.code == 2
    messages = {
        "empty": r"no files under .*in; give image files",
        "unreadable": r"none of the 1 files is a readable image \(.*a.jpg: .*\); nothing written",
        "too many workers": r"--workers 1000000: give 0 \(decode in this process\) to \d+",
    }
    assert_one_line_error(capsys.readouterr().err, messages[inputs])
    assert sorted(path.name for path in tmp_path.iterdir()) == ["in"]


def test_predict_writes_a_file_name_that_is_not_utf8_as_its_bytes(supervised_run, image_tree, tmp_path):
    (tmp_path / "in").mkdir()
    name = os.fsdecode(b"caf\xe9.png")
    shutil.copy(image_tree / "test" / "square" / "001.png", tmp_path / "in" / name)
    out = tmp_path / "predictions.csv"
    predict.main([str(supervised_run[0]), str(tmp_path / "in"), "--out", str(out), "--workers", "0"])
    assert out.read_bytes().splitlines()[1].startswith(os.fsencode(tmp_path / "in" / name) + b",")


def test_predicting_again_into_the_input_folder_replaces_the_earlier_csv(
    supervised_run, image_tree, tmp_path, capsys
):
    shutil.copytree(image_tree / "test" / "square", tmp_path / "photos")
    out = tmp_path / "photos" / "predictions.csv"
    for _ in range(2):
        predict.main([str(supervised_run[0]), str(tmp_path / "photos"), "--out", str(out), "--workers", "0"])
    assert "skipped" in capsys.readouterr().err and len(out.read_text().splitlines()) == 1 + 4
