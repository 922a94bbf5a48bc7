"""DDP under Hydra: the processes Lightning starts for ranks 1..N-1 join rank 0's run folder."""

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch.distributed as dist
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import read_write

# What Lightning's DDP launcher sets in this process's environment before starting the other ranks.
LAUNCH_VARIABLES = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")


@contextmanager
def other_ranks_join_this_run(run_dir: Path) -> Iterator[None]:
    """DDP ranks that Lightning starts on this machine write into this run's folder, and nowhere else.

    Lightning starts ranks 1..N-1 by running this script again with sys.argv plus
    `hydra.run.dir=<HydraConfig's run.dir>` (lightning-hydra-template #393, #226). So set that to the
    folder resolved here (not re-resolved with another timestamp) and, in a sweep, sys.argv to this job's
    own overrides (not `-m ...`, which would start a second sweep in a new folder). Afterwards, undo what
    the launch leaves for the next job of a sweep in this process: the process group and the launcher's
    environment variables.
    """
    if not HydraConfig.initialized():  # train() called directly: there is no script to run again
        yield
        return
    argv, environ = sys.argv, {key: os.environ.get(key) for key in LAUNCH_VARIABLES}
    hydra_cfg = HydraConfig.get()
    with read_write(hydra_cfg):
        hydra_cfg.run.dir = str(run_dir)
    if hydra_cfg.mode == RunMode.MULTIRUN:
        sys.argv = [sys.argv[0], *hydra_cfg.overrides.task]
    try:
        yield
    finally:
        sys.argv = argv
        for key, value in environ.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
