import json

import pytest
import pytorch_lightning as pl
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from stl10_lightning.common.errors import UserError
from stl10_lightning.data import STL10DataModule
from stl10_lightning.models import TinyNet
from stl10_lightning.models.backbone_file import read_backbone
from stl10_lightning.monitoring.knn import knn_predict
from stl10_lightning.stages.barlow_twins import BarlowTwinsModule, build_projector
from tests.helpers import PRETRAIN_EPOCHS as EPOCHS


def test_run_writes_backbone_and_metrics(pretrained_run):
    run_dir, metrics = pretrained_run
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert saved["stage"] == "barlow_twins" and saved["backbone_path"] == "backbone.pt"
    assert {"knn/acc", "knn/acc_k20", "probe/acc", "ssl/val_loss"} <= saved.keys()
    config, weights, _ = read_backbone(run_dir / "backbone.pt")
    assert config == {"_target_": "stl10_lightning.models.TinyNet", "width": 32}
    assert weights.keys() == TinyNet().state_dict().keys()
    assert (
        not (run_dir / "checkpoints" / "best.ckpt").exists()
        and (run_dir / "checkpoints" / "last.ckpt").exists()
    )


def test_pretraining_beats_random_init_on_knn(pretrained_run, synthetic_root):
    """The kNN accuracy of the pretrained backbone against the same architecture at random init."""
    run_dir, metrics = pretrained_run
    datamodule = STL10DataModule(str(synthetic_root), image_size=32, val_size=100, num_workers=0)
    datamodule.setup()
    torch.manual_seed(0)
    random_init = BarlowTwinsModule(
        {"_target_": "stl10_lightning.models.TinyNet"}, {}, projector="8", image_size=32
    )
    trainer = pl.Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    baseline = trainer.validate(random_init, datamodule=datamodule, verbose=False)[0]["knn/acc"]
    assert metrics["knn/acc"] > baseline + 0.1, (metrics["knn/acc"], baseline)
    print(f"kNN accuracy (k=200): pretrained {metrics['knn/acc']:.3f}, random init {baseline:.3f}")


def test_tensorboard_shows_every_panel(pretrained_run):
    run_dir, _ = pretrained_run
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"images": 0}).Reload()
    scalars = set(events.Tags()["scalars"])
    expected = {
        "ssl/loss_step", "ssl/loss_epoch", "ssl/val_loss", "ssl/on_diag", "ssl/off_diag",
        "ssl/mean_abs_off_diag", "probe/acc", "probe/train_acc", "knn/acc", "knn/acc_k20",
    }  # fmt: skip
    assert expected <= scalars, expected - scalars
    assert len(events.Scalars("knn/acc")) == EPOCHS // 4  # every 4th epoch
    assert "val_embeddings/pca" in events.Tags()["images"]
    assert (run_dir / "tensorboard" / "projector_config.pbtxt").is_file()
    assert any((run_dir / "tensorboard").glob("*/val_embeddings/sprite.png"))


def test_projector_layers():
    projector = build_projector(32, "64-64-16")
    kinds = [type(layer).__name__ for layer in projector]
    assert kinds == ["Linear", "BatchNorm1d", "ReLU", "Linear", "BatchNorm1d", "ReLU", "Linear"]
    assert projector[-1].out_features == 16 and projector[-1].bias is None
    for bad in ("8192-x", "", "0-8", "8192,8192"):
        with pytest.raises(UserError, match="not a list of layer widths"):
            build_projector(32, bad)


def test_knn_against_a_hand_count():
    bank = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9], [0.2, 0.8]])
    labels = torch.tensor([0, 0, 1, 1, 1])
    queries = torch.tensor([[1.0, 0.05], [0.05, 1.0], [0.8, 0.6]])
    # Cosine similarities of the last query: 0.80, 0.86 (class 0); 0.60, 0.68, 0.78 (class 1).
    # k=2 takes the two class-0 rows; k=5 at a sharp temperature is still ruled by them.
    assert knn_predict(queries, bank, labels, 2, 0.07, 2).tolist() == [0, 1, 0]
    assert knn_predict(queries, bank, labels, 5, 0.07, 2).tolist() == [0, 1, 0]
    # a flat temperature makes it a majority vote over all five: class 1 (three of five)
    assert knn_predict(queries, bank, labels, 5, 1e6, 2).tolist() == [1, 1, 1]
