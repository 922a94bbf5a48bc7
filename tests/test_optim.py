import logging
from types import SimpleNamespace

import pytest
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from stl10_lightning.models import TinyNet
from stl10_lightning.models.backbone_file import save_backbone
from stl10_lightning.optim.build import build_optimizer, global_batch, warmup_cosine

SGD = {"_target_": "torch.optim.SGD", "lr": 0.1, "weight_decay": 5e-4}


def test_weight_decay_skips_biases_and_batchnorm():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(2))
    model(torch.randn(1, 3, 8, 8))
    optimizer = build_optimizer(SGD, model, global_batch=128)
    decayed, plain = optimizer.param_groups
    assert decayed["weight_decay"] == 5e-4 and plain["weight_decay"] == 0.0
    assert [p.ndim for p in decayed["params"]] == [4, 2]
    assert len(plain["params"]) == 4  # conv bias, BatchNorm weight and bias, linear bias


def test_any_optimizer_with_a_reference_batch_scales_both_rates_and_logs_it(caplog):
    caplog.set_level(logging.INFO, logger="stl10_lightning.optim.build")
    adam = {"_target_": "torch.optim.Adam", "lr": 1e-3, "no_decay_lr": 1e-4, "lr_reference_batch": 256}
    weights, no_decay = build_optimizer(adam, nn.Linear(2, 2), global_batch=64).param_groups
    assert weights["lr"] == pytest.approx(2.5e-4) and no_decay["lr"] == pytest.approx(2.5e-5)
    assert "optimizer.lr 0.001 x global batch 64 / optimizer.lr_reference_batch 256 = 0.00025" in caplog.text
    caplog.clear()
    assert build_optimizer(SGD, nn.Linear(2, 2), global_batch=64).param_groups[0]["lr"] == 0.1
    assert "learning rate" not in caplog.text  # no reference batch: the rate is used as it is


def process_of(images: int, batch_size: int, world_size: int, accumulate: int) -> SimpleNamespace:
    """Rank 0 of `world_size` processes as global_batch sees it: a DistributedSampler's share."""
    dataset = TensorDataset(torch.zeros(images))
    sampler = DistributedSampler(dataset, num_replicas=world_size, rank=0)
    loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler)
    trainer = SimpleNamespace(
        train_dataloader=loader, world_size=world_size, accumulate_grad_batches=accumulate
    )
    return SimpleNamespace(trainer=trainer)


def test_the_global_batch_is_what_each_process_takes_a_step(caplog):
    assert global_batch(process_of(4500, 128, world_size=4, accumulate=2)) == 128 * 4 * 2
    assert "training images per process" not in caplog.text
    # 250 images over 4 processes: 63 each, so a step takes 63 per process, not the configured 256.
    assert global_batch(process_of(250, 256, world_size=4, accumulate=2)) == 63 * 4 * 2
    assert "data.batch_size=256 is more than the 63 training images per process" in caplog.text


def fit_one_step(cfg) -> pl.Trainer:
    """One optimizer step of the composed stage on the CPU; the trainer keeps its optimizer."""
    trainer = pl.Trainer(
        accelerator="cpu", max_steps=1, limit_val_batches=0, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(instantiate(cfg.model), datamodule=instantiate(cfg.data))
    return trainer


def learning_rates(trainer: pl.Trainer) -> dict[str, float]:
    return {group["name"]: group["lr"] for group in trainer.optimizers[0].param_groups}


@pytest.mark.parametrize(
    ("stage", "rate", "reference"),
    [
        (["stage=supervised"], 0.1, 128),
        (["stage=pseudo_label", "pseudo=online", "ratio=0.2", "pseudo.mu=1"], 0.03, 64),  # FixMatch's
    ],
)
def test_sgd_follows_the_global_batch_from_the_recipe_s_reference(make_cfg, caplog, stage, rate, reference):
    caplog.set_level(logging.INFO, logger="stl10_lightning.optim.build")
    trainer = fit_one_step(make_cfg(*stage, "data.batch_size=256", "model.schedule=constant"))
    scaled = rate * 256 / reference  # on 900 images
    assert learning_rates(trainer)["weights"] == pytest.approx(scaled)
    expected = (
        f"optimizer.lr {rate:g} x global batch 256 / optimizer.lr_reference_batch {reference} = {scaled:g}"
    )
    assert expected in caplog.text


def test_probe_on_a_split_smaller_than_its_batch_trains_one_batch_at_that_batchs_rate(
    make_cfg, tmp_path, caplog
):
    save_backbone(
        tmp_path / "backbone.pt", {"_target_": "stl10_lightning.models.TinyNet", "width": 32}, TinyNet()
    )
    small_split = ["data.fold=0", "data.val_size=50"]  # the fold's 200 images: 150 to train on
    cfg = make_cfg(
        "stage=linear_probe", f"probe.backbone={tmp_path / 'backbone.pt'}", *small_split,
        "data.batch_size=256", "model.schedule=constant",
    )  # fmt: skip
    trainer = fit_one_step(cfg)
    assert trainer.global_step == 1
    assert learning_rates(trainer)["weights"] == pytest.approx(0.3 * 150 / 256)
    assert "data.batch_size=256 is more than the 150 training images per process" in caplog.text


def test_lars_follows_the_real_batch_when_the_dataset_is_smaller_than_the_batch(make_cfg):
    cfg = make_cfg(
        "stage=barlow_twins", "model.projector=64-64", "data.unlabeled_count=100", "data.batch_size=256",
        "model.schedule=constant",
    )  # fmt: skip
    rates = learning_rates(fit_one_step(cfg))
    assert rates["weights"] == pytest.approx(0.2 * 100 / 256)
    assert rates["no_decay"] == pytest.approx(0.0048 * 100 / 256)


def test_warmup_then_cosine_to_zero():
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = warmup_cosine(optimizer, warmup_steps=10, total_steps=110)
    lrs = []
    for _ in range(110):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[0] < 0.01
    assert max(lrs) == lrs[10] == 1.0
    assert abs(lrs[60] - 0.5) < 0.02  # halfway through the cosine
    assert lrs[-1] < 0.001
