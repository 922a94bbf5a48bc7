"""Hydra entry point: compose, seed, instantiate, fit, test on the best checkpoint, write results.

`python train.py stage=supervised backbone=resnet18 ...`, or the `stl10-train` console script.
"""

import logging
import sys
import warnings
from pathlib import Path

import hydra
import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.core.saving import save_hparams_to_yaml
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.utilities.model_helpers import is_overridden

from stl10_lightning import atomic, resume, startup
from stl10_lightning.ddp_launch import other_ranks_join_this_run
from stl10_lightning.errors import user_error_behind

CONFIG_DIR = Path(__file__).resolve().parent.parent / "conf"
log = logging.getLogger(__name__)
# By design the stage, not the data module, transforms batches on the device; Lightning warns about it.
warnings.filterwarnings("ignore", message=".*overridden `on_after_batch_transfer`.*")

OmegaConf.register_new_resolver("run_folder_for", resume.run_folder_for, replace=True)  # conf/train.yaml


def _final_metrics(results: list[dict]) -> dict[str, float]:
    return {name: float(value) for result in results for name, value in result.items()}


def _log_hparams(trainer: pl.Trainer, cfg: DictConfig, metrics: dict[str, float]) -> None:
    """TensorBoard's HPARAMS tab: the whole config beside the final metrics, not a placeholder."""
    hparams = OmegaConf.to_container(cfg, resolve=True)
    summary = {f"hparams/{name}": value for name, value in metrics.items() if "class_f1" not in name}
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.log_hyperparams(hparams, summary)
            save_hparams_to_yaml(Path(logger.log_dir) / "hparams.yaml", hparams)  # Lightning left it empty


def train(cfg: DictConfig) -> dict[str, float]:
    """Run one stage as `cfg` describes and return its final val and test metrics."""
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if cfg.ckpt_path is not None:
        resume.check_checkpoint(cfg.ckpt_path, cfg)
        if (run_dir / "config.yaml").is_file():
            resume.check_same_settings(cfg, run_dir / "config.yaml")
    if cfg.seed is not None:
        pl.seed_everything(cfg.seed, workers=True)
    trainer = startup.make_trainer(cfg)
    if trainer.global_rank == 0:  # under DDP the other ranks share the folder and only read it
        (run_dir / "metrics.json").unlink(missing_ok=True)  # a resumed run is unfinished until it ends
        OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
    with other_ranks_join_this_run(run_dir):
        return _fit_and_evaluate(cfg, trainer, run_dir)


def _fit_and_evaluate(cfg: DictConfig, trainer: pl.Trainer, run_dir: Path) -> dict[str, float]:
    datamodule = instantiate(cfg.data)
    model = instantiate(cfg.model)
    startup.check_image_size(model, cfg)
    trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.ckpt_path, weights_only=True)

    # The monitored checkpoint; fast_dev_run saves none, so the weights in memory are evaluated then.
    best = next((c.best_model_path for c in trainer.checkpoint_callbacks if c.monitor), "") or None
    loggers, trainer.loggers = trainer.loggers, []  # the best epoch's val metrics are no new curve point
    val = trainer.validate(model, datamodule=datamodule, ckpt_path=best, weights_only=True, verbose=False)
    trainer.loggers = loggers
    if is_overridden("test_step", model):  # Barlow Twins has no test: its probe stage reports one
        val += trainer.test(model, datamodule=datamodule, ckpt_path=best, weights_only=True)
    metrics = _final_metrics(val)
    _log_hparams(trainer, cfg, metrics)
    result = {
        "stage": cfg.stage.name,
        "seed": cfg.seed,
        "labeled": len(datamodule.splits["train"]),
        "best_checkpoint": best,
        "epochs": trainer.current_epoch,
        "steps": trainer.global_step,
        **metrics,
    }
    if hasattr(model, "run_summary"):  # a stage's own results: backbone.pt, pseudo-label counts
        result.update(model.run_summary(run_dir))
    if trainer.global_rank == 0:
        atomic.write_json(run_dir / "metrics.json", result)  # last: its presence marks a finished run
    log.info("metrics: %s", {k: round(v, 4) for k, v in metrics.items() if "class_f1" not in k})
    log.info("run folder: %s", run_dir)
    log.info("dashboard: tensorboard --logdir %s", run_dir)
    return metrics


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Returns the monitored val metric, for Hydra sweepers; the test set never steers a sweep."""
    try:
        return train(cfg).get(cfg.stage.monitor)
    except Exception as err:
        user_error = user_error_behind(err, cfg.run_dir)
        if user_error is None:
            raise
        print(f"error: {user_error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
