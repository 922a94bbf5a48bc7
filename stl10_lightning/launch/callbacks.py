"""Callbacks of our own, where Lightning's do not cover the case."""

from pathlib import Path

import pytorch_lightning as pl
import torch

from stl10_lightning.common.errors import UserError


class StopOnNonFiniteLoss(pl.Callback):
    """Stop at the first NaN or infinite training loss, with the step in the message.

    Lightning's EarlyStopping(check_finite=True) only looks at a logged metric at validation time, an
    epoch after the weights were ruined. Raising here happens before any checkpoint of the broken
    weights, so last.ckpt keeps the last good save (epoch end or step cadence). Checks every
    `every_n_steps` steps: each check waits for the GPU.
    """

    def __init__(self, every_n_steps: int = 1):
        if not isinstance(every_n_steps, int) or every_n_steps < 1:
            raise UserError(
                f"callbacks.finite_loss.every_n_steps={every_n_steps!r} must be a whole number >= 1 (steps "
                "between checks of the loss)"
            )
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


class CheckpointPathsFollowTheRun(pl.Callback):
    """On resume, the checkpoint callbacks' saved paths point into this run folder, wherever it now is.

    ModelCheckpoint saves absolute paths (best_model_path, ...). In a copied or moved run folder they name
    the old place: Lightning would then test the old folder's best.ckpt, and replacing a best checkpoint
    would delete the old folder's file. Their states are re-anchored before ModelCheckpoint reads them
    (every callback's on_load_checkpoint runs before any load_state_dict), so scores are kept too.
    """

    def on_load_checkpoint(self, trainer: pl.Trainer, module: pl.LightningModule, checkpoint: dict) -> None:
        states = checkpoint.get("callbacks", {})
        for callback in trainer.checkpoint_callbacks:
            state = states.get(callback.state_key)
            if state and callback.dirpath and state.get("dirpath") not in (None, callback.dirpath):
                states[callback.state_key] = _reanchored(
                    state, Path(state["dirpath"]), Path(callback.dirpath)
                )


def _reanchored(state: dict, old: Path, new: Path) -> dict:
    """`state` with its paths moved from `old` to `new`. A checkpoint the new folder lacks (a resume into
    another folder) is forgotten with its score: best.ckpt then competes among the resumed epochs only."""

    def moved(path: str) -> str:
        if not path or not Path(path).is_relative_to(old):
            return path
        there = new / Path(path).relative_to(old)
        return str(there) if there.is_file() else ""

    state = dict(state, dirpath=str(new))
    for key in ("best_model_path", "kth_best_model_path", "last_model_path"):
        if key in state:
            state[key] = moved(state[key])
    if state.get("best_model_path") == "":
        state["best_model_score"] = None
    if "best_k_models" in state:
        kept = {moved(path): score for path, score in state["best_k_models"].items()}
        state["best_k_models"] = {path: score for path, score in kept.items() if path}
    return state
