import pytest
from hydra.utils import instantiate

from stl10_lightning.stages import OfflinePseudoLabelModule, OnlinePseudoLabelModule, SupervisedResNet
from tests.helpers import compose_train


def test_seed_report_reproduces_the_reports_settings():
    cfg = compose_train("experiment=seed_report")
    assert cfg.model.optimizer._target_ == "torch.optim.Adam" and cfg.model.optimizer.lr == 1e-3
    assert cfg.model.backbone._target_.endswith("ResNet9") and cfg.trainer.max_epochs == 10
    assert cfg.model.schedule == "constant" and cfg.model.label_smoothing == 0.0
    assert cfg.model.augment == {"crop_padding": 0.0, "flip": False, "cutout": 0.0}


def test_fixmatch_recipe_is_the_papers_on_one_gpu():
    cfg = compose_train("experiment=fixmatch")
    assert cfg.stage.name == "pseudo_label" and cfg.model._target_.endswith("OnlinePseudoLabelModule")
    assert cfg.pseudo.threshold == 0.95 and cfg.pseudo.mu == 7 and cfg.pseudo.lambda_u == 1.0
    optimizer = cfg.model.optimizer
    assert optimizer._target_ == "torch.optim.SGD" and optimizer.lr == 0.03 and optimizer.nesterov
    assert optimizer.lr_reference_batch == 64  # the paper's lr is for its B
    assert optimizer.weight_decay == 5e-4 and cfg.data.batch_size == 64 and cfg.model.ema == 0.999
    assert cfg.model.schedule == "cosine" and cfg.model.warmup_epochs == 0


@pytest.mark.parametrize(
    ("mode", "cls", "threshold"),
    [("offline", OfflinePseudoLabelModule, 0.99), ("online", OnlinePseudoLabelModule, 0.95)],
)
def test_pseudo_mode_picks_the_module_and_only_its_settings(make_cfg, finished_run, mode, cls, threshold):
    own_settings = {"offline": [f"pseudo.teacher={finished_run[0]}"], "online": []}
    model = instantiate(make_cfg("stage=pseudo_label", f"pseudo={mode}", *own_settings[mode]).model)
    assert type(model) is cls and model.hparams.threshold == threshold  # each mode's own, in its YAML
    other = {"offline": "mu", "online": "teacher"}[mode]
    assert other not in model.hparams and "ema" in model.hparams


def test_default_recipe_keeps_label_smoothing_off_and_selects_on_val(make_cfg):
    cfg = make_cfg()
    assert cfg.model.label_smoothing == 0.0
    assert cfg.model.optimizer.lr == 0.1 and cfg.model.optimizer.lr_reference_batch == 128
    assert cfg.callbacks.best_checkpoint.monitor == "val/acc"


def test_debug_wins_over_experiment():
    cfg = compose_train("experiment=demo", "debug=fast_dev_run")
    assert cfg.data.num_workers == 0  # demo sets 2, debug (last in the defaults) sets 0


def test_gpu_trainer_uses_mixed_precision():
    assert compose_train("trainer=gpu").trainer.precision == "bf16-mixed"


def test_demo_takes_other_backbones():
    assert instantiate(compose_train("experiment=demo", "backbone=resnet9").model).backbone.feature_dim == 512


@pytest.mark.parametrize("backbone", ["tiny", "resnet9", "resnet18", "resnet50"])
def test_stage_builds_with_every_backbone(make_cfg, backbone):
    model = instantiate(make_cfg(f"backbone={backbone}").model)
    assert isinstance(model, SupervisedResNet)
    assert model.head.in_features == model.backbone.feature_dim
