"""Hydra entry point: compose, check, seed, instantiate, fit, test on the best checkpoint, write results.

`python train.py stage=supervised backbone=resnet18 ...`, or the `stl10-train` console script.

Every check (settings, checkpoint, data, model, machine) runs before the run folder is touched; then the
run claims its folder (runs/folder.py), so a finished run is never changed by a later command.
"""

import logging
import os
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path

import hydra
import pytorch_lightning as pl
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.core.saving import save_hparams_to_yaml
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.utilities.model_helpers import is_overridden

from stl10_lightning import settings
from stl10_lightning.common import atomic
from stl10_lightning.common.errors import UserError
from stl10_lightning.data.stl10_binary import settings_from_data
from stl10_lightning.launch import startup
from stl10_lightning.launch.compared_settings import compared_settings
from stl10_lightning.launch.ddp import other_ranks_join_this_run
from stl10_lightning.launch.run_errors import user_error_behind
from stl10_lightning.runs import folder as run_folder
from stl10_lightning.runs import resume

CONFIG_DIR = Path(__file__).resolve().parent.parent / "conf"
log = logging.getLogger(__name__)
# By design the stage, not the data module, transforms batches on the device; Lightning warns about it.
warnings.filterwarnings("ignore", message=".*overridden `on_after_batch_transfer`.*")

OmegaConf.register_new_resolver("run_folder_for", run_folder.run_folder_for, replace=True)  # conf/train.yaml
# conf/stage/: model.num_classes, mean and std from the data, so config.yaml records what ran.
OmegaConf.register_new_resolver("from_data", lambda root, key: settings_from_data(root)[key], replace=True)
settings.register()  # the schema that conf/ files name in their defaults lists


def _final_metrics(results: list[dict]) -> dict[str, float]:
    return {name: float(value) for result in results for name, value in result.items()}


def _log_hparams(trainer: pl.Trainer, cfg: DictConfig, metrics: dict[str, float]) -> None:
    """TensorBoard's HPARAMS tab: the settings runs are compared by, beside the final metrics; the
    logger's hparams.yaml: the whole config."""
    compared = compared_settings(cfg, trainer.lightning_module)
    summary = {f"hparams/{name}": value for name, value in metrics.items() if "class_f1" not in name}
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.log_hyperparams(compared, summary)
            # The whole config as the record of what ran: Lightning left this file empty.
            save_hparams_to_yaml(
                Path(logger.log_dir) / "hparams.yaml", OmegaConf.to_container(cfg, resolve=True)
            )


def _checked_start(cfg: DictConfig, run_dir: Path):
    """(trainer, datamodule, model), once every setting, the checkpoint and the data have been checked."""
    settings.check_settings(cfg)
    if cfg.ckpt_path is not None:
        resume.check_checkpoint(cfg.ckpt_path, cfg)
        if (run_dir / "config.yaml").is_file():
            resume.check_same_settings(cfg, run_dir / "config.yaml")
    if HydraConfig.initialized():
        startup.warn_about_ignored_settings(cfg, list(HydraConfig.get().overrides.task))
    if cfg.seed is not None:
        pl.seed_everything(cfg.seed, workers=True)
    trainer = startup.make_trainer(cfg)
    datamodule = instantiate(cfg.data)
    if trainer.global_rank == 0:  # other ranks wait for rank 0's data in fit, as Lightning arranges
        startup.check_data(datamodule)
    model = instantiate(cfg.model)
    startup.check_image_size(model, cfg)
    if trainer.global_rank == 0:
        startup.check_model_fits_data(model, datamodule)
    return trainer, datamodule, model


def train(cfg: DictConfig) -> dict[str, float]:
    """Run one stage as `cfg` describes and return its final val and test metrics."""
    run_dir = Path(cfg.run_dir)
    held_logs = run_folder.HeldFileLogs()
    try:
        trainer, datamodule, model = _checked_start(cfg, run_dir)
        lock = None
        if trainer.global_rank == 0:  # under DDP the other ranks share rank 0's folder and only read it
            run_dir.mkdir(parents=True, exist_ok=True)
            lock = run_folder.claim(run_dir, cfg.ckpt_path)
    except BaseException:
        held_logs.drop()
        raise
    held_logs.release()
    try:
        if lock is not None:
            _start_record(cfg, run_dir)
        with other_ranks_join_this_run(run_dir):
            return _fit_and_evaluate(cfg, trainer, run_dir, datamodule, model)
    finally:
        if lock is not None:
            os.close(lock)


def _start_record(cfg: DictConfig, run_dir: Path) -> None:
    """What a claimed run writes first: it is unfinished until metrics.json appears."""
    if cfg.ckpt_path is None:
        run_folder.write_hydra_record(run_dir, cfg)
    else:
        log.info("resuming %s from %s", run_dir, cfg.ckpt_path)
    atomic.write_text(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))


def _fit_and_evaluate(cfg, trainer: pl.Trainer, run_dir: Path, datamodule, model) -> dict[str, float]:
    trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.ckpt_path, weights_only=True)
    if trainer.global_step == 0:
        limit = cfg.trainer.get("limit_train_batches")
        limited = f", trainer.limit_train_batches={limit}" if limit is not None else ""
        raise UserError(
            f"the run took no optimizer step: its training data gave no batch (data.batch_size="
            f"{cfg.data.batch_size}{limited}); lower data.batch_size, or give it more training images"
        )

    # The monitored checkpoint; fast_dev_run saves none, so the weights in memory are evaluated then.
    best = next((c.best_model_path for c in trainer.checkpoint_callbacks if c.monitor), "") or None
    if best is not None and not Path(best).resolve().is_relative_to(run_dir.resolve()):
        raise UserError(
            f"the best checkpoint {best} is not in this run's folder {run_dir}; refusing to test it"
        )
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
        "best_checkpoint": str(Path(best).resolve().relative_to(run_dir.resolve())) if best else None,
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


def _print_and_exit(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def _run(cfg: DictConfig) -> float | None:
    """Returns the monitored val metric, for Hydra sweepers; the test set never steers a sweep."""
    try:
        return train(cfg).get(cfg.stage.monitor)
    except Exception as err:
        user_error = user_error_behind(err, cfg.run_dir)
        if user_error is None:
            raise
        _print_and_exit(str(user_error))


@contextmanager
def _hydra_errors_raised():
    """Hydra prints its own errors (a value of the wrong type, an unknown key or option) over several lines
    and exits 1; HYDRA_FULL_ERROR makes it raise them instead, so that main can give them one line."""
    before = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = before


def main() -> None:
    """`python train.py OVERRIDES` (and `stl10-train`): any bad setting ends in one `error:` line, exit 2."""
    with _hydra_errors_raised():
        try:
            _run()
        except Exception as err:
            message = settings.one_line(err)
            if message is None:
                raise
            _print_and_exit(message)


if __name__ == "__main__":
    main()
