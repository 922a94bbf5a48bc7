"""The type and allowed range of every setting in conf/, one dataclass per config node.

Hydra merges the YAML files onto these (each file names its schema in its defaults list), so a value of
the wrong type is refused while the config is composed, naming the key; `check.py` then checks the ranges
before any data, model or run folder is touched. `???` (MISSING) marks a value every YAML option sets.
A `_target_` can still name another class: its extra arguments go in with `+key=value`, as usual in Hydra.
"""

from dataclasses import dataclass, field, fields
from typing import Any

from omegaconf import MISSING

from stl10_lightning.data.datamodule import TRAIN_ON
from stl10_lightning.models.torchvision_resnet import STEMS
from stl10_lightning.optim.build import SCHEDULES
from stl10_lightning.settings.ranges import (
    above,
    at_least,
    devices,
    each_at_least,
    one_of,
    per_channel,
    within,
)

# Lightning's accepted `precision` and `accelerator` values (its own check comes later and says less).
PRECISIONS = (
    "32-true",
    "16-mixed",
    "bf16-mixed",
    "16-true",
    "bf16-true",
    "64-true",
    16,
    32,
    64,
    "16",
    "32",
    "64",
)
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps", "tpu")
SEED_MAX = 2**32 - 1  # numpy's seed range, which Lightning's seed_everything enforces by replacing the seed
PSEUDO_STEPS = ("epochs", "match_supervised")


# --- data -----------------------------------------------------------------------------------------------


@dataclass
class SyntheticData:
    train: int = at_least(20, why="labeled images to generate")
    test: int = at_least(1, why="test images to generate")
    unlabeled: int = at_least(0, why="unlabeled images to generate")
    seed: int = within(0, SEED_MAX, closed="[]", why="the generator's seed")


@dataclass
class Data:
    _target_: str = MISSING
    _convert_: str = "all"
    root: str = MISSING
    download: bool = False
    synthetic: SyntheticData | None = None
    image_size: int = at_least(
        1, why="the side images are resized to on the device; the backbone may need more"
    )
    val_size: int = at_least(1, why="labeled images held out to select checkpoints")
    fold: int | None = within(0, 9, None, closed="[]", why="one of STL-10's ten official 1,000-image folds")
    labeled_count: int | None = at_least(2, None, why="labeled images kept, stratified, before the val split")
    unlabeled_count: int | None = at_least(1, None, why="unlabeled images to use; null takes all")
    unlabeled_ratio: float | None = above(0, None, why="unlabeled images per labeled one")
    train_on: str = one_of(TRAIN_ON)
    batch_size: int = at_least(1, why="training images per device and step")
    unlabeled_batch_size: int | None = at_least(1, None, why="unlabeled images per step; null: batch_size")
    eval_batch_size: int = at_least(1, why="images per evaluation batch")
    num_workers: int = at_least(0, why="DataLoader worker processes; 0 loads in the main process")
    pin_memory: bool | None = None
    seed: int = within(0, SEED_MAX, closed="[]", why="fixes the val split and the unlabeled subsets")


# --- backbones ------------------------------------------------------------------------------------------


@dataclass
class TorchvisionResNet:
    _target_: str = MISSING
    stem: str = one_of(STEMS, why="see stl10_lightning/models/torchvision_resnet.py")


@dataclass
class ResNet9:
    _target_: str = MISSING
    width: int = at_least(1, why="channels of the first block")
    dropout: float = within(0, 1, why="dropout before the pooled features")


@dataclass
class TinyNet:
    _target_: str = MISSING
    width: int = at_least(1, why="channels of the first convolution")


# --- optimizers -----------------------------------------------------------------------------------------
# lr_reference_batch (any optimizer): the lr is for this global batch and scales linearly with the real one.


@dataclass
class SGD:
    _target_: str = MISSING
    lr: float = above(0)
    momentum: float = within(0, 1)
    nesterov: bool = False
    weight_decay: float = at_least(0)
    lr_reference_batch: int | None = at_least(1, None)


@dataclass
class Adam:
    _target_: str = MISSING
    lr: float = above(0)
    weight_decay: float = at_least(0, 0.0)
    lr_reference_batch: int | None = at_least(1, None)


@dataclass
class LARS:
    _target_: str = MISSING
    lr: float = above(0, why="the weights' rate")
    no_decay_lr: float = above(0, why="the biases' and BatchNorm's rate")
    lr_reference_batch: int | None = at_least(1, None)
    weight_decay: float = at_least(0)
    momentum: float = within(0, 1)
    eta: float = above(0, why="the LARS trust coefficient")


# --- trainer --------------------------------------------------------------------------------------------


@dataclass
class Trainer:
    _target_: str = MISSING
    accelerator: str = one_of(ACCELERATORS)
    devices: Any = devices()
    precision: Any = one_of(PRECISIONS)
    max_epochs: int = at_least(1, why="passes over the training images; the cosine schedule spans them")
    log_every_n_steps: int = at_least(1)
    default_root_dir: str = MISSING
    deterministic: Any = False
    benchmark: bool | None = None
    strategy: Any = "auto"
    num_nodes: int = at_least(1, 1, why="machines")
    sync_batchnorm: bool = False
    plugins: Any = None
    fast_dev_run: Any = False  # debug=fast_dev_run: one batch of each loop


# --- stages ---------------------------------------------------------------------------------------------


@dataclass
class Stage:
    name: str = MISSING
    monitor: str = MISSING  # the val metric that selects best.ckpt and that sweepers optimise


@dataclass
class Augment:
    """The labeled view's random steps, as fractions of the image side."""

    crop_padding: float = within(0, 1, why="pad-and-crop translation")
    flip: bool = True
    cutout: float = within(0, 1, why="side of the erased square; 1 or more would erase every image")


@dataclass
class StageModel:
    """What every stage's LightningModule takes: built by Hydra from plain dicts (so that checkpoints load
    with weights_only=True), with the backbone and optimizer groups' nodes."""

    _target_: str = MISSING
    _recursive_: bool = False
    _convert_: str = "all"
    backbone: Any = MISSING
    optimizer: Any = MISSING
    num_classes: int = at_least(2, why="the data's classes")
    image_size: int = at_least(1)
    schedule: str = one_of(SCHEDULES)
    warmup_epochs: float = at_least(0, why="linear warm-up before the cosine decay")
    mean: list[float] = per_channel(0, 1, why="the data's per-channel mean, which normalization subtracts")
    std: list[float] = per_channel(0, 1, closed="(]", why="the data's per-channel std, which it divides by")


@dataclass
class ClassifierModel(StageModel):
    """What every stage that trains a classifier head shares (supervised, probe, pseudo-label)."""

    augment: Augment = field(default_factory=Augment)


@dataclass
class SupervisedModel(ClassifierModel):
    label_smoothing: float = within(0, 1)
    ema: float | None = within(0, 1, None, why="share of the old average kept each step (FixMatch: 0.999)")


@dataclass
class LinearProbeModel(ClassifierModel):
    source: str | None = None
    augment_features: bool = False
    finetune: bool = False
    backbone_lr: float = above(0)


@dataclass
class OfflinePseudoLabelModel(SupervisedModel):
    threshold: float = MISSING
    teacher: str | None = None
    init: str = MISSING
    weight: float = MISSING
    balance: bool = False
    flip_average: bool = False
    steps: str = MISSING


@dataclass
class OnlinePseudoLabelModel(SupervisedModel):
    threshold: float = MISSING
    mu: int = MISSING
    lambda_u: float = MISSING
    init_backbone: str | None = None
    strong_ops: int = MISSING
    strong_cutout: float = MISSING
    one_pass: bool = True
    distribution_alignment: bool = False
    adaptive_threshold: bool = False
    class_balanced: bool = False
    guard_momentum: float = MISSING
    balance_window: int = MISSING


@dataclass
class BarlowTwinsModel(StageModel):
    projector: str = MISSING
    lambd: float = at_least(0, why="weight of the off-diagonal term")
    augment: dict[str, Any] = field(default_factory=dict)
    monitor_every_n_epochs: int = at_least(1, why="epochs between kNN and embedding evaluations")
    knn_k: list[int] = each_at_least(1, lambda: [200, 20], why="neighbours of the kNN monitor")
    knn_temperature: float = above(0)
    embedding_points: int = at_least(0, why="val images in the embedding plots")


@dataclass
class Probe:
    backbone: str | None = None
    augment: bool = False
    finetune: bool = False
    backbone_lr: float = above(0)


@dataclass
class PseudoLabelMode:
    """What both pseudo-label modes (the group `pseudo`, conf/pseudo/) share."""

    threshold: float = within(0, 1, closed="(]", why="a softmax confidence")


@dataclass
class OfflinePseudo(PseudoLabelMode):
    teacher: str | None = None
    init: str = one_of(("scratch", "teacher"))
    weight: float = at_least(0, why="loss weight of pseudo-labeled images")
    balance: bool = False
    flip_average: bool = False
    steps: str = one_of(PSEUDO_STEPS, "epochs", why="the offline student's budget")
    # The online mode's settings: accepted and ignored, with a warning naming them (launch/startup.py),
    # so that one sweep over both modes (-m pseudo=offline,online) can set each mode's own.
    mu: Any = None
    lambda_u: Any = None
    init_backbone: Any = None
    strong_ops: Any = None
    strong_cutout: Any = None
    one_pass: Any = None
    distribution_alignment: Any = None
    adaptive_threshold: Any = None
    class_balanced: Any = None
    guard_momentum: Any = None
    balance_window: Any = None


@dataclass
class OnlinePseudo(PseudoLabelMode):
    mu: int = at_least(1, why="unlabeled images per labeled one in each step")
    lambda_u: float = at_least(0, why="weight of the unlabeled loss")
    init_backbone: str | None = None
    strong_ops: int = within(0, 14, closed="[]", why="RandAugment operations per image (14 in the pool)")
    strong_cutout: float = within(0, 1, why="side of the strong view's cutout")
    one_pass: bool = True
    distribution_alignment: bool = False
    adaptive_threshold: bool = False
    class_balanced: bool = False
    guard_momentum: float = within(0, 1, why="the guards' share of the old running statistic each step")
    balance_window: int = at_least(
        1, why="recent unlabeled predictions the class-balanced bars are read from"
    )
    # The offline mode's settings: accepted and ignored, with a warning (see OfflinePseudo).
    teacher: Any = None
    init: Any = None
    weight: Any = None
    balance: Any = None
    flip_average: Any = None
    steps: Any = None


# Each pseudo-label mode (the group `pseudo`, conf/pseudo/) and the settings it uses.
PSEUDO_MODES = {"offline": OfflinePseudo, "online": OnlinePseudo}


def own_settings(mode: str) -> set[str]:
    """The pseudo.* keys that `mode` uses: those the other mode's node only carries are typed Any."""
    return {field.name for field in fields(PSEUDO_MODES[mode]) if field.type is not Any}


# --- the whole run --------------------------------------------------------------------------------------


@dataclass
class Run:
    """conf/train.yaml: the run's own keys and one node per group. `model` is typed by its stage's file."""

    ratio: float | None = above(0, None, why="unlabeled images per labeled one")
    seed: int | None = within(0, SEED_MAX, 0, closed="[]", why="null leaves the run unseeded")
    ckpt_path: str | None = None
    run_dir: str = MISSING
    stage: Stage = field(default_factory=Stage)
    data: Any = MISSING
    backbone: Any = MISSING
    optimizer: Any = MISSING
    trainer: Any = MISSING
    callbacks: dict[str, Any] | None = field(default_factory=dict)
    logger: dict[str, Any] | None = field(default_factory=dict)
    # Typed by the stages that have them (stage/linear_probe.yaml, stage/pseudo_label.yaml); empty in the
    # others, so that setting one of their keys there is an unknown key, not a crash on null.
    probe: Any = field(default_factory=dict)
    pseudo: Any = field(default_factory=dict)
    model: Any = MISSING
