import re
import subprocess
import sys

import pytest

from tests.helpers import REPO


@pytest.mark.slow(seconds=150)
def test_the_study_runs_end_to_end_and_prints_the_table(synthetic_root, tmp_path):
    """`make demo` with tiny sizes: every stage, each finding the previous one's run, then the table."""
    out = tmp_path / "study"
    tiny = [
        "experiment=demo",
        "data.synthetic=null",  # the session's synthetic folder instead of the demo's own
        f"data.root={synthetic_root}",
        "data.unlabeled_count=null",
        "data.val_size=100",
        "data.num_workers=0",
        "trainer.accelerator=cpu",
        "trainer.max_epochs=1",
        "+trainer.limit_train_batches=2",
        "callbacks.progress_bar=null",
    ]
    command = [sys.executable, "-m", "stl10_lightning.study", "--out", str(out), "--ratios", "0.1,0.2", *tiny]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    table = (out / "report" / "results.md").read_text()
    assert table.startswith("| method |") and result.stdout.endswith(table)
    for row in ("| supervised |", "| linear probe |"):
        assert row in table, table
    for mode in ("offline", "online"):  # each ratio in both modes, side by side
        for ratio, used in (("0.1", 100), ("0.2", 200)):
            assert re.search(rf"\| pseudo-label \| {mode} \| .*\| 1:{ratio} \| {used} \|", table), table
    assert (out / "barlow_twins" / "backbone.pt").is_file() and (out / "report" / "results.csv").is_file()

    rerun = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0 and rerun.stderr.count("already finished, skipped") == 7
