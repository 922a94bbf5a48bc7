"""Hydra's errors while composing the config, as the one line every other bad setting gets.

Hydra prints them over several lines with exit code 1 (and a traceback for some); train.py lets them
through (HYDRA_FULL_ERROR) and asks `one_line` for the message, naming the key, the value and what is
allowed, from the schema.
"""

import dataclasses
import difflib

from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException, ValidationError

from stl10_lightning.common.errors import find_cause
from stl10_lightning.settings.ranges import refusal
from stl10_lightning.settings.schema import PSEUDO_MODES


def _field(schema: type | None, name: str | None) -> dataclasses.Field | None:
    if schema is None or not dataclasses.is_dataclass(schema):
        return None
    return next((field for field in dataclasses.fields(schema) if field.name == name), None)


def _wrong_type(err: ValidationError) -> str:
    field = _field(err.object_type, err.key)
    if field is None:
        return f"{err.full_key}={err.value!r}: {str(err.msg).splitlines()[0]}"
    return refusal(str(err.full_key), err.value, field)


# Nodes that only their stage fills (stl10_lightning/settings/schema.py, `Run`).
STAGE_NODES = {"pseudo": "pseudo_label", "probe": "linear_probe"}


def _unknown_key(err: OmegaConfBaseException) -> str:
    top = str(err.full_key).split(".")[0]
    if top in STAGE_NODES and not dataclasses.is_dataclass(err.object_type):
        return f"{err.full_key} is a setting of stage={STAGE_NODES[top]} only; use that stage or drop it"
    if top == "pseudo" and err.key == "mode":
        modes = " or ".join(f"pseudo={mode}" for mode in PSEUDO_MODES)
        return f"pseudo.mode is not a setting: the mode is a group; choose it with {modes}"
    schema = err.object_type
    known = [field.name for field in dataclasses.fields(schema)] if dataclasses.is_dataclass(schema) else []
    close = difflib.get_close_matches(str(err.key), known, n=1)
    parent = str(err.full_key).rpartition(".")[0]
    hint = f" (did you mean {f'{parent}.' if parent else ''}{close[0]}?)" if close else ""
    return (
        f"{err.full_key} is not a setting{hint}; to pass a new argument to the class a config builds, "
        f"add it with a plus: +{err.full_key}=..."
    )


def _missing_option(err: MissingConfigException) -> str:
    group, _, name = str(err.missing_cfg_file).rpartition("/")
    if err.options:
        return f"{group}={name} is not an option; choose one of {', '.join(err.options)}"
    return str(err).splitlines()[0]


def _stage_group(message: str) -> str | None:
    """Hydra's "Could not override 'pseudo'" for a group only one stage has."""
    for group, stage in STAGE_NODES.items():
        if message.startswith(f"Could not override '{group}'"):
            return f"{group}= is a group of stage={stage} only; add stage={stage}, or drop it"
    return None


def one_line(err: BaseException) -> str | None:
    """The message for a composition error, or None when `err` is not one (a bug, to be raised)."""
    missing = find_cause(err, MissingConfigException)
    if missing is not None:
        return _missing_option(missing)
    if isinstance(err, OverrideParseException):
        return f"cannot read the command line: {str(err).splitlines()[0]}"
    if not isinstance(err, ConfigCompositionException | OmegaConfBaseException):
        return None
    wrong_type = find_cause(err, ValidationError)
    if wrong_type is not None and wrong_type.full_key:
        return _wrong_type(wrong_type)
    unknown = find_cause(err, ConfigAttributeError) or find_cause(err, ConfigKeyError)
    if unknown is not None and unknown.full_key:
        return _unknown_key(unknown)
    group = _stage_group(str(err))
    if group is not None:
        return group
    cause = err.__cause__
    detail = f": {str(cause).splitlines()[0]}" if cause is not None else ""
    return f"{str(err).splitlines()[0]}{detail}"
