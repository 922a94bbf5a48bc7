"""Reading what each run folder under the given paths holds (runs/folder.py finds them).

A run folder is one with `config.yaml` (written when the run starts); `metrics.json` appears only
when it finishes, so a folder without it is a run still going, stopped or crashed.
"""

from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from stl10_lightning.runs.folder import read_metrics, run_folders


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
    metrics, finished_at, problem = read_metrics(folder)
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
    return [read_run(folder) for folder in run_folders(paths)]
