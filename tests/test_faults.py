"""Faults a long run meets: SIGKILL mid-epoch, a NaN loss, many jobs starting at once.

Runs are real `python train.py` processes. A test callback holds a run at a chosen step so that the
kill lands mid-epoch every time, however slow the machine.
"""

import json
import math
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.helpers import assert_one_line_error, command, run_main

pytestmark = pytest.mark.slow


class PoisonAtStep(pl.Callback):
    """Turns every weight into NaN before step `step`: the loss of that step is NaN."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            with torch.no_grad():
                for parameter in pl_module.parameters():
                    parameter.fill_(math.nan)


def run_and_kill_at(cwd: Path, root: Path, step: int, *overrides: str) -> Path:
    """Start a run in `cwd`, SIGKILL it when it holds at `step`; its run folder."""
    marker = cwd / "holding"
    hold = ["+callbacks.hold._target_=tests.helpers.HoldAtStep", f"+callbacks.hold.step={step}"]
    with (cwd / "killed.log").open("w") as log:
        process = subprocess.Popen(
            command(root, *overrides, *hold, f"+callbacks.hold.marker={marker}"),
            cwd=cwd,
            stdout=log,
            stderr=log,
        )
        deadline = time.monotonic() + 240
        while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert marker.exists(), (cwd / "killed.log").read_text()[-3000:]
    (run_dir,) = [path.parent for path in (cwd / "outputs").glob("*/*/config.yaml")]
    return run_dir


def resume(cwd: Path, root: Path, run_dir: Path, *overrides: str) -> None:
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    done = subprocess.run(
        command(root, *overrides, f"ckpt_path={ckpt}"), cwd=cwd, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]


def saved_step(run_dir: Path) -> tuple[int, int]:
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    return checkpoint["epoch"], checkpoint["global_step"]


def assert_unfinished(run_dir: Path) -> None:
    """A killed run leaves no result that looks finished, and no half-written temporary file."""
    assert not (run_dir / "metrics.json").exists() and not (run_dir / "backbone.pt").exists()
    assert not list(run_dir.glob(".*.tmp"))


def test_a_run_killed_mid_epoch_resumes_in_its_folder_and_finishes(synthetic_root, tmp_path):
    epochs, steps = 4, 5  # steps per epoch
    settings = [
        f"trainer.max_epochs={epochs}",
        f"+trainer.limit_train_batches={steps}",
        "model.warmup_epochs=1",
    ]
    run_dir = run_and_kill_at(tmp_path, synthetic_root, 2 * steps + 2, *settings)  # 2 steps into epoch 3
    assert_unfinished(run_dir)
    assert saved_step(run_dir) == (1, 2 * steps)  # last.ckpt of the last finished epoch

    resume(tmp_path, synthetic_root, run_dir, *settings)
    assert [path.parent for path in (tmp_path / "outputs").rglob("metrics.json")] == [run_dir]
    assert json.loads((run_dir / "metrics.json").read_text())["epochs"] == epochs
    assert saved_step(run_dir) == (epochs - 1, epochs * steps)
    events = EventAccumulator(str(run_dir / "tensorboard")).Reload()
    val_steps = [event.step for event in events.Scalars("val/acc")]
    assert val_steps[-2:] == [3 * steps - 1, 4 * steps - 1]  # the resumed epochs, after the kill
    assert val_steps == sorted(set(val_steps))  # no epoch logged twice
    assert len(list((run_dir / "tensorboard").glob("events.out.tfevents.*"))) >= 2


def test_barlow_twins_saves_every_n_steps_so_a_kill_loses_at_most_n(synthetic_root, tmp_path):
    epochs, steps, every = 3, 6, 4  # steps per epoch, steps between saves
    settings = [
        "stage=barlow_twins", "model.projector=64-64", f"trainer.max_epochs={epochs}",
        f"+trainer.limit_train_batches={steps}", f"callbacks.step_checkpoint.every_n_train_steps={every}",
    ]  # fmt: skip
    killed_at = steps + 5  # epoch 1, after the step save at 8
    run_dir = run_and_kill_at(tmp_path, synthetic_root, killed_at, *settings)
    assert_unfinished(run_dir)
    epoch, step = saved_step(run_dir)
    assert (epoch, step) == (1, 2 * every) and killed_at - step <= every  # saved mid-epoch

    resume(tmp_path, synthetic_root, run_dir, *settings)
    assert json.loads((run_dir / "metrics.json").read_text())["epochs"] == epochs
    assert (run_dir / "backbone.pt").is_file()
    # The resumed epoch ran only its remaining steps; the epoch-end save wrote the final step.
    assert saved_step(run_dir) == (epochs - 1, epochs * steps)


def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(
    monkeypatch, capfd, synthetic_root, tmp_path
):
    poison = [f"+callbacks.poison._target_={__name__}.PoisonAtStep", "+callbacks.poison.step=9"]
    settings = ["trainer.max_epochs=3", "+trainer.limit_train_batches=4", "data.batch_size=64"]
    settings += [f"data.root={synthetic_root}", "data.val_size=100"]
    code, err = run_main(monkeypatch, capfd, tmp_path, *settings, *poison)
    assert code == 2
    assert_one_line_error(
        err, r"the training loss became nan at step 10 \(epoch 2\); lower the learning rate"
    )
    run_dir = tmp_path / "run"
    assert not (run_dir / "metrics.json").exists()
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert (checkpoint["epoch"], checkpoint["global_step"]) == (1, 8)
    assert all(torch.isfinite(tensor).all() for tensor in checkpoint["state_dict"].values())


def test_four_jobs_started_at_once_write_four_folders(synthetic_root, tmp_path):
    """Four single runs started together, and a sweep of four parallel joblib jobs."""
    fast = ["debug=fast_dev_run"]
    processes = [
        subprocess.Popen(
            command(synthetic_root, *fast, f"seed={seed}"), cwd=tmp_path, stdout=subprocess.DEVNULL
        )
        for seed in range(4)
    ]
    sweep = command(synthetic_root, *fast, "hydra/launcher=joblib", "hydra.launcher.n_jobs=4", "seed=0,1,2,3")
    done = subprocess.run(
        [*sweep[:2], "-m", *sweep[2:]], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert all(process.wait(timeout=300) == 0 for process in processes)

    singles = [
        path for path in (tmp_path / "outputs" / "supervised").iterdir() if "multirun" not in path.name
    ]
    (multirun,) = (tmp_path / "outputs" / "supervised").glob("multirun_*")
    for folders in (singles, [multirun / str(job) for job in range(4)]):
        seeds = sorted(json.loads((folder / "metrics.json").read_text())["seed"] for folder in folders)
        assert seeds == [0, 1, 2, 3]
    assert len(os.listdir(multirun)) == 5  # the four jobs and multirun.yaml
