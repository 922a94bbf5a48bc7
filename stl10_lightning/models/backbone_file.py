"""`backbone.pt`: a backbone's weights with the config that builds it, handed from one stage to the next.

Readers accept a backbone file, a Lightning checkpoint of any stage (its `backbone.*` weights), or a
run folder holding either. Every load uses `weights_only=True` and checks the architecture and the
exact set of keys, so a mismatch is one clear error instead of a silently half-loaded network.
"""

import logging
from pathlib import Path

import torch
from torch import nn

from stl10_lightning.common.atomic import replace_with
from stl10_lightning.common.errors import UserError

FORMAT = "stl10-lightning backbone v1"
log = logging.getLogger(__name__)


def save_backbone(path: Path, config: dict, backbone: nn.Module) -> None:
    """Write atomically: a killed run leaves no half-written file."""
    payload = {
        "format": FORMAT,
        "backbone": config,
        "feature_dim": backbone.feature_dim,
        "state_dict": {name: tensor.detach().cpu() for name, tensor in backbone.state_dict().items()},
    }
    replace_with(path, lambda temporary: torch.save(payload, temporary))


def resolve(source: str | Path) -> Path:
    """The weights file behind `source`: a .pt/.ckpt file, or a run folder's backbone.pt or best.ckpt."""
    path = Path(source)
    if path.is_dir():
        for candidate in (path / "backbone.pt", path / "checkpoints" / "best.ckpt"):
            if candidate.is_file():
                if not (path / "metrics.json").is_file():
                    log.warning(
                        "%s is an unfinished run (no metrics.json): using its %s", path, candidate.name
                    )
                return candidate
        raise UserError(
            f"{path} holds neither backbone.pt nor checkpoints/best.ckpt; give a finished run folder"
        )
    if not path.is_file():
        raise UserError(f"{path} does not exist; give a backbone.pt, a .ckpt file or a run folder")
    return path


# Checkpoints of a stage run with `model.ema` hold the evaluated, averaged weights under this prefix too.
AVERAGED_PREFIX = "ema.module."


def read_backbone(source: str | Path) -> tuple[dict, dict[str, torch.Tensor], Path]:
    """(backbone config, backbone state_dict, file) from any accepted source."""
    path = resolve(source)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated files, foreign pickles, other formats
        raise UserError(
            f"cannot read {path} as a backbone or checkpoint ({type(err).__name__}); "
            "give a backbone.pt or .ckpt written by this project"
        ) from err
    if isinstance(payload, dict) and payload.get("format") == FORMAT:
        return payload["backbone"], payload["state_dict"], path
    if (
        isinstance(payload, dict)
        and "state_dict" in payload
        and "backbone" in payload.get("hyper_parameters", {})
    ):
        state = payload["state_dict"]
        prefix = f"{AVERAGED_PREFIX}backbone." if f"{AVERAGED_PREFIX}head.weight" in state else "backbone."
        weights = {
            name.removeprefix(prefix): tensor for name, tensor in state.items() if name.startswith(prefix)
        }
        return payload["hyper_parameters"]["backbone"], weights, path
    raise UserError(
        f"{path} is not a backbone file or a checkpoint of this project; give a backbone.pt or .ckpt"
    )


def check_buildable(config: dict, path: Path) -> None:
    """Refuse to build a config read from a file unless every `_target_` in it is one of our backbones.

    weights_only stops pickles from running code, but a plain-data config can still name any callable
    (`builtins.open` with mode "w" passes Hydra's blocklist), so a shared file must not choose it.
    """
    targets = _targets(config)
    foreign = [target for target in targets if not target.startswith(f"{__package__}.")]
    if foreign or not targets:
        raise UserError(
            f"{path} asks to build {foreign or 'no class'}, not a backbone of this project "
            f"({__package__}.*); refusing to run it"
        )


def _targets(value) -> list[str]:
    """Every `_target_` in a nested config: Hydra's instantiate builds nested ones too."""
    if isinstance(value, dict):
        own = [str(value["_target_"])] if "_target_" in value else []
        return own + [target for item in value.values() for target in _targets(item)]
    if isinstance(value, list | tuple):
        return [target for item in value for target in _targets(item)]
    return []


def architecture(config: dict) -> dict:
    """The keys that define the weights' shapes: everything but regularization such as dropout."""
    return {key: value for key, value in config.items() if key not in ("dropout",)}


def load_backbone(backbone: nn.Module, config: dict, source: str | Path) -> Path:
    """Load `source`'s weights into `backbone` (built from `config`); refuse another architecture."""
    saved_config, weights, path = read_backbone(source)
    if architecture(saved_config) != architecture(config):
        raise UserError(
            f"{path} holds a {describe(saved_config)} backbone, but this run builds {describe(config)}; "
            "run with the backbone group and options it was trained with"
        )
    missing, unexpected = backbone.load_state_dict(weights, strict=False)
    if missing or unexpected:
        raise UserError(
            f"{path} does not fit the backbone: {len(missing)} missing keys (e.g. {missing[:2]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:2]}); give a file written for this backbone"
        )
    return path


def short_name(config: dict) -> str:
    return config["_target_"].rsplit(".", 1)[-1].lower()


def describe(config: dict) -> str:
    options = ", ".join(f"{k}={v}" for k, v in architecture(config).items() if k != "_target_")
    return f"{short_name(config)}({options})"
