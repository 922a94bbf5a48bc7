"""The bad input behind an exception a run raised, as the one-line UserError that train.py prints."""

import errno

from lightning_fabric.utilities.exceptions import MisconfigurationException

from stl10_lightning.common.errors import UserError, find_cause


def user_error_behind(err: BaseException | None, run_dir: str) -> UserError | None:
    """The UserError behind `err` (Hydra's instantiate wraps errors raised in constructors), a setting
    Lightning refused mid-run (e.g. a checkpoint's monitor no stage logs), or a full disk, which is the
    user's to fix too: the last good last.ckpt resumes the run."""
    found = find_cause(err, UserError)
    if found is not None:
        return found
    refused = find_cause(err, MisconfigurationException)  # Lightning's word for a setting it cannot use
    if refused is not None:
        return UserError(f"Lightning refused a setting: {' '.join(str(refused).split())}")
    full = find_cause(err, OSError)
    if full is None or full.errno not in (errno.ENOSPC, errno.EDQUOT):
        return None
    return UserError(
        f"no space left to write {full.filename2 or full.filename or run_dir}; free some space (or point "
        "hydra.run.dir= elsewhere) and resume from the run's checkpoints/last.ckpt"
    )
