"""Where a command may write its output: checked before any work, so a bad path costs no time, never
lands in a run folder (a finished run is never changed), and fails as one line rather than a traceback.

It imports no torch, so that the commands that only read files stay fast to refuse.
"""

import os
from pathlib import Path

import yaml

from stl10_lightning.common.errors import UserError

# What marks a run folder: train.py writes its resolved config there when a run starts (runs/folder.py).
RUN_MARK = "config.yaml"
# Top-level keys of that config, so that a project's own config.yaml higher up is not taken for a run.
RUN_KEYS = {"stage", "trainer"}


def _is_run_folder(folder: Path) -> bool:
    try:
        with (folder / RUN_MARK).open("rb") as file:
            config = yaml.safe_load(file.read(1_000_000))
    except (OSError, yaml.YAMLError):  # missing, a folder, unreadable, or no YAML: no run's config
        return False
    return isinstance(config, dict) and config.keys() >= RUN_KEYS


def run_folder_around(path: Path) -> Path | None:
    """The run folder that `path` is, or lies inside, or None. The path is resolved first, so a link into
    a run folder counts as inside it and `run/../x` does not; Hydra's `.hydra/` record counts as inside."""
    real = path.resolve()
    for folder in (real, *real.parents):
        if folder.name != ".hydra" and _is_run_folder(folder):
            return folder
    return None


def _nearest_existing(path: Path) -> Path:
    return next(folder for folder in (path.absolute(), *path.absolute().parents) if folder.exists())


def check_new_output(path: Path, option: str) -> None:
    """Refuse, as `option`, a path that cannot be created: one inside a run folder, under a file or an
    unwritable folder, or with a name longer than the filesystem allows (a temporary suffix included)."""
    run = run_folder_around(path)
    if run is not None:
        raise UserError(
            f"{option} {path} is inside the run folder {run}, and a later command never changes a run; "
            "give a path outside it"
        )
    existing = _nearest_existing(path.parent)
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
