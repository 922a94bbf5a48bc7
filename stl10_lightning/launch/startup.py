"""Checks before training starts: the trainer fits this machine, the data is there and usable, the images
fit the backbone. None of them writes into the run folder."""

import logging
import os

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from lightning_fabric.utilities.exceptions import MisconfigurationException
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.accelerators import CPUAccelerator

from stl10_lightning.common.errors import UserError, find_cause
from stl10_lightning.data import STL10DataModule
from stl10_lightning.launch.callbacks import CheckpointPathsFollowTheRun
from stl10_lightning.models.backbone_file import describe
from stl10_lightning.settings.schema import PSEUDO_MODES, own_settings
from stl10_lightning.stages import BarlowTwinsModule

log = logging.getLogger(__name__)


def instantiate_all(group: DictConfig | None, name: str) -> list:
    """Instantiate every entry of a callbacks/logger group; `null` entries switch one off.

    An entry the class refuses (e.g. ModelCheckpoint's own argument checks) names its key.
    """
    built = []
    for key, entry in (group or {}).items():
        if entry is None:
            continue
        try:
            built.append(instantiate(entry))
        except Exception as err:
            refused = find_cause(err, UserError) or find_cause(err, MisconfigurationException)
            if refused is None:
                raise
            message = " ".join(str(refused).split())
            raise UserError(
                message if isinstance(refused, UserError) else f"{name}.{key}: {message}"
            ) from err
    return built


def make_trainer(cfg: DictConfig) -> pl.Trainer:
    """The configured Trainer; devices or accelerators this machine lacks are a one-line error."""
    callbacks = [*instantiate_all(cfg.callbacks, "callbacks"), CheckpointPathsFollowTheRun()]
    logger = instantiate_all(cfg.logger, "logger") or False
    try:
        trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=logger)
    except Exception as err:  # e.g. accelerator=gpu without a GPU, or more GPUs than exist
        misfit = find_cause(err, MisconfigurationException)
        if misfit is None:
            raise
        message = " ".join(str(misfit).split())  # Lightning's messages span lines
        raise UserError(f"the trainer settings do not fit this machine: {message}") from err
    cores = os.cpu_count() or 1
    # Lightning starts any number of CPU processes; far more than cores only thrashes the machine.
    if isinstance(trainer.accelerator, CPUAccelerator) and trainer.num_devices > cores:
        raise UserError(
            f"trainer.devices={trainer.num_devices} asks for {trainer.num_devices} CPU processes on a "
            f"machine with {cores} cores; use at most {cores}"
        )
    return trainer


def check_image_size(model: pl.LightningModule, cfg: DictConfig) -> None:
    """One forward pass at data.image_size now, instead of a shape error in the middle of the first epoch."""
    size = cfg.data.image_size
    backbone = model.backbone
    was_training = backbone.training
    try:
        with torch.no_grad():
            backbone.eval()(torch.zeros(1, 3, size, size))
    except (RuntimeError, ValueError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UserError(
            f"data.image_size={size} is too small for backbone {describe(cfg.backbone)} ({reason}); use a "
            "larger size, e.g. 32 or STL-10's own 96"
        ) from err
    finally:
        backbone.train(was_training)


def check_data(datamodule: STL10DataModule) -> None:
    """Read the data now (files, labels, splits, the unlabeled subset), so that a missing or unusable
    folder is refused before the run starts. Fit reuses what this sets up."""
    datamodule.prepare_data()
    datamodule.setup("fit")
    data = datamodule.hparams
    if data.train_on != "labeled" or data.unlabeled_ratio is not None or data.unlabeled_count is not None:
        datamodule.unlabeled_set()
    if data.train_on == "unlabeled" and len(datamodule.splits["unlabeled"]) == 0:
        raise UserError(
            f"data.train_on=unlabeled, but {datamodule.root} has no unlabeled images; use "
            "data.train_on=train+unlabeled, or prepare the data with an unlabeled folder"
        )
    empty = [name for name in ("train", "val", "test") if len(datamodule.splits[name]) == 0]
    if empty:
        raise UserError(f"the {empty[0]} split of {datamodule.root} has no images; a run needs all three")


def warn_about_ignored_settings(cfg: DictConfig, given: list[str]) -> None:
    """Name the pseudo.* keys set on the command line (`given`: Hydra's overrides) that the chosen mode
    ignores, e.g. pseudo.teacher in the online mode: a run must not look as if they had applied."""
    chosen = next(
        (mode for mode, node in PSEUDO_MODES.items() if OmegaConf.get_type(cfg.get("pseudo")) is node), None
    )
    if chosen is None:
        return
    keys = {override.lstrip("+~").split("=", 1)[0] for override in given}
    for mode in PSEUDO_MODES.keys() - {chosen}:
        ignored = sorted(
            key for key in keys if key.removeprefix("pseudo.") in own_settings(mode) - own_settings(chosen)
        )
        if ignored:
            log.warning("pseudo=%s ignores %s (settings of the %s mode)", chosen, ", ".join(ignored), mode)


def check_model_fits_data(model: pl.LightningModule, datamodule: STL10DataModule) -> None:
    """What only the model and the data together can tell: classes, labeled batches, the kNN bank."""
    hparams, data = model.hparams, datamodule.hparams
    classes = len(datamodule.class_names)
    if classes and hparams.get("num_classes") not in (None, classes):
        raise UserError(
            f"model.num_classes={hparams.num_classes} does not match the {classes} classes of "
            f"{datamodule.root}; leave it at {classes}"
        )
    if not isinstance(model, BarlowTwinsModule) and data.train_on != "labeled":
        raise UserError(
            f"data.train_on={data.train_on}: this stage trains a classifier on labeled images only; leave "
            "data.train_on=labeled (unlabeled images reach pseudo_label through ratio, and barlow_twins)"
        )
    bank = len(datamodule.splits["train"])
    too_many = [k for k in hparams.get("knn_k", ()) if k > bank]
    if too_many:
        raise UserError(
            f"model.knn_k has {too_many[0]} neighbours, more than the {bank} labeled train images in the kNN "
            f"bank (knn/acc_k{too_many[0]} would name a k it cannot use); use values up to {bank}"
        )
