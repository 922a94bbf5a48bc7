"""Optimizer and learning-rate schedule shared by the stages."""

import logging

import pytorch_lightning as pl
from hydra.utils import instantiate
from pytorch_lightning.utilities import rank_zero_only
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, LRScheduler, SequentialLR
from torch.utils.data import DataLoader

from stl10_lightning.common.errors import UserError

log = logging.getLogger(__name__)


def build_optimizer(
    config: dict, module: nn.Module, global_batch: int, extra_groups: tuple[dict, ...] = ()
) -> Optimizer:
    """Instantiate `config` (a `_target_` dict) with weight decay on weights only.

    Biases and BatchNorm parameters (every tensor with fewer than two dimensions) get no decay, and the
    learning rate `no_decay_lr` when the config sets one. With `lr_reference_batch` in the config (any
    optimizer may set it), both rates scale linearly by global_batch / lr_reference_batch, and the log
    says so. `extra_groups` (complete param groups, e.g. an online probe) are added as they are.
    """
    config = dict(config)
    no_decay_lr = config.pop("no_decay_lr", None)
    reference_batch = config.pop("lr_reference_batch", None)
    scale = global_batch / reference_batch if reference_batch else 1.0
    if reference_batch:
        log_scaled_lr(config["lr"], global_batch, reference_batch, no_decay_lr)
    config["lr"] = config["lr"] * scale
    params = [p for p in module.parameters() if p.requires_grad]
    no_decay = {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0, "name": "no_decay"}
    if no_decay_lr is not None:
        no_decay["lr"] = no_decay_lr * scale
    groups = [{"params": [p for p in params if p.ndim > 1], "name": "weights"}, no_decay, *extra_groups]
    return instantiate({**config, "_partial_": True})(groups)


@rank_zero_only
def log_scaled_lr(lr: float, global_batch: int, reference_batch: int, no_decay_lr: float | None) -> None:
    scale = global_batch / reference_batch
    also = "" if no_decay_lr is None else f"; no_decay_lr {no_decay_lr:g} -> {no_decay_lr * scale:g}"
    log.info(
        "learning rate: optimizer.lr %g x global batch %d / optimizer.lr_reference_batch %d = %g%s",
        lr, global_batch, reference_batch, lr * scale, also,
    )  # fmt: skip


def global_batch(
    module: pl.LightningModule, loader: str = "labeled", setting: str = "data.batch_size"
) -> int:
    """Images per optimizer step across all devices: what a linear learning-rate scaling rule uses.

    Counted from the DataLoader that serves the training batches (`loader` names it when they are a dict
    of loaders), not from `setting`: a process with fewer images than the batch size gets one smaller
    batch (the loaders drop a last partial batch only when there is more than one), and the rate
    follows that batch. A warning names `setting` when that happens.
    """
    served = training_loader(module, loader)
    if served is None:  # no training batch at all (limit_train_batches=0): train.py refuses the run after fit
        return module.trainer.datamodule.hparams.batch_size * module.trainer.world_size
    images = len(served.sampler)  # this process's share under DDP (Lightning's DistributedSampler)
    batch = min(served.batch_size, images)
    if batch < served.batch_size:
        warn_batch_clamped(setting, served.batch_size, images)
    return batch * module.trainer.world_size * module.trainer.accumulate_grad_batches


def training_loader(module: pl.LightningModule, name: str) -> DataLoader | None:
    """The fit's train DataLoader, or the one called `name` when the batches are a dict of loaders."""
    trainer = module.trainer
    if trainer.train_dataloader is None:  # configure_optimizers runs before fit loads it
        trainer.fit_loop.setup_data()
    loaders = trainer.train_dataloader
    return loaders.get(name) if isinstance(loaders, dict) else loaders


@rank_zero_only
def warn_batch_clamped(setting: str, batch_size: int, images: int) -> None:
    log.warning(
        "%s=%d is more than the %d training images per process: each step trains on one batch of %d, and "
        "learning rates scale with that batch",
        setting, batch_size, images, images,
    )  # fmt: skip


def warmup_cosine(optimizer: Optimizer, warmup_steps: int, total_steps: int) -> LRScheduler:
    """Linear warm-up from ~0 over `warmup_steps`, then cosine decay to 0 at `total_steps`."""
    cosine = CosineAnnealingLR(optimizer, T_max=max(total_steps - warmup_steps, 1))
    if warmup_steps <= 0:
        return cosine
    warmup = LinearLR(optimizer, start_factor=1e-3, total_iters=warmup_steps)
    return SequentialLR(optimizer, [warmup, cosine], milestones=[warmup_steps])


SCHEDULES = ("cosine", "constant")


def check_schedule(schedule: str) -> str:
    """`model.schedule`, refused with one line at construction if it is not one we build."""
    if schedule not in SCHEDULES:
        raise UserError(f"model.schedule={schedule!r}; choose one of {SCHEDULES}")
    return schedule


def with_schedule(module: pl.LightningModule, optimizer: Optimizer, schedule: str, warmup_epochs: float):
    """configure_optimizers' return value: `optimizer` alone, or with warm-up and cosine decay per step."""
    if check_schedule(schedule) == "constant":
        return optimizer
    trainer = module.trainer
    total_steps = trainer.estimated_stepping_batches
    epochs = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else 1
    warmup_steps = int(total_steps * warmup_epochs / epochs)
    scheduler = warmup_cosine(optimizer, min(warmup_steps, total_steps - 1), total_steps)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def remember_schedule_length(module: pl.LightningModule, checkpoint: dict) -> None:
    """on_save_checkpoint: the cosine schedule's length, trainer.max_epochs, goes into the checkpoint."""
    checkpoint["max_epochs"] = module.trainer.max_epochs


def check_schedule_length(module: pl.LightningModule, checkpoint: dict, schedule: str) -> None:
    """on_load_checkpoint: a resume restores the scheduler's state, so the schedule length must match."""
    resuming = module._trainer is not None and module.trainer.state.fn == "fit"
    if not resuming or schedule != "cosine":
        return
    if checkpoint.get("max_epochs", module.trainer.max_epochs) != module.trainer.max_epochs:
        raise UserError(
            f"cannot resume with trainer.max_epochs={module.trainer.max_epochs}: the checkpoint's cosine "
            f"schedule runs {checkpoint['max_epochs']} epochs; resume with that, or start a new run"
        )
