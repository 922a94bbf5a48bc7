"""Result files that appear whole or not at all: write a temporary file, then rename it."""

import json
import os
from collections.abc import Callable
from pathlib import Path


def replace_with(path: Path, write: Callable[[Path], None]) -> None:
    """Call `write` on a temporary name next to `path`, then rename it to `path` in one step."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # after a failed write or rename; gone already after a good one


def write_text(path: Path, text: str, errors: str = "strict") -> None:
    """`errors="surrogateescape"` writes file names that are not UTF-8 back as the bytes they were."""
    replace_with(path, lambda tmp: tmp.write_text(text, encoding="utf-8", errors=errors))


def write_json(path: Path, data: dict) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
