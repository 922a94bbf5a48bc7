"""Callbacks of our own, where Lightning's do not cover the case."""

import pytorch_lightning as pl
import torch

from stl10_lightning.errors import UserError


class StopOnNonFiniteLoss(pl.Callback):
    """Stop at the first NaN or infinite training loss, with the step in the message.

    Lightning's EarlyStopping(check_finite=True) only looks at a logged metric at validation time, an
    epoch after the weights were ruined. Raising here happens before any checkpoint of the broken
    weights, so last.ckpt keeps the last good save (epoch end or step cadence). Checks every
    `every_n_steps` steps: each check waits for the GPU.
    """

    def __init__(self, every_n_steps: int = 1):
        self.every_n_steps = every_n_steps

    def on_train_batch_end(self, trainer: pl.Trainer, module: pl.LightningModule, outputs, batch, batch_idx):
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is None or trainer.global_step % self.every_n_steps:
            return
        if not torch.isfinite(loss):
            raise UserError(
                f"the training loss became {loss.item()} at step {trainer.global_step} (epoch "
                f"{trainer.current_epoch}); lower the learning rate or use trainer.precision=32-true, and "
                "resume from last.ckpt, saved before the loss broke"
            )
