"""A quiet Trainer that only trains: what the Lightning side of a benchmark runs under."""

import logging
import warnings
from collections.abc import Callable

import pytorch_lightning as pl

from benchmarks.timing import cpu_seconds

# The stages transform batches on the device by design, and the benchmarks read data in the main process.
warnings.filterwarnings("ignore", message=".*overridden `on_after_batch_transfer`.*")
warnings.filterwarnings("ignore", message=".*does not have many workers.*")
warnings.filterwarnings("ignore", message=".*LeafSpec.*")
warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode.*")  # the probe's frozen backbone


def bench_trainer(**settings) -> pl.Trainer:
    """No logger, checkpoints, progress bar, model summary or sanity check; `settings` add or override."""
    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)  # "GPU available: ..." on every fit
    defaults = {
        "devices": 1,
        "max_epochs": 1,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
    }
    return pl.Trainer(**{**defaults, **settings})


class StepClock(pl.Callback):
    """Times the training steps after step `warmup` (1-based), up to the end of the epoch's last step.

    `clock` reads the time only at those two points, so a clock that waits for the GPU does not stop
    the steps between them from queueing ahead.
    """

    def __init__(self, warmup: int, clock: Callable[[], float] = cpu_seconds):
        self.warmup, self.clock = warmup, clock
        self.start = self.end = 0.0
        self.steps = 0

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx: int) -> None:
        if batch_idx == self.warmup - 1:
            self.start = self.clock()
        elif batch_idx == trainer.num_training_batches - 1:
            self.end = self.clock()
            self.steps = batch_idx + 1 - self.warmup

    def steps_per_second(self) -> float:
        return self.steps / (self.end - self.start)
