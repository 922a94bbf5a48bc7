"""TensorBoard's HPARAMS tab lists the settings a user compares runs by, under short names."""

from hydra.utils import instantiate

from stl10_lightning.launch.compared_settings import compared_settings


def test_a_pseudo_label_run_lists_its_recipe_mode_and_threshold(make_cfg):
    cfg = make_cfg(
        "stage=pseudo_label", "pseudo=online", "ratio=0.4", "backbone=resnet18", "optimizer=adamw",
        "trainer.max_epochs=7", "seed=3",
    )  # fmt: skip
    assert compared_settings(cfg, instantiate(cfg.model)) == {
        "stage": "pseudo_label", "backbone": "resnet18", "stem": "conv3_pool", "optimizer": "AdamW",
        "lr": 0.002, "epochs": 7, "batch_size": 64, "image_size": 32, "ratio": 0.4, "pseudo": "online",
        "threshold": 0.95, "seed": 3,
    }  # fmt: skip


def test_settings_a_run_lacks_are_left_out(make_cfg):
    cfg = make_cfg("seed=null")
    assert compared_settings(cfg, instantiate(cfg.model)) == {
        "stage": "supervised", "backbone": "TinyNet", "optimizer": "SGD", "lr": 0.1, "epochs": 200,
        "batch_size": 64, "image_size": 32,
    }  # fmt: skip
