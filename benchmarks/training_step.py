"""Lightning's cost per training step: the supervised stage against a plain PyTorch loop.

    python -m benchmarks.training_step [--quick]      (from the repository root)

Both sides start from the same SupervisedResNet weights (TinyNet at 32 px, batch 128, CPU) and use the
same SGD parameter groups, cosine schedule, device transforms (reflect-pad crop, flip, cutout) and
loader: the data module's labeled train loader, read in the main process, since on 2 cores workers
would compete with the step itself.

- ours: `Trainer.fit` with the stage's own `training_step` (loss, torchmetrics accuracy, `self.log`),
  no logger, checkpoints or progress bar, `limit_train_batches`, no validation.
- baseline: a for loop: transform, forward, cross-entropy, zero_grad, backward, step, schedule.

Steps per CPU-second of this process (one torch thread; see benchmarks/timing.py) are counted from the
end of the warm-up steps to the end of the last one, in alternating rounds; the table shows each side's
median and the median of the per-round ratios.
"""

import copy

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.lr_scheduler import CosineAnnealingLR

from benchmarks.cached_data import synthetic_root
from benchmarks.lightning_trainer import StepClock, bench_trainer
from benchmarks.timing import alternate, cpu_seconds, one_thread, print_rows, ratio_row
from stl10_lightning.data import STL10DataModule
from stl10_lightning.data.transforms import classification_train_transform
from stl10_lightning.stages import SupervisedResNet

IMAGE_SIZE = 32
BATCH_SIZE = 128
BACKBONE = {"_target_": "stl10_lightning.models.TinyNet", "width": 32}
OPTIMIZER = {
    "_target_": "torch.optim.SGD",
    "lr": 0.1,
    "momentum": 0.9,
    "nesterov": True,
    "weight_decay": 5e-4,
}
AUGMENT = {"crop_padding": 0.125, "flip": True, "cutout": 0.33}  # conf/stage/supervised.yaml


def lightning_steps_per_second(initial: SupervisedResNet, data: STL10DataModule, warmup: int, steps: int):
    clock = StepClock(warmup)
    trainer = bench_trainer(
        accelerator="cpu", limit_train_batches=warmup + steps, limit_val_batches=0, callbacks=[clock]
    )
    trainer.fit(copy.deepcopy(initial), datamodule=data)
    return clock.steps_per_second()


def plain_steps_per_second(initial: SupervisedResNet, data: STL10DataModule, warmup: int, steps: int):
    model = copy.deepcopy(nn.Sequential(initial.backbone, initial.head)).train()
    transform = classification_train_transform(IMAGE_SIZE, **AUGMENT)
    settings = {key: value for key, value in OPTIMIZER.items() if key != "_target_"}
    groups = [
        {"params": [p for p in model.parameters() if p.ndim > 1]},
        {"params": [p for p in model.parameters() if p.ndim <= 1], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.SGD(groups, **settings)
    scheduler = CosineAnnealingLR(optimizer, T_max=warmup + steps)
    batches = iter(data.train_dataloader())
    for step in range(warmup + steps):
        if step == warmup:
            start = cpu_seconds()
        images, labels = next(batches)
        loss = F.cross_entropy(model(transform(images)), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
    return steps / (cpu_seconds() - start)


def run(quick: bool = False) -> list[dict]:
    warmup, steps, rounds = (2, 3, 1) if quick else (5, 25, 5)
    data = STL10DataModule(
        str(synthetic_root(20_000)), image_size=IMAGE_SIZE, batch_size=BATCH_SIZE, num_workers=0
    )
    data.setup("fit")
    torch.manual_seed(0)
    initial = SupervisedResNet(
        BACKBONE, OPTIMIZER, image_size=IMAGE_SIZE, schedule="cosine", warmup_epochs=0, augment=AUGMENT
    )
    with one_thread():
        ours, baseline = alternate(
            lambda: lightning_steps_per_second(initial, data, warmup, steps),
            lambda: plain_steps_per_second(initial, data, warmup, steps),
            rounds,
        )
    return [
        ratio_row(
            benchmark="supervised training steps, Lightning vs plain loop",
            ours=ours,
            baseline=baseline,
            unit="steps/CPU-s",
            goal=">= 0.95x",
            setup=f"TinyNet, {IMAGE_SIZE} px, batch {BATCH_SIZE}, CPU, 1 thread; "
            f"{steps} steps after {warmup}, medians of {rounds} alternating rounds",
        )
    ]


if __name__ == "__main__":
    print_rows(run, __doc__, "a few steps, to check that it runs")
