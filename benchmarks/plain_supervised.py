"""The supervised stage's default recipe as a plain PyTorch loop: the control of the quality benchmark.

No Lightning, no Hydra, no kornia: the same images, splits, backbone and recipe, written out by hand, so
that a gap between this loop and `python train.py stage=supervised` points at the framework.

    python -m benchmarks.plain_supervised --root data/realdev --image-size 32 --stem imagenet \
        --labeled-count 2000 --epochs 60 --out plain.json

The recipe mirrors conf/stage/supervised.yaml and conf/optimizer/sgd.yaml: SGD lr 0.1 at batch 128 with
Nesterov momentum 0.9 and weight decay 5e-4 on weights only, linear warm-up over 5 epochs from 1e-3 x
the rate then cosine to 0 per step, reflect-pad-and-crop of 1/8 of the side, flip and a cutout of 1/3 of
the side per image, the best validation epoch's weights tested once.
"""

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from stl10_lightning.data.splits import stratified_split
from stl10_lightning.data.stl10_binary import STL10Binary, to_upright
from stl10_lightning.models import resnet18


def load_split(binary: STL10Binary, split: str, indices: np.ndarray, size: int) -> torch.Tensor:
    """Float images in [0, 1] at `size`, resized once up front (antialiased bilinear, as the stages)."""
    images = torch.from_numpy(to_upright(binary.images(split)[np.sort(indices)])).float() / 255
    order = np.argsort(np.argsort(indices))  # back to the order of `indices`
    resized = F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return resized[order]


def splits(root: str, labeled_count: int | None, val_size: int, seed: int, size: int) -> dict:
    """train, val and test (images, labels), the datamodule's stratified, seeded splits, and the data's
    class count and normalization statistics."""
    binary = STL10Binary(root)
    labels = binary.labels("train")
    pool = np.arange(len(labels))
    if labeled_count is not None and labeled_count < len(pool):
        _, pool = stratified_split(labels, labeled_count, seed)
    train, val = stratified_split(labels[pool], val_size, seed)
    test_labels = binary.labels("test")
    return {
        "train": (load_split(binary, "train", pool[train], size), torch.from_numpy(labels[pool[train]])),
        "val": (load_split(binary, "train", pool[val], size), torch.from_numpy(labels[pool[val]])),
        "test": (
            load_split(binary, "test", np.arange(len(test_labels)), size),
            torch.from_numpy(test_labels),
        ),
        "classes": binary.num_classes,
        "mean": torch.tensor(binary.mean)[:, None, None],
        "std": torch.tensor(binary.std)[:, None, None],
    }


def augment(images: torch.Tensor, generator: torch.Generator, statistics: tuple) -> torch.Tensor:
    """Reflect-pad-and-crop (1/8 of the side), flip, normalize, then cutout (1/3 of the side), per image."""
    count, _, size, _ = images.shape
    pad = round(0.125 * size)
    padded = F.pad(images, (pad, pad, pad, pad), mode="reflect")
    offsets = torch.randint(0, 2 * pad + 1, (count, 2), generator=generator)
    cropped = torch.stack([
        padded[i, :, y : y + size, x : x + size] for i, (y, x) in enumerate(offsets.tolist())
    ])  # fmt: skip
    flip = torch.rand(count, generator=generator) < 0.5
    cropped = torch.where(flip[:, None, None, None], cropped.flip(-1), cropped)
    normalized = normalize(cropped, *statistics)
    side = round(0.33 * size)
    corners = torch.randint(0, size - side + 1, (count, 2), generator=generator)
    for i, (y, x) in enumerate(corners.tolist()):
        normalized[i, :, y : y + side, x : x + side] = 0.0
    return normalized


def normalize(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    return (images - mean) / std


def learning_rate_factor(step: int, warmup_steps: int, total_steps: int) -> float:
    """Linear from 1e-3 to 1 over the warm-up, then cosine to 0 (torch's LinearLR then CosineAnnealingLR)."""
    if step < warmup_steps:
        return 1e-3 + (1 - 1e-3) * step / warmup_steps
    return 0.5 * (1 + math.cos(math.pi * (step - warmup_steps) / max(total_steps - warmup_steps, 1)))


@torch.no_grad()
def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, data: dict) -> dict:
    model.eval()
    batches = images.split(512)
    predictions = torch.cat(
        [model(normalize(batch, data["mean"], data["std"])).argmax(1) for batch in batches]
    )
    model.train()
    classes = data["classes"]
    f1 = []
    for c in range(classes):
        true_positive = ((predictions == c) & (labels == c)).sum().item()
        predicted, actual = (predictions == c).sum().item(), (labels == c).sum().item()
        f1.append(2 * true_positive / (predicted + actual) if predicted + actual else 0.0)
    return {"acc": (predictions == labels).float().mean().item(), "f1": sum(f1) / classes}


def train(args: argparse.Namespace) -> dict:
    torch.manual_seed(args.seed)
    data = splits(args.root, args.labeled_count, args.val_size, args.seed, args.image_size)
    backbone = resnet18(stem=args.stem)
    model = nn.Sequential(backbone, nn.Linear(backbone.feature_dim, data["classes"]))
    weights = [p for p in model.parameters() if p.ndim > 1]
    others = [p for p in model.parameters() if p.ndim <= 1]
    optimizer = torch.optim.SGD(
        [{"params": weights}, {"params": others, "weight_decay": 0.0}],
        lr=0.1 * args.batch_size / 128, momentum=0.9, nesterov=True, weight_decay=5e-4,
    )  # fmt: skip
    images, labels = data["train"]
    steps_per_epoch = len(images) // args.batch_size if len(images) > args.batch_size else 1
    total = steps_per_epoch * args.epochs
    warmup = int(total * 5 / args.epochs)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: learning_rate_factor(step, warmup, total)
    )
    generator = torch.Generator().manual_seed(args.seed)
    best, best_state, started = -1.0, None, time.perf_counter()
    for _ in range(args.epochs):
        order = torch.randperm(len(images), generator=generator)
        for step in range(steps_per_epoch):
            batch = order[step * args.batch_size : (step + 1) * args.batch_size]
            augmented = augment(images[batch], generator, (data["mean"], data["std"]))
            loss = F.cross_entropy(model(augmented), labels[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
        val = evaluate(model, *data["val"], data)
        if val["acc"] > best:  # the first best epoch, as ModelCheckpoint keeps it
            best, best_state = val["acc"], {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    test = evaluate(model, *data["test"], data)
    return {
        "val/acc": best,
        "test/acc": test["acc"],
        "test/f1": test["f1"],
        "steps": total,
        "seconds": time.perf_counter() - started,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", required=True)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--stem", default="imagenet")
    parser.add_argument("--labeled-count", type=int, default=None)
    parser.add_argument("--val-size", type=int, default=500)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    result = train(args)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
