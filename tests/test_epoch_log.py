"""A line per epoch in train.log: progress for runs whose output is a file, where no progress bar draws."""

import re
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from stl10_lightning.train import main

NUMBER = r"[0-9.e+-]+"
LINE = re.compile(
    rf"\]\[stl10_lightning\.launch\.epoch_log\]\[INFO\] - epoch (\d)/2: train/loss ({NUMBER}), "
    rf"val/loss {NUMBER}, val/acc ({NUMBER}), val/f1 {NUMBER}, lr {NUMBER}, {NUMBER} s/epoch, "
    r"(?:\d+m \d\ds|\d+s) left$"
)


def test_train_log_has_a_line_per_epoch_with_the_epochs_values(monkeypatch, synthetic_root, tmp_path):
    run_dir = tmp_path / "run"
    tiny = ["backbone=tiny", "data.image_size=32", "data.num_workers=0", "trainer.accelerator=cpu"]
    short = ["trainer.max_epochs=2", "+trainer.limit_train_batches=2", "data.val_size=100"]
    argv = ["train.py", *tiny, *short, f"data.root={synthetic_root}", f"hydra.run.dir={run_dir}"]
    monkeypatch.setattr(sys, "argv", [*argv, "callbacks.progress_bar=null"])
    main()
    lines = [LINE.search(line) for line in (run_dir / "train.log").read_text().splitlines()]
    lines = [line for line in lines if line]
    assert [int(line[1]) for line in lines] == [1, 2], (run_dir / "train.log").read_text()
    # The values are the epoch's own, as TensorBoard has them (to 4 significant digits).
    events = EventAccumulator(str(run_dir / "tensorboard")).Reload()
    for name, group in [("train/loss_epoch", 2), ("val/acc", 3)]:
        logged = [f"{event.value:.4g}" for event in events.Scalars(name)]
        assert [line[group] for line in lines] == logged, name
