"""Run folders: where a run writes, which folder a command gets, and finding earlier runs.

A run folder belongs to one run: nothing is written into it until every check has passed and the
folder is claimed, and a claimed folder is locked so that no second process writes into it.

A folder holds a run once it has `config.yaml` (written when a run starts) and a finished run once it has
`metrics.json` (written last). A finished run is never changed: resuming it or starting another run in
its folder is refused. An unfinished one can only be resumed, from its own checkpoints.
"""

import fcntl
import json
import logging
import logging.handlers
import os
import sys
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from stl10_lightning.common import atomic
from stl10_lightning.common.errors import UserError
from stl10_lightning.common.output_paths import nearest_existing, run_folder_around

log = logging.getLogger(__name__)

# Hydra's own copy of the unresolved config, and the report's output, hold no runs.
NOT_RUNS = {".hydra", "report"}


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


def run_folder_for(ckpt_path: str | None, fresh: str) -> str:
    """Hydra's run folder: the run that `ckpt_path` belongs to (`<run>/checkpoints/*.ckpt`), else `fresh`.

    So a resumed run continues in the same folder: its checkpoints, TensorBoard events and metrics.json.
    """
    if ckpt_path:
        checkpoints = Path(ckpt_path).parent
        if checkpoints.name == "checkpoints" and (checkpoints.parent / "config.yaml").is_file():
            return str(checkpoints.parent)
    return fresh


class WritableOutputFolder(Callback):
    """Hydra creates the run (or sweep) folder before train.py runs; a folder it cannot create would end
    in Hydra's traceback, so check first and stop with one line, as train.py does (conf/train.yaml).
    """

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        folder = Path(str(config.hydra.run.dir))
        # The run folder itself may hold a run (resume is checked later, by claim); a folder above must not.
        run = run_folder_around(folder)
        _exit_if_inside_a_run(folder, None if run == folder.resolve() else run, "hydra.run.dir")
        _exit_unless_writable(folder, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        folder = Path(str(config.hydra.sweep.dir))
        _exit_if_inside_a_run(folder, run_folder_around(folder), "hydra.sweep.dir")
        # Each job's folder must stay in the sweep folder. Hydra makes it before any callback sees the job,
        # so check the subdir now, and the overrides too when it interpolates them (override_dirname).
        subdir = str(OmegaConf.to_container(config.hydra.sweep, resolve=False)["subdir"])
        parts = [subdir, *(config.hydra.overrides.task if "${" in subdir else [])]
        leaving = next((part for part in parts if _leads_out(part)), None)
        if leaving is not None:
            print(
                f"error: hydra.sweep.subdir={subdir} leads out of the sweep folder (through {leaving}); give "
                "a relative subdir and values without '..' that climb out, such as the default "
                "${hydra.job.num}",
                file=sys.stderr,
            )
            sys.exit(2)
        _exit_unless_writable(folder, "hydra.sweep.dir")


def _leads_out(part: str) -> bool:
    """Whether a path fragment, put under a folder, ends outside it: absolute, or climbing out with '..'."""
    return os.path.normpath(os.path.join("sweep", part)).split(os.sep)[0] != "sweep"


def _exit_if_inside_a_run(folder: Path, run: Path | None, key: str) -> None:
    """A run nested in another would change that run's folder, and the report would never find it."""
    if run is not None:
        print(
            f"error: {key}={folder} is inside the run folder {run}, and a later command never changes a "
            f"run; leave {key} unset or choose a folder outside it",
            file=sys.stderr,
        )
        sys.exit(2)


def _exit_unless_writable(folder: Path, key: str) -> None:
    existing = nearest_existing(folder)
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        what = "not a folder" if not existing.is_dir() else "not writable"
        print(
            f"error: cannot create the output folder {folder}: {existing} is {what}; set {key}= to a "
            "writable place",
            file=sys.stderr,
        )
        sys.exit(2)


def _walk(path: Path):
    """Run folders (with config.yaml) at or under `path`, without descending into one."""
    for folder, subfolders, files in os.walk(path):
        if "config.yaml" in files and Path(folder).name not in NOT_RUNS:
            subfolders.clear()  # checkpoints/ and tensorboard/ hold no runs
            yield Path(folder)
        else:
            subfolders[:] = sorted(name for name in subfolders if name not in NOT_RUNS)


def run_folders(paths: list[Path]) -> list[Path]:
    """Run folders at or under `paths`, each once, in a stable order; refuse paths that hold none."""
    found: dict[Path, Path] = {}
    for path in paths:
        if not path.exists():
            raise UserError(f"{path} does not exist; give a run folder, a multirun folder or one above them")
        if not path.is_dir():
            raise UserError(f"{path} is not a folder; give a run folder, a multirun folder or one above them")
        for folder in _walk(path):
            found.setdefault(folder.resolve(), folder)
    if not found:
        shown = " ".join(str(path) for path in paths)
        raise UserError(f"no run folders (with config.yaml) under {shown}; point at outputs/ or a run folder")
    return sorted(found.values())


def read_metrics(folder: Path) -> tuple[dict | None, float | None, str | None]:
    """(metrics.json's content, its mtime, problem): (None, None, None) while the run is unfinished."""
    path = folder / "metrics.json"
    try:
        metrics, finished_at = json.loads(path.read_text()), path.stat().st_mtime
    except FileNotFoundError:
        return None, None, None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        return None, None, f"unreadable metrics.json ({err})"
    if not isinstance(metrics, dict):
        return None, None, "unreadable metrics.json (not a JSON object)"
    wrong = _mistyped_field(metrics)
    if wrong:
        return None, None, f"unreadable metrics.json ({wrong})"
    return metrics, finished_at, None


# The fields that the report and stl10-predict read, with the JSON types train.py writes; null is allowed.
TEXT, WHOLE, NUMBER = (str,), (int,), (int, float)
FIELD_TYPES = {
    "stage": TEXT, "mode": TEXT, "best_checkpoint": TEXT, "backbone_path": TEXT,
    "seed": WHOLE, "labeled": WHOLE, "epochs": WHOLE, "steps": WHOLE, "ratio": NUMBER, "threshold": NUMBER,
}  # fmt: skip


def _mistyped_field(metrics: dict) -> str | None:
    """The first field whose type is not what train.py writes (a metric, `a/b`, is a number)."""
    for key, value in metrics.items():
        wanted = FIELD_TYPES.get(key, NUMBER if "/" in key else None)
        if wanted is None or value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, wanted):
            return f"{key} is {json.dumps(value)[:40]}, not {'text' if wanted is TEXT else 'a number'}"
    return None


def newest_finished_run(stage: str, outputs: str | Path = "outputs", needs: str = "metrics.json") -> Path:
    """The most recently finished run folder of `stage` anywhere under `outputs` (single runs, sweeps,
    studies): its metrics.json names the stage, and it holds `needs`."""
    finished = {}
    for folder in _walk(Path(outputs)):
        metrics, finished_at, _ = read_metrics(folder)
        if metrics is not None and metrics.get("stage") == stage and (folder / needs).is_file():
            finished[folder] = finished_at
    if not finished:
        raise UserError(
            f"no finished {stage} run under {outputs}/; run `python train.py stage={stage}` first, or give "
            "the run folder or file explicitly"
        )
    newest = max(finished, key=finished.get)
    log.info("using the newest finished %s run: %s", stage, newest)
    return newest
