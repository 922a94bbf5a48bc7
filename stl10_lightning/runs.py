"""Finding earlier runs by path: the later stages start from the newest finished run of an earlier one."""

import json
import logging
from pathlib import Path

from stl10_lightning.errors import UserError

log = logging.getLogger(__name__)


def _stage_of(metrics: Path) -> str | None:
    try:
        return json.loads(metrics.read_text()).get("stage")
    except (OSError, ValueError, AttributeError):
        return None  # unreadable: not a finished run we can use


def newest_finished_run(stage: str, outputs: str | Path = "outputs", needs: str = "metrics.json") -> Path:
    """The most recently finished run folder of `stage` anywhere under `outputs` (single runs, sweeps,
    studies): its metrics.json names the stage, and it holds `needs`."""
    finished = [
        path.parent
        for path in Path(outputs).glob("**/metrics.json")
        if (path.parent / needs).is_file() and "report" not in path.parts and _stage_of(path) == stage
    ]
    if not finished:
        raise UserError(
            f"no finished {stage} run under {outputs}/; run `python train.py stage={stage}` first, or give "
            "the run folder or file explicitly"
        )
    newest = max(finished, key=lambda run: (run / "metrics.json").stat().st_mtime)
    log.info("using the newest finished %s run: %s", stage, newest)
    return newest
