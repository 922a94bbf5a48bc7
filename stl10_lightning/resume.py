"""Resuming a run in its own folder, with the settings it started with."""

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from stl10_lightning.errors import UserError

# What a resumed run must share with the run it continues: the model and the data it trains on.
# (The schedule length, trainer.max_epochs, is checked by the stage against the checkpoint.)
MUST_MATCH = ("model", "data.image_size", "data.val_size", "data.fold", "data.seed", "data.batch_size")


def run_folder_for(ckpt_path: str | None, fresh: str) -> str:
    """Hydra's run folder: the run that `ckpt_path` belongs to (`<run>/checkpoints/*.ckpt`), else `fresh`.

    So a resumed run continues in the same folder: its checkpoints, TensorBoard events and metrics.json.
    """
    if ckpt_path:
        checkpoints = Path(ckpt_path).parent
        if checkpoints.name == "checkpoints" and (checkpoints.parent / "config.yaml").is_file():
            return str(checkpoints.parent)
    return fresh


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
    before, now = _settings(OmegaConf.load(saved_config)), _settings(cfg)
    changed = [
        f"{k}: {before.get(k)} -> {now.get(k)}" for k in sorted(before | now) if before.get(k) != now.get(k)
    ]
    if changed:
        raise UserError(
            f"cannot resume: the run in {saved_config.parent} was started with other settings "
            f"({'; '.join(changed)}); resume it with its own settings (see its config.yaml)"
        )
