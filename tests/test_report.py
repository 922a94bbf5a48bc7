"""The results table from fixture run folders with known numbers: means, std, delta, files, errors."""

import contextlib
import csv
import io
import json
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from stl10_lightning.report import main

BACKBONES = {"resnet18": "stl10_lightning.models.resnet18", "TinyNet": "stl10_lightning.models.TinyNet"}


def make_run(folder: Path, stage: str, metrics: dict | str | None, backbone: str = "resnet18") -> None:
    """A run folder as train.py leaves it: config.yaml always, metrics.json once finished."""
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(
        f"stage:\n  name: {stage}\nbackbone:\n  _target_: {BACKBONES[backbone]}\ndata:\n  root: data/stl10\n"
    )
    if metrics is not None:
        text = (
            metrics if isinstance(metrics, str) else json.dumps({"stage": stage, "labeled": 1000, **metrics})
        )
        (folder / "metrics.json").write_text(text)


def pseudo(ratio: float, seed: int, acc: float, kept: int, mode: str = "offline") -> dict:
    return dict(
        {"seed": seed, "test/acc": acc, "test/f1": acc - 0.01, "val/acc": acc, "val/f1": acc},
        ratio=ratio, unlabeled_used=int(1000 * ratio), kept=kept, threshold=0.95, mode=mode,
    )  # fmt: skip


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("outputs")
    make_run(root / "supervised/a", "supervised", {"seed": 0, "test/acc": 0.70, "test/f1": 0.68})
    make_run(root / "supervised/b", "supervised", {"seed": 1, "test/acc": 0.72, "test/f1": 0.70})
    make_run(
        root / "supervised/tiny", "supervised", {"seed": 0, "test/acc": 0.50, "test/f1": 0.49}, "TinyNet"
    )
    make_run(root / "supervised/broken", "supervised", "{not json")
    make_run(root / "linear_probe/a", "linear_probe", {"seed": 0, "test/acc": 0.65})  # an older run: no f1
    make_run(root / "barlow_twins/a", "barlow_twins", {"seed": 0, "knn/acc": 0.55, "probe/acc": 0.6})
    make_run(root / "pseudo_label/multirun_x/0", "pseudo_label", pseudo(0.4, 0, 0.73, 350))
    make_run(root / "pseudo_label/multirun_x/1", "pseudo_label", pseudo(0.4, 1, 0.75, 360))
    make_run(root / "pseudo_label/c", "pseudo_label", pseudo(10, 0, 0.74, 9000))
    make_run(root / "pseudo_label/d", "pseudo_label", pseudo(10, 1, 0.78, 9100))
    make_run(root / "pseudo_label/online", "pseudo_label", pseudo(0.4, 0, 0.76, 380, mode="online"))
    make_run(root / "pseudo_label/running", "pseudo_label", None)
    make_run(root / "report/stray", "supervised", {"seed": 0, "test/acc": 0.1})  # this tool's folder: skipped
    return root


def run_report(*argv: str) -> str:
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        main(list(argv))
    return stdout.getvalue()


@pytest.fixture(scope="module")
def report(outputs, tmp_path_factory) -> tuple[str, Path]:
    out = tmp_path_factory.mktemp("report")
    return run_report(str(outputs), "--out", str(out)), out


def table_rows(markdown: str) -> list[dict[str, str]]:
    lines = [line for line in markdown.splitlines() if line.startswith("| ")]
    header, *rows = ([cell.strip() for cell in line.strip("|").split("|")] for line in lines)
    return [dict(zip(header, row, strict=True)) for row in rows[1:]]  # rows[0]: the alignment line


def test_table_averages_seeds_and_compares_with_supervised(report):
    rows = table_rows(report[0])
    assert [(r["method"], r["backbone"], r["ratio"]) for r in rows] == [
        ("supervised", "TinyNet", ""),  # another backbone: its own row and its own baseline
        ("supervised", "resnet18", ""),
        ("linear probe", "resnet18", ""),
        ("pseudo-label", "resnet18", "1:0.4"),
        ("pseudo-label", "resnet18", "1:10"),
        ("pseudo-label", "resnet18", "1:0.4"),  # modes apart: offline, then online
    ]
    tiny, supervised, probe, low, high, online = rows
    assert tiny["accuracy (%)"] == "50.00" and tiny["seeds"] == "1"
    assert supervised["accuracy (%)"] == "71.00 ± 1.41" and supervised["macro-F1 (%)"] == "69.00 ± 1.41"
    assert supervised["seeds"] == "2" and supervised["labeled"] == "1000" and supervised["mode"] == ""
    assert (
        probe["accuracy (%)"] == "65.00"
        and probe["macro-F1 (%)"] == "—"
        and probe["Δ vs supervised"] == "-6.00"
    )
    assert (
        low["mode"] == "offline"
        and low["accuracy (%)"] == "74.00 ± 1.41"
        and low["Δ vs supervised"] == "+3.00"
    )
    assert low["kept"] == "355" and low["unlabeled used"] == "400" and low["seeds"] == "2"
    assert high["accuracy (%)"] == "76.00 ± 2.83" and high["Δ vs supervised"] == "+5.00"
    assert high["kept"] == "9050" and high["macro-F1 (%)"] == "75.00 ± 2.83"
    assert online["mode"] == "online" and online["accuracy (%)"] == "76.00" and online["seeds"] == "1"


def test_unfinished_unreadable_and_untabled_runs_are_listed(report, outputs):
    printed, out = report
    unfinished = printed.split("## Unfinished runs")[1]
    assert f"`{outputs / 'pseudo_label/running'}` (pseudo_label): no metrics.json yet" in unfinished
    assert f"`{outputs / 'supervised/broken'}` (supervised): unreadable metrics.json" in unfinished
    assert "1 barlow_twins run(s)" in printed
    assert "stray" not in printed and "10.00" not in printed  # nothing read from a report/ folder
    assert (out / "results.md").read_text(encoding="utf-8") == printed


def test_csv_holds_the_same_numbers(report):
    with open(report[1] / "results.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    stages = ["supervised", "supervised", "linear_probe", "pseudo_label", "pseudo_label", "pseudo_label"]
    assert [row["stage"] for row in rows] == stages
    supervised, high = rows[1], rows[4]
    assert float(supervised["accuracy"]) == pytest.approx(71.0)
    assert float(supervised["accuracy_std"]) == pytest.approx(1.4142, abs=1e-4)
    assert supervised["ratio"] == "" and supervised["data_root"] == "data/stl10"
    assert float(high["ratio"]) == 10 and float(high["kept"]) == 9050 and float(high["threshold"]) == 0.95
    assert float(high["delta_vs_supervised"]) == pytest.approx(5.0) and int(high["seeds"]) == 2
    assert rows[0]["accuracy_std"] == "" and rows[2]["macro_f1"] == ""


def test_plot_and_tensorboard(report):
    png = report[1] / "accuracy_vs_ratio.png"
    assert png.read_bytes().startswith(b"\x89PNG")
    events = EventAccumulator(str(report[1] / "tensorboard"), size_guidance={"images": 0}).Reload()
    assert "report/accuracy_vs_ratio" in events.Tags()["images"]
    assert "report/results/text_summary" in events.Tags()["tensors"]  # SummaryWriter.add_text's suffix


def test_default_out_and_no_plot_without_pseudo_label(outputs, tmp_path, capsys):
    make_run(tmp_path / "only_supervised/multirun_y/0", "supervised", {"seed": 0, "test/acc": 0.7})
    printed = run_report(str(tmp_path / "only_supervised"))
    report_dir = tmp_path / "only_supervised/report"
    assert "| supervised |" in printed and (report_dir / "results.csv").is_file()
    assert not (report_dir / "accuracy_vs_ratio.png").exists()
    assert "not drawn" in capsys.readouterr().err


@pytest.mark.parametrize("case", ["missing", "empty"])
def test_bad_paths_exit_2_with_one_line(case, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "nowhere") if case == "missing" else str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
