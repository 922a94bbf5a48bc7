"""Every setting's type and range (`schema.py`), registered with Hydra, and checked before a run starts."""

from stl10_lightning.settings.check import check_settings
from stl10_lightning.settings.composition import one_line
from stl10_lightning.settings.store import register

__all__ = ["check_settings", "one_line", "register"]
