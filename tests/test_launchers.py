"""Sweeps through Hydra's submitit launchers: run locally here, composed for SLURM (no cluster needed)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from stl10_lightning.train import CONFIG_DIR, train
from tests.helpers import REPO, compose_tiny


@pytest.fixture(scope="module")
def teacher(synthetic_root, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("teacher")
    train(compose_tiny(synthetic_root, run_dir, "trainer.max_epochs=1", "+trainer.limit_train_batches=3"))
    return run_dir


@pytest.mark.slow
def test_submitit_local_runs_the_ratio_sweep(synthetic_root, teacher, tmp_path):
    command = [
        sys.executable, str(REPO / "train.py"), "-m", "hydra/launcher=submitit_local",
        "hydra.launcher.timeout_min=10", "stage=pseudo_label", "ratio=0.1,0.2", f"pseudo.teacher={teacher}",
        "pseudo.threshold=0.5",
        f"data.root={synthetic_root}", "backbone=tiny", "data.image_size=32", "data.val_size=100",
        "data.num_workers=0", "trainer.accelerator=cpu", "callbacks.progress_bar=null", "debug=fast_dev_run",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
    ]  # fmt: skip
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    results = sorted((tmp_path / "sweep").glob("*/metrics.json"))
    assert [path.parent.name for path in results] == ["0", "1"]
    assert [json.loads(path.read_text())["unlabeled_used"] for path in results] == [100, 200]
    assert len(list((tmp_path / "sweep" / ".submitit").glob("[0-9]*"))) == 2  # one local job each


def test_the_slurm_launcher_asks_for_one_task_per_gpu():
    overrides = [
        "hydra/launcher=slurm", "hydra.launcher.partition=gpu", "trainer=ddp_gpu", "trainer.devices=4",
        "trainer.num_nodes=2",
    ]  # fmt: skip
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert launcher["_target_"].endswith("SlurmLauncher") and launcher["partition"] == "gpu"
    assert (launcher["nodes"], launcher["gpus_per_node"], launcher["tasks_per_node"]) == (2, 4, 4)
    assert cfg.trainer.strategy == "ddp" and cfg.trainer.sync_batchnorm
