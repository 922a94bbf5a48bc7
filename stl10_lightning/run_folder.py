"""A run folder belongs to one run: nothing is written into it until every check has passed and the
folder is claimed, and a claimed folder is locked so that no second process writes into it.

A folder holds a run once it has `config.yaml` (written when a run starts) and a finished run once it has
`metrics.json` (written last). A finished run is never changed: resuming it or starting another run in
its folder is refused. An unfinished one can only be resumed, from its own checkpoints.
"""

import fcntl
import logging
import logging.handlers
import os
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from stl10_lightning import atomic
from stl10_lightning.errors import UserError


def _lock(run_dir: Path) -> int:
    """An exclusive lock on the folder itself, held until the process ends.

    flock belongs to the open file: the kernel releases it when the process exits, however it ends, so a
    killed run never leaves a stale lock behind. Locking the folder's own descriptor adds no file to it.
    """
    descriptor = os.open(run_dir, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        raise UserError(
            f"another process is writing to the run folder {run_dir} right now; wait for it to end, or leave "
            "hydra.run.dir unset so that this run gets a new folder"
        ) from None
    return descriptor


def resumes_this_run(run_dir: Path, ckpt_path: str | None) -> bool:
    return ckpt_path is not None and Path(ckpt_path).resolve().parent == (run_dir / "checkpoints").resolve()


def _check_free_for(run_dir: Path, ckpt_path: str | None) -> None:
    """Refuse a command that would change a finished run, or take over another run's folder."""
    if (run_dir / "metrics.json").exists():
        if resumes_this_run(run_dir, ckpt_path):
            raise UserError(
                f"ckpt_path={ckpt_path} belongs to a finished run (metrics.json in {run_dir}): there is "
                "nothing to resume, and the run stays as it is; to train longer, start a new run"
            )
        raise UserError(
            f"{run_dir} holds a finished run, which a new run must not overwrite; leave hydra.run.dir unset "
            "(a new run gets a new folder) or choose an empty one"
        )
    if (run_dir / "config.yaml").exists() and not resumes_this_run(run_dir, ckpt_path):
        raise UserError(
            f"{run_dir} holds an unfinished run; resume it with "
            f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}, or leave hydra.run.dir unset for a new run "
            "in a new folder"
        )


def claim(run_dir: Path, ckpt_path: str | None) -> int:
    """Lock `run_dir` for this run, or refuse (UserError) if it is busy or holds another run.

    Returns the lock's descriptor; the lock lasts as long as the process, or until it is closed.
    """
    descriptor = _lock(run_dir)
    try:
        _check_free_for(run_dir, ckpt_path)
    except UserError:
        os.close(descriptor)
        raise
    return descriptor


def write_hydra_record(run_dir: Path, cfg: DictConfig) -> None:
    """What Hydra's `.hydra/` holds (config, Hydra's own config, overrides), written only once the run has
    claimed its folder: Hydra itself would write it before any check (conf/train.yaml turns that off)."""
    if not HydraConfig.initialized():
        return
    record = run_dir / ".hydra"
    record.mkdir(exist_ok=True)
    hydra_cfg = HydraConfig.get()
    files = {
        "config.yaml": cfg,
        "hydra.yaml": {"hydra": hydra_cfg},
        "overrides.yaml": hydra_cfg.overrides.task,
    }
    for name, node in files.items():
        atomic.write_text(record / name, OmegaConf.to_yaml(node))


class HeldFileLogs:
    """Log records reach the console at once, but the run folder's log file (Hydra's train.log) only
    after `release()`: a refused command leaves nothing in the folder it was refused."""

    def __init__(self):
        self.root = logging.getLogger()
        self.files = [handler for handler in self.root.handlers if isinstance(handler, logging.FileHandler)]
        self.held = logging.handlers.BufferingHandler(capacity=100_000)
        for handler in self.files:
            self.root.removeHandler(handler)
        self.root.addHandler(self.held)

    def _restore(self) -> None:
        self.root.removeHandler(self.held)
        for handler in self.files:
            self.root.addHandler(handler)

    def release(self) -> None:
        self._restore()
        for record in self.held.buffer:
            for handler in self.files:
                if record.levelno >= handler.level:
                    handler.handle(record)
        self.held.close()

    def drop(self) -> None:
        self._restore()
        self.held.close()
