"""The stages built on SupervisedResNet hand it their shared settings by name, and save the same
hyperparameters as before (resume checks compare their names)."""

import pytest

from stl10_lightning.data.stl10_binary import STL10_MEAN, STL10_STD
from stl10_lightning.models import TinyNet
from stl10_lightning.models.backbone_file import save_backbone
from stl10_lightning.stages import (
    LinearProbe,
    OfflinePseudoLabelModule,
    OnlinePseudoLabelModule,
    SupervisedResNet,
)

TINY = {"_target_": "stl10_lightning.models.TinyNet", "width": 32}
SGD = {"_target_": "torch.optim.SGD", "lr": 0.1}
SHARED = {
    "backbone", "optimizer", "num_classes", "image_size", "schedule", "warmup_epochs", "label_smoothing",
    "augment", "ema", "mean", "std",
}  # fmt: skip
AUGMENT = {"crop_padding": 0.125, "flip": True, "cutout": 0.33}


class Stop(Exception):
    """Ends a construction once SupervisedResNet.__init__ has been called."""


@pytest.fixture
def base_arguments(monkeypatch) -> list[tuple[tuple, dict]]:
    """The (positional, keyword) arguments each construction hands SupervisedResNet.__init__."""
    calls = []

    def record(self, *args, **kwargs):
        calls.append((args, kwargs))
        raise Stop

    monkeypatch.setattr(SupervisedResNet, "__init__", record)
    return calls


@pytest.fixture
def backbone_file(tmp_path):
    save_backbone(tmp_path / "backbone.pt", TINY, TinyNet())
    return tmp_path / "backbone.pt"


def test_each_subclass_passes_the_shared_settings_by_name(base_arguments, backbone_file):
    with pytest.raises(Stop):
        OnlinePseudoLabelModule(TINY, SGD, image_size=32, augment=AUGMENT, ema=0.9)
    with pytest.raises(Stop):
        OfflinePseudoLabelModule(TINY, SGD, teacher="unused", warmup_epochs=2, label_smoothing=0.1)
    with pytest.raises(Stop):
        LinearProbe(TINY, SGD, source=str(backbone_file), num_classes=3)
    online, offline, probe = base_arguments
    assert [args for args, _ in base_arguments] == [(), (), ()]
    # Settings a subclass leaves alone pass on only when given: SupervisedResNet has the same defaults.
    # online: the labeled view drops the cutout (the strong view has its own); its warm-up default is 0
    assert online[1] == {
        "backbone": TINY, "optimizer": SGD, "image_size": 32, "warmup_epochs": 0,
        "augment": {"crop_padding": 0.125, "flip": True}, "ema": 0.9,
    }  # fmt: skip
    assert offline[1] == {
        "backbone": TINY, "optimizer": SGD, "warmup_epochs": 2, "label_smoothing": 0.1,
    }  # fmt: skip
    # the probe fixes label smoothing at 0 and keeps no weight average
    assert probe[1] == {
        "backbone": TINY, "optimizer": SGD, "num_classes": 3, "image_size": 96, "schedule": "cosine",
        "warmup_epochs": 0, "label_smoothing": 0.0, "augment": None, "mean": STL10_MEAN, "std": STL10_STD,
    }  # fmt: skip


def test_the_saved_hyperparameters_keep_their_names(finished_run, backbone_file):
    online = OnlinePseudoLabelModule(TINY, SGD, image_size=32, augment=AUGMENT)
    assert set(online.hparams) == SHARED | {
        "threshold", "mu", "lambda_u", "init_backbone", "strong_ops", "strong_cutout", "one_pass",
        "distribution_alignment", "adaptive_threshold", "class_balanced", "guard_momentum", "balance_window",
    }  # fmt: skip
    assert online.hparams.augment == AUGMENT  # the configured value, cutout included, as before
    offline = OfflinePseudoLabelModule(TINY, SGD, teacher=str(finished_run[0]), image_size=32)
    assert set(offline.hparams) == SHARED | {
        "teacher", "threshold", "init", "weight", "balance", "flip_average", "steps",
    }  # fmt: skip
    assert (offline.hparams.image_size, offline.hparams.warmup_epochs) == (32, 5)
    probe = LinearProbe(TINY, SGD, source=str(backbone_file))
    assert set(probe.hparams) == SHARED | {
        "source", "augment_features", "finetune", "backbone_lr", "cache_features",
    }  # fmt: skip
    assert (probe.hparams.label_smoothing, probe.hparams.ema) == (0.0, None)
