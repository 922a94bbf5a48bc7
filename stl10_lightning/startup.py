"""Checks before training starts: the trainer fits this machine, the images fit the backbone."""

import os

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from lightning_fabric.utilities.exceptions import MisconfigurationException
from omegaconf import DictConfig
from pytorch_lightning.accelerators import CPUAccelerator

from stl10_lightning.errors import UserError, find_cause
from stl10_lightning.models.backbone_file import describe


def instantiate_all(group: DictConfig | None) -> list:
    """Instantiate every entry of a callbacks/logger group; `null` entries switch one off."""
    return [instantiate(entry) for entry in (group or {}).values() if entry is not None]


def make_trainer(cfg: DictConfig) -> pl.Trainer:
    """The configured Trainer; devices or accelerators this machine lacks are a one-line error."""
    try:
        trainer = instantiate(
            cfg.trainer,
            callbacks=instantiate_all(cfg.callbacks),
            logger=instantiate_all(cfg.logger) or False,
        )
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
