"""Finding run folders under the given paths and reading what each one holds.

A run folder is one with `config.yaml` (written when the run starts); `metrics.json` appears only
when it finishes, so a folder without it is a run still going, stopped or crashed.
"""

import json
import os
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from stl10_lightning.errors import UserError

# Hydra's own copy of the unresolved config, and this tool's output, hold no runs.
NOT_RUNS = {".hydra", "report"}


@dataclass(frozen=True)
class Run:
    folder: Path
    stage: str | None
    backbone: str | None  # last part of backbone._target_: runs on other backbones are not averaged
    data_root: str | None  # data.root: nor are runs on other data
    metrics: dict | None  # None: unfinished or unreadable
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


def _read_metrics(folder: Path) -> tuple[dict | None, str | None]:
    try:
        metrics = json.loads((folder / "metrics.json").read_text())
    except FileNotFoundError:
        return None, None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        return None, f"unreadable metrics.json ({err})"
    if not isinstance(metrics, dict):
        return None, "unreadable metrics.json (not a JSON object)"
    return metrics, None


def _read_config(folder: Path) -> DictConfig:
    """The run's config; an unreadable one leaves stage, backbone and data root unknown."""
    try:
        config = OmegaConf.load(folder / "config.yaml")
    except Exception:  # any YAML or OmegaConf error: the run is still listed, with "—"
        return OmegaConf.create()
    return config if isinstance(config, DictConfig) else OmegaConf.create()


def _select(config: DictConfig, key: str):
    return OmegaConf.select(config, key, default=None, throw_on_resolution_failure=False)


def read_run(folder: Path) -> Run:
    metrics, problem = _read_metrics(folder)
    config = _read_config(folder)
    target, root = _select(config, "backbone._target_"), _select(config, "data.root")
    stage = (metrics or {}).get("stage") or _select(config, "stage.name")
    return Run(
        folder=folder,
        stage=stage,
        backbone=str(target).rsplit(".", 1)[-1] if target else None,
        data_root=str(root) if root is not None else None,
        metrics=metrics,
        problem=problem,
    )


def collect(paths: list[Path]) -> list[Run]:
    return [read_run(folder) for folder in find_run_folders(paths)]
