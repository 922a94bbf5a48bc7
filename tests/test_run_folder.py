"""A finished run is never changed by a later command, and a run folder has one writer at a time.

Each data-loss case checks the finished (or original) run's files byte for byte afterwards: metrics.json,
config.yaml, checkpoints, the log, .hydra/ and the TensorBoard events.
"""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from stl10_lightning.common import atomic
from stl10_lightning.train import main, train
from tests.helpers import Interrupted, assert_one_line_error, command, compose_tiny, run_main

SHORT = ["trainer.max_epochs=2", "+trainer.limit_train_batches=2", "data.val_size=100", "data.batch_size=64"]


def interrupted_run(root: Path, run_dir: Path, *settings: str) -> None:
    """A run stopped at the start of its third epoch, after two epochs' checkpoints, as a killed job is."""
    interrupt = [
        "+callbacks.interrupt._target_=tests.helpers.InterruptAtEpoch",
        "+callbacks.interrupt.epoch=2",
    ]
    with pytest.raises(Interrupted):
        train(compose_tiny(root, run_dir, *settings, *interrupt))


def fingerprint(run_dir: Path) -> dict[str, str]:
    return {
        str(path.relative_to(run_dir)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(run_dir.rglob("*"))
        if path.is_file()
    }


@pytest.fixture
def finished(monkeypatch, synthetic_root, tmp_path) -> tuple[Path, dict[str, str]]:
    """A run finished through `python train.py` (so with .hydra/ and train.log), and its fingerprint."""
    run_dir = tmp_path / "run"
    tiny = ["backbone=tiny", "data.image_size=32", "data.num_workers=0", "trainer.accelerator=cpu"]
    argv = ["train.py", *tiny, f"data.root={synthetic_root}", *SHORT, f"hydra.run.dir={run_dir}"]
    monkeypatch.setattr(sys, "argv", [*argv, "callbacks.progress_bar=null"])
    main()
    assert (run_dir / "metrics.json").is_file() and (run_dir / ".hydra" / "overrides.yaml").is_file()
    return run_dir, fingerprint(run_dir)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ["trainer.max_epochs=3"],
            r"cannot resume with trainer.max_epochs=3: the checkpoint's cosine schedule runs 2",
        ),
        (["data.root=/nowhere"], r"STL-10 not found: /nowhere/stl10_binary does not exist"),
        (
            ["optimizer.lr=0.2"],
            r"cannot resume: the run in .* was started with other settings .*lr: 0.1 -> 0.2",
        ),
        ([], r"ckpt_path=.*last.ckpt belongs to a finished run \(metrics.json in .*\): there is nothing"),
    ],
    ids=["other max_epochs", "mistyped data.root", "other lr", "same settings"],
)
def test_a_refused_resume_leaves_the_finished_run_as_it_was(
    monkeypatch, capfd, synthetic_root, tmp_path, finished, change, message
):
    run_dir, before = finished
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    code, err = run_main(
        monkeypatch, capfd, tmp_path, f"data.root={synthetic_root}", *SHORT, f"ckpt_path={ckpt}", *change
    )
    assert code == 2
    assert_one_line_error(err, message)
    assert fingerprint(run_dir) == before


def test_a_new_run_into_a_finished_runs_folder_is_refused(
    monkeypatch, capfd, synthetic_root, tmp_path, finished
):
    run_dir, before = finished
    code, err = run_main(monkeypatch, capfd, tmp_path, f"data.root={synthetic_root}", *SHORT, "seed=1")
    assert code == 2
    assert_one_line_error(err, rf"{run_dir} holds a finished run, which a new run must not overwrite")
    assert fingerprint(run_dir) == before


def test_a_new_run_into_an_unfinished_runs_folder_is_refused(make_cfg, tmp_path):
    interrupt = [
        "+callbacks.interrupt._target_=tests.helpers.InterruptAtEpoch",
        "+callbacks.interrupt.epoch=1",
    ]
    with pytest.raises(Interrupted):
        train(make_cfg(*SHORT, *interrupt))
    before = fingerprint(tmp_path / "run")
    with pytest.raises(Exception, match=r"holds an unfinished run; resume it with ckpt_path=.*last.ckpt"):
        train(make_cfg(*SHORT, "seed=1"))
    assert fingerprint(tmp_path / "run") == before


@pytest.mark.slow
def test_two_runs_cannot_write_one_folder_and_a_killed_one_leaves_no_lock(
    monkeypatch, capfd, synthetic_root, tmp_path
):
    """The first run holds in its second epoch (a callback waits at step 3, after epoch 1's last.ckpt); the
    second is refused at once. Once the first is killed, its folder can be resumed: the lock died with it."""
    run_dir, marker = tmp_path / "run", tmp_path / "holding"
    hold = ["+callbacks.hold._target_=tests.helpers.HoldAtStep", "+callbacks.hold.step=3"]
    first = subprocess.Popen(
        command(
            synthetic_root, *SHORT, *hold, f"+callbacks.hold.marker={marker}", f"hydra.run.dir={run_dir}"
        ),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 240
        while not marker.exists() and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert marker.exists()
        before = fingerprint(run_dir)
        code, err = run_main(monkeypatch, capfd, tmp_path, f"data.root={synthetic_root}", *SHORT, "seed=1")
        assert code == 2
        assert_one_line_error(err, rf"another process is writing to the run folder {run_dir} right now")
        assert fingerprint(run_dir) == before
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    resumed = train(
        compose_tiny(synthetic_root, run_dir, *SHORT, f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}")
    )
    assert "test/acc" in resumed and (run_dir / "metrics.json").is_file()


def test_a_moved_run_resumes_with_its_own_checkpoints_and_leaves_the_original_alone(synthetic_root, tmp_path):
    original, moved = tmp_path / "original", tmp_path / "moved"
    settings = ["trainer.max_epochs=4", "+trainer.limit_train_batches=2", "data.val_size=100"]
    interrupted_run(synthetic_root, original, *settings)
    shutil.copytree(original, moved)
    before = fingerprint(original)

    train(compose_tiny(synthetic_root, moved, *settings, f"ckpt_path={moved / 'checkpoints' / 'last.ckpt'}"))
    assert fingerprint(original) == before
    assert json.loads((moved / "metrics.json").read_text())["best_checkpoint"] == "checkpoints/best.ckpt"
    last = torch.load(moved / "checkpoints" / "last.ckpt", weights_only=True)
    for state in last["callbacks"].values():
        if "dirpath" in state:  # the ModelCheckpoints: every path they keep is in the moved folder
            assert state["dirpath"] == str(moved / "checkpoints")
            assert Path(state["best_model_path"]).parent == moved / "checkpoints"


def test_a_run_that_takes_no_step_is_not_reported_as_finished(make_cfg, tmp_path):
    with pytest.raises(
        Exception,
        match=r"no optimizer step: .* no batch \(data.batch_size=64, trainer.limit_train_batches=0\)",
    ):
        train(make_cfg("trainer.max_epochs=1", "+trainer.limit_train_batches=0"))
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_a_checkpoint_resumed_into_another_folder_keeps_its_best_there(synthetic_root, tmp_path):
    """hydra.run.dir set apart from the checkpoint's run: best.ckpt competes among the resumed epochs and
    is written, and tested, in the new folder; the original run is left alone."""
    original, elsewhere = tmp_path / "original", tmp_path / "elsewhere"
    settings = ["trainer.max_epochs=3", "+trainer.limit_train_batches=2", "data.val_size=100"]
    interrupted_run(synthetic_root, original, *settings)
    before = fingerprint(original)
    train(
        compose_tiny(
            synthetic_root, elsewhere, *settings, f"ckpt_path={original / 'checkpoints' / 'last.ckpt'}"
        )
    )
    assert fingerprint(original) == before
    assert json.loads((elsewhere / "metrics.json").read_text())["best_checkpoint"] == "checkpoints/best.ckpt"
    assert (elsewhere / "checkpoints" / "best.ckpt").is_file()


def test_a_failed_atomic_write_leaves_neither_a_temporary_file_nor_a_changed_result(tmp_path):
    result = tmp_path / "predictions.csv"
    result.write_text("earlier\n")
    with pytest.raises(UnicodeEncodeError):
        atomic.write_text(result, os.fsdecode(b"caf\xe9"))  # a name that is not UTF-8, written strictly
    assert sorted(path.name for path in tmp_path.iterdir()) == ["predictions.csv"]
    assert result.read_text() == "earlier\n"
    atomic.write_text(result, os.fsdecode(b"caf\xe9"), errors="surrogateescape")
    assert result.read_bytes() == b"caf\xe9"


NESTED = {
    "run": lambda run_dir: [f"hydra.run.dir={run_dir / 'nested'}"],
    "run through a link": lambda run_dir: [f"hydra.run.dir={_link(run_dir / 'checkpoints')}"],
    "sweep": lambda run_dir: ["-m", "seed=1,2", f"hydra.sweep.dir={run_dir / 'nested'}"],
    "sweep subdir": lambda run_dir: [
        "-m", "seed=1,2", f"hydra.sweep.dir={run_dir.parent / 'sweep'}", "hydra.sweep.subdir=../run/nested"
    ],
    "sweep subdir from overrides": lambda run_dir: [
        "-m", "seed=1,2", f"hydra.sweep.dir={run_dir.parent / 'sweep'}",
        "hydra.sweep.subdir=${hydra.job.override_dirname}", "data.root=x/../../run/nested",
    ],
}  # fmt: skip


def _link(target: Path) -> Path:
    link = target.parent.parent / "link"
    link.symlink_to(target)
    return link


@pytest.mark.parametrize("case", NESTED, ids=list(NESTED))
def test_a_run_or_sweep_inside_a_finished_runs_folder_is_refused(monkeypatch, capfd, tmp_path, case):
    run_dir = tmp_path / "run"  # refused before any training: the folder's marks are all it takes
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "config.yaml").write_text("stage:\n  name: supervised\ntrainer:\n  max_epochs: 1\n")
    (run_dir / "metrics.json").write_text('{"stage": "supervised"}\n')
    before = fingerprint(run_dir)
    tiny = ["backbone=tiny", "data.image_size=32", "data.num_workers=0", "trainer.accelerator=cpu", *SHORT]
    arguments = NESTED[case](run_dir)
    multirun = ["-m"] if "-m" in arguments else []  # Hydra's flag goes before the overrides
    overrides = [argument for argument in arguments if argument != "-m"]
    monkeypatch.setattr(sys, "argv", ["train.py", *multirun, *tiny, *overrides])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    message = r"leads out of the sweep folder" if "subdir" in case else r"is inside the run folder .*run, and"
    assert_one_line_error(capfd.readouterr().err, message)
    assert fingerprint(run_dir) == before and not (run_dir / "nested").exists()
