"""The online pseudo-label step in one forward pass (the default) against two passes.

    python -m benchmarks.online_step [--quick]      (from the repository root)

One pass runs labeled, weak and strong images through the model together and takes the weak view's
logits from that pass; two passes label the weak view under no_grad first, then train on the labeled
and strong images. Both sides run the stage's own `training_step` on the same batches (ResNet-18 with
the ImageNet stem at 32 px, a labeled batch of 64 and mu 2, CPU, one thread), with SGD steps between.
"""

import torch

from benchmarks.timing import alternate, cpu_seconds, one_thread, print_rows, ratio_row
from stl10_lightning.stages import OnlinePseudoLabelModule

BACKBONE = {"_target_": "stl10_lightning.models.resnet18", "stem": "imagenet"}
OPTIMIZER = {"_target_": "torch.optim.SGD", "lr": 0.03, "momentum": 0.9}
LABELED, MU, SIZE = 64, 2, 32


def steps_per_second(one_pass: bool, batch: tuple, warmup: int, steps: int) -> float:
    torch.manual_seed(0)
    module = OnlinePseudoLabelModule(BACKBONE, OPTIMIZER, mu=MU, image_size=SIZE, one_pass=one_pass)
    optimizer = torch.optim.SGD(module.parameters(), lr=0.03, momentum=0.9)
    for step in range(warmup + steps):
        if step == warmup:
            start = cpu_seconds()
        loss = module.training_step(batch, step)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return steps / (cpu_seconds() - start)


def run(quick: bool = False) -> list[dict]:
    warmup, steps, rounds = (1, 2, 1) if quick else (3, 10, 3)
    generator = torch.Generator().manual_seed(0)
    unlabeled = torch.randn(MU * LABELED, 3, SIZE, SIZE, generator=generator)
    batch = (
        torch.randn(LABELED, 3, SIZE, SIZE, generator=generator),
        torch.randint(0, 10, (LABELED,), generator=generator),
        unlabeled,
        unlabeled + 0.5 * torch.randn(unlabeled.shape, generator=generator),
    )
    with one_thread():
        ours, baseline = alternate(
            lambda: steps_per_second(True, batch, warmup, steps),
            lambda: steps_per_second(False, batch, warmup, steps),
            rounds,
        )
    return [
        ratio_row(
            benchmark="online pseudo-label step, one forward pass vs two",
            ours=ours,
            baseline=baseline,
            unit="steps/CPU-s",
            goal="",  # informational: one pass also backpropagates through the weak images
            setup=f"ResNet-18 (ImageNet stem), {SIZE} px, {LABELED} labeled + {MU}x{LABELED} unlabeled, "
            f"CPU, 1 thread; {steps} steps after {warmup}, medians of {rounds} alternating rounds",
        )
    ]


if __name__ == "__main__":
    print_rows(run, __doc__, "a few steps, to check that it runs")
