"""Allowed ranges, declared beside each setting's type in `schema.py` and checked by `check.py`.

A setting is a dataclass field whose metadata holds a predicate and the words for what it allows, so
the schema reads as a table of types, defaults and ranges, and every refusal can quote it.
"""

import dataclasses
import math
import typing
from collections.abc import Callable, Sequence
from dataclasses import field
from typing import Any

from omegaconf import MISSING  # "???": a value the YAML must set

CHECK = "check"  # metadata: the value -> whether it is allowed
ALLOWED = "allowed"  # metadata: what is allowed, in words ("a whole number >= 1")
WHY = "why"  # metadata: what the setting means, so the message can say what to do


TYPE_WORDS = {int: "a whole number", float: "a finite number", bool: "true or false", str: "a string"}


def _show(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else f"{number:g}"


def _setting(default: Any, allowed: str, check: Callable[[Any], bool], why: str):
    return field(default=default, metadata={CHECK: check, ALLOWED: allowed, WHY: why})


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def at_least(minimum: float, default: Any = MISSING, why: str = ""):
    """A number >= minimum (finite); whole when the field is typed int, which OmegaConf enforces."""
    return _setting(default, f">= {_show(minimum)}", lambda v: _number(v) and v >= minimum, why)


def above(minimum: float, default: Any = MISSING, why: str = ""):
    return _setting(default, f"> {_show(minimum)}", lambda v: _number(v) and v > minimum, why)


def _between(low: float, high: float, closed: str) -> Callable[[Any], bool]:
    left, right = closed

    def check(value: Any) -> bool:
        if not _number(value):
            return False
        above_low = value >= low if left == "[" else value > low
        below_high = value <= high if right == "]" else value < high
        return above_low and below_high

    return check


def within(low: float, high: float, default: Any = MISSING, why: str = "", closed: str = "[)"):
    """A number between low and high; `closed` says which ends are included, as in interval notation."""
    interval = f"{closed[0]}{_show(low)}, {_show(high)}{closed[1]}"
    return _setting(default, f"in {interval}", _between(low, high, closed), why)


def per_channel(low: float, high: float, why: str = "", closed: str = "[]"):
    """Three numbers, one per RGB channel, each between low and high."""
    each = _between(low, high, closed)
    interval = f"{closed[0]}{_show(low)}, {_show(high)}{closed[1]}"
    return _setting(
        MISSING,
        f"a list of 3 numbers (red, green, blue), each in {interval}",
        lambda v: isinstance(v, list) and len(v) == 3 and all(each(item) for item in v),
        why,
    )


def one_of(choices: Sequence, default: Any = MISSING, why: str = ""):
    shown = ", ".join(dict.fromkeys(str(choice) for choice in choices))  # 16 and "16" read the same
    return _setting(default, f"one of {shown}", lambda v: v in choices, why)


def each_at_least(minimum: int, default_factory: Callable[[], list], why: str = ""):
    """A list of whole numbers, each >= minimum."""
    return field(
        default_factory=default_factory,
        metadata={
            CHECK: lambda v: len(v) > 0 and all(_number(item) and item >= minimum for item in v),
            ALLOWED: f"a non-empty list of whole numbers >= {_show(minimum)}",
            WHY: why,
        },
    )


def devices(default: Any = MISSING):
    """Lightning's `devices`: a count >= 1, -1 for all, "auto", or a list of device indices."""

    def check(value: Any) -> bool:
        if value == "auto" or value == -1:
            return True
        if isinstance(value, str) and value.strip().isdigit():
            return int(value) >= 1
        if isinstance(value, list | tuple):
            return len(value) > 0 and all(isinstance(item, int) and item >= 0 for item in value)
        return isinstance(value, int) and not isinstance(value, bool) and value >= 1

    return _setting(default, "a count >= 1, -1 (all), auto, or a list of device indices", check, "")


def expected(setting: dataclasses.Field) -> str:
    """What a schema field takes, in words: its type, its range, null when it is optional, its meaning."""
    kinds = [kind for kind in typing.get_args(setting.type) or (setting.type,) if kind is not type(None)]
    words = " or ".join(TYPE_WORDS.get(kind, getattr(kind, "__name__", str(kind))) for kind in kinds)
    allowed = setting.metadata.get(ALLOWED)
    if allowed:
        words = allowed if allowed.startswith(("one of", "a ")) else f"{words} {allowed}"
    if type(None) in typing.get_args(setting.type):
        words += ", or null"
    why = setting.metadata.get(WHY)
    return words + (f" ({why})" if why else "")


def refusal(key: str, value: Any, setting: dataclasses.Field) -> str:
    """The one line a value outside its type or range gets: key, value, what is allowed."""
    return f"{key}={value!r} is not allowed: it must be {expected(setting)}"
