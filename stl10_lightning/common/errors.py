"""The one-line errors of bad input, and finding them behind the exceptions that wrap them.

It imports no torch or Lightning, so that the commands that only read files refuse bad input at once."""

import argparse
import sys
from typing import NoReturn


class UserError(Exception):
    """Bad input (data, config, checkpoint) that one line can explain; `train.py` prints it and exits 2."""


def find_cause(err: BaseException | None, kind: type[BaseException]) -> BaseException | None:
    """`err` or the first exception of type `kind` in its chain of causes."""
    while err is not None and not isinstance(err, kind):
        err = err.__cause__
    return err


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse's usage errors as the one `error:` line (exit 2) that every other bad input gets."""

    def error(self, message: str) -> NoReturn:
        print(f"error: {message}; see {self.prog} --help", file=sys.stderr)
        sys.exit(2)
