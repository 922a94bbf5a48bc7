"""The one-line errors of bad input, and finding them behind the exceptions that wrap them."""

import argparse
import errno
import sys
from typing import NoReturn

from lightning_fabric.utilities.exceptions import MisconfigurationException


class UserError(Exception):
    """Bad input (data, config, checkpoint) that one line can explain; `train.py` prints it and exits 2."""


def find_cause(err: BaseException | None, kind: type[BaseException]) -> BaseException | None:
    """`err` or the first exception of type `kind` in its chain of causes."""
    while err is not None and not isinstance(err, kind):
        err = err.__cause__
    return err


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


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse's usage errors as the one `error:` line (exit 2) that every other bad input gets."""

    def error(self, message: str) -> NoReturn:
        print(f"error: {message}; see {self.prog} --help", file=sys.stderr)
        sys.exit(2)
