"""Every experiment with every stage it is for, and both pseudo-label modes: the composed config is valid,
records what trains, and builds the module it describes."""

from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from stl10_lightning.models import TinyNet
from stl10_lightning.models.backbone_file import save_backbone
from stl10_lightning.settings import check_settings
from tests.helpers import compose_train

STAGES = [
    ["stage=supervised"],
    ["stage=barlow_twins"],
    ["stage=linear_probe"],
    ["stage=pseudo_label", "pseudo=offline"],
    ["stage=pseudo_label", "pseudo=online"],
]
# FixMatch's recipes train classifiers from scratch; experiment=fixmatch is the online mode's alone.
EXPERIMENT_STAGES = [
    *[(experiment, stage) for experiment in (None, "demo", "seed_report") for stage in STAGES],
    *[("fixmatch_recipe", stage) for stage in (STAGES[0], STAGES[3], STAGES[4])],
    ("fixmatch", ["stage=pseudo_label"]),
]
THRESHOLDS = {"OfflinePseudoLabelModule": 0.99, "OnlinePseudoLabelModule": 0.95}  # each mode's YAML


@pytest.fixture(scope="module")
def starting_points(finished_run, tmp_path_factory):
    """What the probe and the offline mode load when built: a backbone file and a teacher run."""
    backbone = tmp_path_factory.mktemp("backbone") / "backbone.pt"
    save_backbone(backbone, {"_target_": "stl10_lightning.models.TinyNet", "width": 32}, TinyNet())
    return [f"probe.backbone={backbone}"], [f"pseudo.teacher={finished_run[0]}"]


def _id(case) -> str:
    experiment, stage = case
    return f"{experiment or 'default'}-{'-'.join(argument.split('=')[1] for argument in stage)}"


@pytest.mark.parametrize("case", EXPERIMENT_STAGES, ids=[_id(case) for case in EXPERIMENT_STAGES])
def test_every_experiment_builds_what_its_config_records(case, starting_points):
    experiment, stage = case
    chosen = [*stage, *([f"experiment={experiment}"] if experiment else [])]
    cfg = compose_train(*chosen)
    check_settings(cfg)
    # The top-level groups are what the module builds: config.yaml and HPARAMS show what ran.
    assert cfg.model.optimizer == cfg.optimizer and cfg.model.backbone == cfg.backbone
    assert cfg.model.image_size == cfg.data.image_size
    module_class = cfg.model._target_.rsplit(".", 1)[-1]
    if cfg.stage.name == "pseudo_label":
        assert cfg.data.unlabeled_ratio == cfg.ratio and cfg.model.threshold == cfg.pseudo.threshold
        assert cfg.pseudo.threshold == THRESHOLDS[module_class]
    if experiment == "demo":  # CPU-sized: synthetic images at 32 px, a tiny network
        assert cfg.data.root == "data/synthetic" and cfg.data.image_size == 32
        assert cfg.backbone._target_.endswith("TinyNet")

    # Built on a tiny backbone (and a small projector), the module saves the config's settings as given.
    probe, teacher = starting_points
    small = compose_train(
        *chosen,
        "backbone=tiny",
        *(["model.projector=16-16"] if cfg.stage.name == "barlow_twins" else []),
        *(probe if cfg.stage.name == "linear_probe" else []),
        *(teacher if module_class == "OfflinePseudoLabelModule" else []),
    )
    module = instantiate(small.model)
    assert type(module).__name__ == module_class
    wanted = OmegaConf.to_container(small.model, resolve=True)
    saved = {key: value for key, value in wanted.items() if not key.startswith("_")}
    if "teacher" in saved:  # the offline mode records the checkpoint it found in the teacher's folder
        assert Path(module.hparams["teacher"]).parent.parent == Path(saved.pop("teacher"))
    assert {key: module.hparams.get(key, "not saved") for key in saved} == saved
