"""Resume checks: a checkpoint resumes a run only if it fits this stage and the run's own settings."""

from pathlib import Path

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from packaging.version import Version

from stl10_lightning.common.errors import UserError

# What a resumed run must share with the run it continues: the model and the data it trains on.
# (The schedule length, trainer.max_epochs, is checked by the stage against the checkpoint.)
MUST_MATCH = (
    "seed",
    "model",
    "data.image_size",
    "data.val_size",
    "data.fold",
    "data.seed",
    "data.batch_size",
)


SHOWN = 5  # changed settings named in a refused resume; the rest are counted

# What every Lightning training checkpoint holds; a backbone.pt or a bare state_dict lacks them.
LIGHTNING_KEYS = {"state_dict", "epoch", "global_step", "loops", "pytorch-lightning_version"}


def check_checkpoint(ckpt_path: str, cfg: DictConfig) -> None:
    """Refuse a ckpt_path that cannot resume this stage with one line, before Lightning reads it.

    Read with weights_only=True, so a pickle that would run code is refused, never run, and with
    mmap=True, so the tensors stay on disk: Lightning reads the file again when it resumes.
    """
    if Path(ckpt_path).is_dir():
        raise UserError(
            f"ckpt_path={ckpt_path} is a folder; give the checkpoint file in it to resume, e.g. "
            f"{Path(ckpt_path) / 'last.ckpt'}"
        )
    if not Path(ckpt_path).is_file():
        raise UserError(f"ckpt_path={ckpt_path} does not exist; give the path of a .ckpt file to resume")
    try:
        checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:
        raise UserError(
            f"cannot read ckpt_path={ckpt_path} ({type(err).__name__}): the file is truncated, is not a "
            "checkpoint, or holds objects that only running its code could build, which is refused"
        ) from err
    if not isinstance(checkpoint, dict) or not checkpoint.keys() >= LIGHTNING_KEYS:
        raise UserError(
            f"ckpt_path={ckpt_path} is not a Lightning training checkpoint (weights such as backbone.pt are "
            "a starting point: probe.backbone=); give <run>/checkpoints/last.ckpt to resume"
        )
    written_by = str(checkpoint["pytorch-lightning_version"])
    if Version(written_by).major > Version(pl.__version__).major:
        raise UserError(
            f"ckpt_path={ckpt_path} was written by Lightning {written_by}, newer than this install "
            f"({pl.__version__}); resume it with the Lightning version that wrote it"
        )
    _check_schedule_length(ckpt_path, checkpoint, cfg)
    saved = set(checkpoint.get("hyper_parameters", {}))
    wanted = {key for key in cfg.model if not str(key).startswith("_")}  # what the module saves
    if saved != wanted:
        # A checkpoint of this stage from a version with other model settings differs in a few keys only.
        raise UserError(
            f"ckpt_path={ckpt_path} holds another model than stage={cfg.stage.name} builds (settings "
            f"{sorted(saved - wanted)[:3]} instead of {sorted(wanted - saved)[:3]}): another stage or mode "
            "wrote it, or a version of stl10-lightning with other settings; resume it with the stage and "
            "version that wrote it, or start a new run"
        )


def _check_schedule_length(ckpt_path: str, checkpoint: dict, cfg: DictConfig) -> None:
    """The stage checks it too when fit restores the scheduler; checking here keeps the refusal from
    reaching the run folder."""
    cosine = checkpoint.get("hyper_parameters", {}).get("schedule") == "cosine"
    saved = checkpoint.get("max_epochs")
    if cosine and saved is not None and saved != cfg.trainer.max_epochs:
        raise UserError(
            f"cannot resume with trainer.max_epochs={cfg.trainer.max_epochs}: the checkpoint's cosine "
            f"schedule runs {saved} epochs; resume with that, or start a new run"
        )


def _settings(config: DictConfig) -> dict:
    """The MUST_MATCH values of `config`, flattened to dotted keys."""

    def leaves(value, key: str) -> dict:
        if isinstance(value, dict):
            return {k: v for name, item in value.items() for k, v in leaves(item, f"{key}.{name}").items()}
        return {key: value}

    found = {}
    for key in MUST_MATCH:
        node = OmegaConf.select(config, key)
        found.update(
            leaves(OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node, key)
        )
    return found


def check_same_settings(cfg: DictConfig, saved_config: Path) -> None:
    """Refuse to resume with other settings than the run's own: the weights or split would not fit."""
    saved = OmegaConf.load(saved_config)
    if OmegaConf.select(saved, "model.modes") is not None:
        raise UserError(
            f"cannot resume the run in {saved_config.parent}: it was started when the pseudo-label mode was "
            "pseudo.mode, not the group pseudo=, and its settings no longer compose; start a new run (the "
            "report still reads this one)"
        )
    before, now = _settings(saved), _settings(cfg)
    changed = [
        f"{k}: {before.get(k)} -> {now.get(k)}" for k in sorted(before | now) if before.get(k) != now.get(k)
    ]
    if changed:
        shown = "; ".join(changed[:SHOWN]) + (
            f"; and {len(changed) - SHOWN} more" if len(changed) > SHOWN else ""
        )
        raise UserError(
            f"cannot resume: the run in {saved_config.parent} was started with other settings "
            f"({shown}); resume it with its own settings (see its config.yaml)"
        )
