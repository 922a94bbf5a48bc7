"""What TensorBoard's HPARAMS tab lists for a run: the recipe settings a user compares runs by.

The whole resolved config stays the record of what ran: the run folder's config.yaml and the logger's
hparams.yaml. Beside the final metrics, it would bury these few under callback internals and paths.
"""

import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf


def _class_name(target: str | None) -> str | None:
    return None if target is None else target.rsplit(".", 1)[-1]


def compared_settings(cfg: DictConfig, model: pl.LightningModule) -> dict[str, object]:
    """Stage, backbone and stem, optimizer and rate, epochs, batch, image side, ratio, pseudo-label mode and
    threshold, seed, under short names. The mode and threshold are the pseudo-label module's own: the
    group `pseudo` chose its class. A setting the run lacks (no ratio outside pseudo_label, no stem for
    ResNet-9) is left out: TensorBoard would show None as a word."""
    settings = {
        "stage": cfg.stage.name,
        "backbone": _class_name(OmegaConf.select(cfg, "backbone._target_")),
        "stem": OmegaConf.select(cfg, "backbone.stem"),
        "optimizer": _class_name(OmegaConf.select(cfg, "optimizer._target_")),
        "lr": OmegaConf.select(cfg, "optimizer.lr"),
        "epochs": cfg.trainer.max_epochs,
        "batch_size": cfg.data.batch_size,
        "image_size": cfg.data.image_size,
        "ratio": cfg.get("ratio"),
        "pseudo": getattr(model, "pseudo_label_mode", None),
        "threshold": model.hparams.get("threshold"),
        "seed": cfg.get("seed"),
    }
    return {name: value for name, value in settings.items() if value is not None}
