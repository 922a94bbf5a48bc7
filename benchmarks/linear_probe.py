"""Linear probe runs: features cached once against a forward pass of the frozen backbone every epoch.

    python -m benchmarks.linear_probe [--quick]      (from the repository root)

Both sides are one probe run as train.py does it, fit then test, with the same frozen TinyNet backbone
file at 32 px, the same seed, optimizer and data (4,500 train, 500 val, 1,000 test images, batches of
256, evaluation batches of 512 as in conf/data, read in the main process):

- ours: `LinearProbe` as configured: the backbone's features of train, val and test are computed once
  before fit and served from memory.
- baseline: `LinearProbe(cache_features=False)`: every train, val and test batch goes through the
  backbone again, every epoch.

The goal is for the stage's recipe, 100 epochs (conf/stage/linear_probe.yaml). Ours runs them; the
baseline would take minutes on this CPU, so it runs 2 and 8 epochs and its 100-epoch time is the
8-epoch time plus 92 times the measured cost of an epoch (every epoch does the same work). Time is
CPU seconds of this process on one torch thread (see benchmarks/timing.py), one run each. Both sides
must reach the same test accuracy after 2 epochs.
"""

import tempfile
from pathlib import Path

import pytorch_lightning as pl
import torch

from benchmarks.cached_data import synthetic_root
from benchmarks.lightning_trainer import bench_trainer
from benchmarks.timing import cpu_seconds, one_thread, print_rows
from stl10_lightning.data import STL10DataModule
from stl10_lightning.models import TinyNet
from stl10_lightning.models.backbone_file import save_backbone
from stl10_lightning.stages import LinearProbe

IMAGE_SIZE = 32
BACKBONE = {"_target_": "stl10_lightning.models.TinyNet", "width": 32}
RECIPE_EPOCHS = 100  # conf/stage/linear_probe.yaml
OPTIMIZER = {  # conf/optimizer/sgd_probe.yaml
    "_target_": "torch.optim.SGD",
    "lr": 0.3,
    "lr_reference_batch": 256,
    "momentum": 0.9,
    "weight_decay": 1e-6,
}


def probe_run(backbone_file: Path, epochs: int, cache_features: bool) -> tuple[float, float]:
    """(CPU seconds, test accuracy) of fit and test from a fresh data module and probe."""
    pl.seed_everything(0, verbose=False)
    data = STL10DataModule(
        str(synthetic_root(20_000)), image_size=IMAGE_SIZE, batch_size=256, eval_batch_size=512, num_workers=0
    )
    probe = LinearProbe(
        BACKBONE, OPTIMIZER, source=str(backbone_file), image_size=IMAGE_SIZE, cache_features=cache_features
    )
    trainer = bench_trainer(accelerator="cpu", max_epochs=epochs)
    start = cpu_seconds()
    trainer.fit(probe, datamodule=data)
    metrics = trainer.test(probe, datamodule=data, verbose=False)[0]
    return cpu_seconds() - start, metrics["test/acc"]


def run(quick: bool = False) -> list[dict]:
    short, long, ours_long = (1, 2, 3) if quick else (2, 8, RECIPE_EPOCHS)
    with tempfile.TemporaryDirectory() as folder, one_thread():
        backbone_file = Path(folder) / "backbone.pt"
        torch.manual_seed(0)
        save_backbone(backbone_file, BACKBONE, TinyNet(width=BACKBONE["width"]))
        ours_short, ours_acc = probe_run(backbone_file, short, cache_features=True)
        ours_s, _ = probe_run(backbone_file, ours_long, cache_features=True)
        baseline_short, baseline_acc = probe_run(backbone_file, short, cache_features=False)
        baseline_long, _ = probe_run(backbone_file, long, cache_features=False)
    if abs(ours_acc - baseline_acc) > 1e-4:
        raise AssertionError(f"cached and uncached probes differ: test acc {ours_acc} vs {baseline_acc}")
    ours_epoch = (ours_s - ours_short) / (ours_long - short)
    baseline_epoch = (baseline_long - baseline_short) / (long - short)
    baseline_s = baseline_long + (ours_long - long) * baseline_epoch
    ours_fixed = ours_short - short * ours_epoch
    return [
        {
            "benchmark": f"linear probe run ({ours_long} epochs + test), cached vs per-epoch features",
            "ours": ours_s,
            "baseline": baseline_s,
            "unit": "CPU-s",
            "ratio": baseline_s / ours_s,
            "goal": ">= 10x",
            "setup": f"frozen TinyNet at {IMAGE_SIZE} px, 4,500 train / 500 val / 1,000 test, 1 thread; "
            f"baseline extrapolated from {short} and {long} epochs; per epoch: {ours_epoch * 1000:.0f} ms "
            f"cached, {baseline_epoch * 1000:.0f} ms uncached; caching pass and other fixed costs "
            f"{ours_fixed:.1f} s",
        }
    ]


if __name__ == "__main__":
    print_rows(run, __doc__, "a few epochs, to check that it runs")
