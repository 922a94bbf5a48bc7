"""Range checks of a composed config, from the metadata beside each field of `schema.py`."""

import dataclasses
from collections.abc import Iterator

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from stl10_lightning.common.errors import UserError
from stl10_lightning.settings.ranges import ALLOWED, CHECK, refusal


def _ranged_fields(node: DictConfig, path: str) -> Iterator[tuple[str, DictConfig, dataclasses.Field]]:
    """(key, node, field) of every field with a range in `node` and below it, in config order.

    Interpolated nodes (`model.backbone: ${backbone}`) are checked where they are defined, not again.
    """
    schema = OmegaConf.get_type(node)
    ranged = {f.name: f for f in dataclasses.fields(schema)} if dataclasses.is_dataclass(schema) else {}
    for name in node:
        child = node._get_node(name)
        key = f"{path}{name}"
        if name in ranged and ALLOWED in ranged[name].metadata:
            yield key, node, ranged[name]
        if isinstance(child, DictConfig) and not child._is_interpolation() and not child._is_none():
            yield from _ranged_fields(child, f"{key}.")


def check_settings(cfg: DictConfig) -> None:
    """Refuse the first value outside its range with one line (UserError) naming key, value and range."""
    for key, node, field in _ranged_fields(cfg, ""):
        try:
            value = node[field.name]
        except OmegaConfBaseException as err:
            raise UserError(f"{key}: {str(err).splitlines()[0]}") from err
        if isinstance(value, DictConfig | ListConfig):
            value = OmegaConf.to_container(value)
        if value is not None and not field.metadata[CHECK](value):
            raise UserError(refusal(key, value, field))
