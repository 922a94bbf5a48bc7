"""What several test files share: tiny configs, running train.py and reading its refusals, and callbacks
that stand in for a killed or held job. Fixtures stay in conftest.py."""

import re
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import pytorch_lightning as pl
from hydra import compose, initialize_config_dir

from stl10_lightning import study
from stl10_lightning.common.errors import UserError, find_cause
from stl10_lightning.models import TinyNet
from stl10_lightning.models.backbone_file import save_backbone
from stl10_lightning.train import CONFIG_DIR, main

REPO = Path(__file__).resolve().parent.parent


# --- configs ---

# Small enough to generate in about a second, large enough for a tiny CNN to learn the shapes.
SYNTHETIC = {"train": 1000, "test": 300, "unlabeled": 400, "seed": 0}


def compose_tiny(root: Path, run_dir: Path, *overrides: str):
    """The real composed config, set for a tiny, fast CPU run on synthetic data."""
    base = [
        f"data.root={root}",
        f"run_dir={run_dir}",
        "backbone=tiny",
        "data.image_size=32",
        "data.val_size=100",
        "data.batch_size=64",
        "data.num_workers=0",
        "trainer.accelerator=cpu",
        "callbacks.progress_bar=null",
    ]
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return compose("train", overrides=[*base, *overrides])


def compose_train(*overrides: str):
    """The composed config as train.py gets it, without Hydra's run (run_dir is Hydra's to fill)."""
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return compose("train", overrides=["run_dir=unused", *overrides])


# Barlow Twins on CPU: small enough for the suite; long enough that the kNN accuracy beats random init.
PRETRAIN = [
    "stage=barlow_twins",
    "optimizer=adam",  # lr 1e-3 learns in fewer steps than LARS warming up over a short run
    "model.projector=512-512",
    "model.warmup_epochs=1",
    "model.monitor_every_n_epochs=4",
    "model.embedding_points=100",
    "data.train_on=train+unlabeled",
    # 20 steps an epoch: at 128 (10 steps) the kNN margin over random init was 0.04-0.10 over seeds 0-2
    "data.batch_size=64",
    "trainer.log_every_n_steps=2",
]


PRETRAIN_EPOCHS = 16


def stage_inputs(stage: str, finished_run, tmp_path) -> list[str]:
    """What each stage needs from an earlier one: a backbone file or a teacher run."""
    if stage == "barlow_twins":
        return ["model.projector=64-64"]  # the paper's 8192-8192-8192 costs seconds per CPU step
    if stage == "linear_probe":
        save_backbone(
            tmp_path / "backbone.pt", {"_target_": "stl10_lightning.models.TinyNet", "width": 32}, TinyNet()
        )
        return [f"probe.backbone={tmp_path / 'backbone.pt'}"]
    if stage == "pseudo_label":
        return [f"pseudo.teacher={finished_run[0]}", "ratio=0.2", "pseudo.threshold=0.5"]
    if stage == "pseudo_label:online":
        return ["pseudo=online", "ratio=0.2", "pseudo.mu=2", "pseudo.threshold=0.5"]
    return []


# --- running train.py and reading its refusals ---


def run_main(monkeypatch, capfd, tmp_path, *overrides: str) -> tuple[int, str]:
    """`python train.py OVERRIDES` in this process (a subprocess costs seconds of imports)."""
    tiny = ["backbone=tiny", "data.image_size=32", "data.num_workers=0", "trainer.accelerator=cpu"]
    argv = ["train.py", *tiny, f"hydra.run.dir={tmp_path / 'run'}", "callbacks.progress_bar=null", *overrides]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit_info:
        main()
    return exit_info.value.code, capfd.readouterr().err


def run_study_main(capfd, *arguments: str) -> tuple[int, str]:
    """`python -m stl10_lightning.study ARGUMENTS` in this process, for refusals that stop before any run."""
    with pytest.raises(SystemExit) as exit_info:
        study.main(list(arguments))
    return exit_info.value.code, capfd.readouterr().err


def command(root: Path, *overrides: str) -> list[str]:
    """`python train.py` on the tiny synthetic set; without hydra.run.dir, as users start it."""
    tiny = [
        f"data.root={root}", "backbone=tiny", "data.image_size=32", "data.val_size=100", "data.batch_size=64",
        "data.num_workers=0", "trainer.accelerator=cpu", "callbacks.progress_bar=null",
    ]  # fmt: skip
    return [sys.executable, str(REPO / "train.py"), *tiny, *overrides]


def assert_one_line_error(stderr: str, pattern: str) -> None:
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, stderr
    assert re.search(pattern, errors[0]), errors[0]


@contextmanager
def raises_user_error(pattern: str):
    """Like pytest.raises(UserError, match=...), also when Hydra's instantiate wraps the error."""
    with pytest.raises(Exception) as info:
        yield
    error = find_cause(info.value, UserError)
    assert error is not None, info.value
    assert re.search(pattern, str(error)), str(error)


# --- callbacks that stand in for a killed or held job ---


class Interrupted(Exception):
    """Raised by InterruptAtEpoch."""


class InterruptAtEpoch(pl.Callback):
    """Stands in for a killed job: fails at the start of an epoch, after earlier epochs saved last.ckpt."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == self.epoch:
            raise Interrupted


class HoldAtStep(pl.Callback):
    """Writes `marker` once `step` optimizer steps are done, then waits there to be killed."""

    def __init__(self, step: int, marker: str):
        self.step, self.marker = step, Path(marker)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            self.marker.write_text(str(self.step))
            time.sleep(600)
