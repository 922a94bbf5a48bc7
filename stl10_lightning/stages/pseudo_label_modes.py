"""`pseudo.mode`: which LightningModule the pseudo_label stage builds, offline or online."""

import pytorch_lightning as pl

from stl10_lightning.common.errors import UserError
from stl10_lightning.stages.offline_pseudo_label import OfflinePseudoLabelModule
from stl10_lightning.stages.online_pseudo_label import OnlinePseudoLabelModule

MODES = {"offline": OfflinePseudoLabelModule, "online": OnlinePseudoLabelModule}


def pseudo_label_module(
    mode: str, modes: dict[str, dict], threshold: float | None, **common
) -> pl.LightningModule:
    """The `mode` class, built from the settings every mode shares plus `modes[mode]`.

    The model config keeps each mode's own settings under `modes`, so that switching mode is one value;
    only the chosen mode's become the module's hyperparameters. `threshold` None is the mode's default.
    """
    if mode not in MODES:
        raise UserError(f"pseudo.mode={mode!r}; choose one of {list(MODES)}")
    own = {"threshold": threshold} if threshold is not None else {}
    return MODES[mode](**common, **own, **modes.get(mode, {}))


def saved_settings(model_config: dict) -> set[str]:
    """The hyperparameter names the configured module saves, mode switch or not (to check resumes)."""
    keys = {key for key in model_config if not key.startswith("_")}
    if "modes" not in keys:
        return keys
    return keys - {"mode", "modes"} | set(model_config["modes"].get(model_config["mode"], {}))
