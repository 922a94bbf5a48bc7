"""Finding run folders under the given paths and reading what each one holds.

A run folder is one with `config.yaml` (written when the run starts); `metrics.json` appears only
when it finishes, so a folder without it is a run still going, stopped or crashed.
"""

import json
import os
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from stl10_lightning.errors import UserError

# Hydra's own copy of the unresolved config, and this tool's output, hold no runs.
NOT_RUNS = {".hydra", "report"}


@dataclass(frozen=True)
class Run:
    folder: Path
    stage: str | None
    backbone: str | None  # last part of backbone._target_, for the table; the recipe holds every option
    data_root: str | None  # data.root: runs on other data are not averaged
    settings: dict | None  # the resolved config flattened to dotted keys; None: config.yaml unreadable
    seed: int | None  # metrics.json's seed, else config.yaml's; None: unseeded or not recorded
    metrics: dict | None  # None: unfinished or unreadable
    finished_at: float | None = None  # metrics.json's mtime: which of two runs of one seed is newer
    problem: str | None = None  # why metrics is None, when it is not simply "not finished yet"


def find_run_folders(paths: list[Path]) -> list[Path]:
    """Run folders at or under `paths`, each once, in a stable order."""
    found: dict[Path, Path] = {}
    for path in paths:
        if not path.exists():
            raise UserError(f"{path} does not exist; give a run folder, a multirun folder or one above them")
        if not path.is_dir():
            raise UserError(f"{path} is not a folder; give a run folder, a multirun folder or one above them")
        for folder, subfolders, files in os.walk(path):
            if "config.yaml" in files:
                found.setdefault(Path(folder).resolve(), Path(folder))
                subfolders.clear()  # checkpoints/ and tensorboard/ hold no runs
            else:
                subfolders[:] = sorted(name for name in subfolders if name not in NOT_RUNS)
    if not found:
        shown = " ".join(str(path) for path in paths)
        raise UserError(f"no run folders (with config.yaml) under {shown}; point at outputs/ or a run folder")
    return sorted(found.values())


def _read_metrics(folder: Path) -> tuple[dict | None, float | None, str | None]:
    """(metrics, metrics.json's mtime, problem)."""
    path = folder / "metrics.json"
    try:
        metrics, finished_at = json.loads(path.read_text()), path.stat().st_mtime
    except FileNotFoundError:
        return None, None, None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        return None, None, f"unreadable metrics.json ({err})"
    if not isinstance(metrics, dict):
        return None, None, "unreadable metrics.json (not a JSON object)"
    return metrics, finished_at, None


def _hashable(value):
    """Lists as tuples, so that a recipe can be a dictionary key."""
    if isinstance(value, list):
        return tuple(_hashable(item) for item in value)
    if isinstance(value, dict):
        return tuple((str(key), _hashable(item)) for key, item in value.items())
    return value


def flatten(node: dict, prefix: str = "") -> dict[str, object]:
    """{"a": {"b": 1}} as {"a.b": 1}; an empty node is a value of its own, "{}"."""
    flat: dict[str, object] = {}
    for key, value in node.items():
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = "{}" if value == {} else _hashable(value)
    return flat


def _read_settings(folder: Path) -> dict | None:
    """The run's config as dotted keys; None when unreadable (the run is still listed, with "—")."""
    try:
        config = OmegaConf.to_container(OmegaConf.load(folder / "config.yaml"))
    except Exception:  # any YAML or OmegaConf error
        return None
    return flatten(config) if isinstance(config, dict) and config else None


def read_run(folder: Path) -> Run:
    metrics, finished_at, problem = _read_metrics(folder)
    settings = _read_settings(folder) or {}
    target, root = settings.get("backbone._target_"), settings.get("data.root")
    seed = (metrics or {}).get("seed", settings.get("seed"))
    return Run(
        folder=folder,
        stage=(metrics or {}).get("stage") or settings.get("stage.name"),
        backbone=str(target).rsplit(".", 1)[-1] if target else None,
        data_root=str(root) if root is not None else None,
        settings=settings or None,
        seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
        metrics=metrics,
        finished_at=finished_at,
        problem=problem,
    )


def collect(paths: list[Path]) -> list[Run]:
    return [read_run(folder) for folder in find_run_folders(paths)]
