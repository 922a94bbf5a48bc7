"""Where a command may write its output: checked before any work, so a bad path costs no time, never
lands in a run folder (a finished run is never changed), and fails as one line rather than a traceback.

It imports no torch, so that the commands that only read files stay fast to refuse.
"""

import os
import re
from pathlib import Path

from stl10_lightning.common.errors import UserError

# What marks a run folder: train.py writes its resolved config there when a run starts (runs/folder.py).
RUN_MARK = "config.yaml"
# Top-level keys of that config, plain or quoted, so that a project's own config.yaml higher up is not
# taken for a run. A line scan, not a YAML parse: a config of any size or depth is read in milliseconds.
RUN_KEY = re.compile(r"""^(["']?)(stage|trainer)\1[ \t]*:""", re.MULTILINE)


def _is_run_folder(folder: Path) -> bool:
    config = folder / RUN_MARK
    if not os.path.isfile(config):  # a pipe named config.yaml would block the read; False under no access
        return False
    try:
        text = config.read_bytes().decode("utf-8", errors="replace")
    except OSError:
        return False
    return {match[1] for match in RUN_KEY.findall(text)} == {"stage", "trainer"}


def run_folder_around(path: Path) -> Path | None:
    """The run folder that `path` is, or lies inside, or None. The path is resolved first, so a link into
    a run folder counts as inside it and `run/../x` does not; Hydra's `.hydra/` record counts as inside."""
    real = path.resolve()
    for folder in (real, *real.parents):
        if folder.name != ".hydra" and _is_run_folder(folder):
            return folder
    return None


def nearest_existing(path: Path) -> Path:
    """os.path.lexists, unlike Path.exists, answers False instead of raising under a folder it cannot open."""
    return next(folder for folder in (path.absolute(), *path.absolute().parents) if os.path.lexists(folder))


def check_new_output(path: Path, option: str) -> None:
    """Refuse, as `option`, a path that cannot be created: one inside a run folder, under a file or an
    unwritable folder, or with a name longer than the filesystem allows (a temporary suffix included)."""
    run = run_folder_around(path)
    if run is not None:
        raise UserError(
            f"{option} {path} is inside the run folder {run}, and a later command never changes a run; "
            "give a path outside it"
        )
    existing = nearest_existing(path.parent)
    if not existing.is_dir():
        raise UserError(f"{option} {path}: {existing} is a file, not a folder; give a path under a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"{option} {path}: {existing} is not writable; give a path you can write to")
    # The names still to be made; the output is first written under one up to 24 bytes longer (.tmp, ...).
    limit = os.pathconf(existing, "PC_NAME_MAX") - 24
    new = path.absolute().relative_to(existing).parts
    too_long = [part for part in new if len(os.fsencode(part)) > limit]
    if too_long:
        raise UserError(
            f"{option} {path}: the name {too_long[0][:40]}... is too long; keep names to {limit} bytes"
        )
