"""The results table from run folders with known numbers: rows per recipe, duplicates, Δ against the
matching supervised runs, legend, files and errors. The folders hold the real composed config."""

import contextlib
import csv
import io
import itertools
import json
import os
import re
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from stl10_lightning.report import main
from stl10_lightning.report.collect import collect
from stl10_lightning.report.figures import accuracy_vs_ratio
from stl10_lightning.report.rows import build_rows, drop_duplicates
from tests.helpers import assert_one_line_error, compose_train

# metrics.json mtimes one second apart, in the order the runs are written: the later is the newer.
CLOCK = itertools.count(1_700_000_000)


def make_run(folder: Path, metrics: dict | str | None, *overrides: str) -> None:
    """A run folder as train.py leaves it: the resolved real config always, metrics.json once finished."""
    folder.mkdir(parents=True)
    cfg = compose_train(f"run_dir={folder}", *overrides)
    OmegaConf.save(cfg, folder / "config.yaml", resolve=True)
    if metrics is None:
        return
    if not isinstance(metrics, str):
        metrics = json.dumps({"stage": cfg.stage.name, "seed": cfg.seed, "labeled": 4500, **metrics})
    (folder / "metrics.json").write_text(metrics)
    finished = next(CLOCK)
    os.utime(folder / "metrics.json", (finished, finished))


def accuracy(acc: float, **more) -> dict:
    return {"test/acc": acc, "test/f1": acc - 0.02, "val/acc": acc, **more}


def pseudo(ratio: float, acc: float, kept: int, mode: str = "offline") -> dict:
    summary = {"ratio": ratio, "unlabeled_used": int(1000 * ratio), "kept": kept, "mode": mode}
    return accuracy(acc, threshold=0.99 if mode == "offline" else 0.95, **summary)


def pseudo_label(ratio: float, *overrides: str) -> tuple[str, ...]:
    return ("stage=pseudo_label", f"ratio={ratio}", "pseudo.teacher=/runs/supervised", *overrides)


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("outputs")
    steps = {"steps": 7000, "epochs": 200}
    make_run(root / "supervised/a", accuracy(0.70, **steps))
    make_run(root / "supervised/b", accuracy(0.72, **steps), "seed=1")
    make_run(root / "supervised/tiny", accuracy(0.50, **steps), "backbone=tiny")
    make_run(root / "supervised/broken", "{not json")
    probe = ("stage=linear_probe", "probe.backbone=/runs/barlow_twins/backbone.pt")
    make_run(root / "linear_probe/a", {"test/acc": 0.65}, *probe)  # an older run: no f1, steps, epochs
    make_run(root / "barlow_twins/a", {"knn/acc": 0.55, "probe/acc": 0.6}, "stage=barlow_twins")
    make_run(root / "pseudo_label/multirun_x/0", pseudo(0.4, 0.73, 350), *pseudo_label(0.4))
    make_run(root / "pseudo_label/multirun_x/1", pseudo(0.4, 0.75, 360), *pseudo_label(0.4, "seed=1"))
    make_run(root / "pseudo_label/c", pseudo(10, 0.74, 9000), *pseudo_label(10))
    make_run(root / "pseudo_label/d", pseudo(10, 0.78, 9100), *pseudo_label(10, "seed=1"))
    # The online mode with the supervised recipe, so that the supervised runs are its baseline.
    supervised_recipe = ("optimizer=sgd", "model.warmup_epochs=5", "model.ema=null")
    online = ("stage=pseudo_label", "pseudo=online", "ratio=0.4", *supervised_recipe)
    make_run(root / "pseudo_label/online", pseudo(0.4, 0.76, 380, mode="online"), *online)
    make_run(root / "pseudo_label/running", None, *pseudo_label(0.4))
    make_run(root / "report/stray", accuracy(0.1))  # this tool's folder: skipped
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


def legend_lines(markdown: str) -> list[str]:
    """The legend's lines, one per recipe: "- A (supervised): <headline>[; differs in <keys>]"."""
    if "Recipes (" not in markdown:
        return []
    return markdown.split("Recipes (")[1].split("\n\n")[0].splitlines()[1:]


def legend(markdown: str) -> list[str]:
    """Per stage and mode whose recipes differ: "- <stage>: A: <keys>; B: <keys>"."""
    grouped: dict[str, list[str]] = {}
    for line in legend_lines(markdown):
        recipe, name, _, differs = re.fullmatch(
            r"- (\w+) \((.+?)\): (.*?)(?:; differs in (.*))?", line
        ).groups()
        if differs:
            grouped.setdefault(name, []).append(f"{recipe}: {differs}")
    return [f"- {name}: {'; '.join(entries)}" for name, entries in grouped.items()]


def report_of(folder: Path, tmp_path: Path) -> tuple[list[dict[str, str]], str]:
    printed = run_report(str(folder), "--out", str(tmp_path / "report"))
    return table_rows(printed), printed


def test_table_averages_seeds_and_compares_with_supervised(report):
    rows = table_rows(report[0])
    assert [(r["method"], r["recipe"], r["backbone"], r["ratio"]) for r in rows] == [
        ("supervised", "A", "TinyNet", ""),  # another backbone: its own row, never a baseline here
        ("supervised", "B", "resnet18", ""),
        ("linear probe", "C", "resnet18", ""),
        ("pseudo-label", "D", "resnet18", "1:0.4"),  # one recipe at two ratios
        ("pseudo-label", "D", "resnet18", "1:10"),
        ("pseudo-label", "E", "resnet18", "1:0.4"),  # modes apart: offline, then online
    ]
    tiny, supervised, probe, low, high, online = rows
    assert tiny["accuracy (%)"] == "50.00" and tiny["seeds"] == "1" and tiny["Δ vs supervised"] == ""
    assert supervised["accuracy (%)"] == "71.00 ± 1.41" and supervised["macro-F1 (%)"] == "69.00 ± 1.41"
    assert supervised["seeds"] == "2" and supervised["labeled"] == "4500" and supervised["mode"] == ""
    assert supervised["steps"] == "7000" and supervised["epochs"] == "200"
    assert probe["accuracy (%)"] == "65.00" and probe["macro-F1 (%)"] == "—"
    assert probe["Δ vs supervised"] == "-5.00 (1 pair)"  # seed 0 against seed 0
    assert probe["steps"] == "—" and probe["epochs"] == "—"
    assert low["mode"] == "offline" and low["accuracy (%)"] == "74.00 ± 1.41"
    assert low["Δ vs supervised"] == "+3.00 ± 0.00 (2 pairs)"
    assert low["kept"] == "355" and low["unlabeled used"] == "400" and low["seeds"] == "2"
    assert high["accuracy (%)"] == "76.00 ± 2.83" and high["Δ vs supervised"] == "+5.00 ± 1.41 (2 pairs)"
    assert high["kept"] == "9050" and high["macro-F1 (%)"] == "74.00 ± 2.83"
    assert online["mode"] == "online" and online["accuracy (%)"] == "76.00" and online["seeds"] == "1"
    assert online["Δ vs supervised"] == "+6.00 (1 pair)"


def test_legend_gives_the_online_modes_mu(report):
    (line,) = [line for line in legend_lines(report[0]) if "(pseudo-label online)" in line]
    assert "mu 7" in line and all("mu " not in other for other in legend_lines(report[0]) if other != line)


def test_legend_names_what_tells_the_supervised_recipes_apart(report):
    (line,) = legend(report[0])  # the other stages and modes have one recipe each
    assert line.startswith("- supervised: A: backbone._target_=stl10_lightning.models.TinyNet")
    assert "B: backbone._target_=stl10_lightning.models.resnet18" in line
    assert "backbone.stem=conv3_pool" in line and "model." not in line  # the stage's copies: once


def test_unfinished_unreadable_and_untabled_runs_are_listed(report, outputs):
    printed, out = report
    unfinished = printed.split("## Unfinished runs")[1]
    assert f"`{outputs / 'pseudo_label/running'}` (pseudo_label): no metrics.json yet" in unfinished
    assert f"`{outputs / 'supervised/broken'}` (supervised): unreadable metrics.json" in unfinished
    assert "1 barlow_twins run(s)" in printed and "Duplicates" not in printed
    assert "stray" not in printed and "10.00" not in printed  # nothing read from a report/ folder
    assert (out / "results.md").read_text(encoding="utf-8") == printed


def test_csv_holds_the_same_numbers(report):
    with open(report[1] / "results.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    stages = ["supervised", "supervised", "linear_probe", "pseudo_label", "pseudo_label", "pseudo_label"]
    assert [row["stage"] for row in rows] == stages
    tiny, supervised, probe, high = rows[0], rows[1], rows[2], rows[4]
    assert float(supervised["accuracy"]) == pytest.approx(71.0)
    assert float(supervised["accuracy_std"]) == pytest.approx(1.4142, abs=1e-4)
    assert supervised["ratio"] == "" and supervised["data_root"] == "data/stl10"
    assert supervised["recipe"] == "B" and supervised["recipe_differs"].endswith("; backbone.stem=conv3_pool")
    assert tiny["recipe_differs"].startswith("backbone._target_=stl10_lightning.models.TinyNet; ")
    assert float(supervised["steps"]) == 7000 and probe["steps"] == "" and probe["recipe_differs"] == ""
    assert float(high["ratio"]) == 10 and float(high["kept"]) == 9050 and float(high["threshold"]) == 0.99
    assert float(high["delta_vs_supervised"]) == pytest.approx(5.0) and int(high["seeds"]) == 2
    assert float(high["delta_vs_supervised_std"]) == pytest.approx(1.4142, abs=1e-4)
    assert high["delta_pairs"] == "2" and supervised["delta_vs_supervised"] == ""
    assert tiny["accuracy_std"] == "" and probe["macro_f1"] == ""


def test_plot_and_tensorboard(report):
    png = report[1] / "accuracy_vs_ratio.png"
    assert png.read_bytes().startswith(b"\x89PNG")
    events = EventAccumulator(str(report[1] / "tensorboard"), size_guidance={"images": 0}).Reload()
    assert "report/accuracy_vs_ratio" in events.Tags()["images"]
    assert "report/results/text_summary" in events.Tags()["tensors"]  # SummaryWriter.add_text's suffix


def test_default_out_and_no_plot_without_pseudo_label(tmp_path, capsys):
    make_run(tmp_path / "only_supervised/multirun_y/0", accuracy(0.7))
    printed = run_report(str(tmp_path / "only_supervised"))
    report_dir = tmp_path / "only_supervised/report"
    assert "| supervised |" in printed and (report_dir / "results.csv").is_file()
    assert not (report_dir / "accuracy_vs_ratio.png").exists()
    assert "not drawn" in capsys.readouterr().err


def test_a_run_folder_is_left_as_it_is_and_its_report_goes_beside_it(tmp_path, capsys):
    run = tmp_path / "day" / "run"
    make_run(run, accuracy(0.7))
    before = sorted(path.name for path in run.iterdir())
    assert "| supervised |" in run_report(str(run))
    assert sorted(path.name for path in run.iterdir()) == before
    assert (tmp_path / "day" / "report" / "results.csv").is_file()
    (tmp_path / "link").symlink_to(run)
    for out in (run / "checkpoints" / "report", tmp_path / "link" / "report"):
        with pytest.raises(SystemExit) as exit_info:
            main([str(run), "--out", str(out)])
        assert exit_info.value.code == 2
        assert_one_line_error(
            capsys.readouterr().err, r"--out .* is inside the run folder .*run, and a later"
        )
    assert sorted(path.name for path in run.iterdir()) == before


@pytest.mark.parametrize(
    "field, value", [("ratio", "0.5"), ("stage", ["supervised"]), ("labeled", "4500"), ("test/acc", True)]
)
def test_a_mistyped_metrics_field_lists_the_run_as_unreadable(tmp_path, field, value):
    make_run(tmp_path / "runs/good", accuracy(0.7))
    make_run(tmp_path / "runs/odd", None)
    (tmp_path / "runs/odd/metrics.json").write_text(json.dumps({**accuracy(0.6), field: value}))
    printed = run_report(str(tmp_path / "runs"), "--out", str(tmp_path / "report"))
    unfinished = printed.split("## Unfinished runs")[1]
    assert f"unreadable metrics.json ({field} is {json.dumps(value)}, not " in unfinished
    assert table_rows(printed)[0]["accuracy (%)"] == "70.00"
    assert (tmp_path / "report/results.md").is_file() and (tmp_path / "report/results.csv").is_file()


@pytest.mark.parametrize("case", ["missing", "empty", "hydra record"])
def test_bad_paths_exit_2_with_one_line(case, tmp_path, capsys):
    make_run(tmp_path / "run", accuracy(0.7))
    (tmp_path / "run" / ".hydra").mkdir()
    (tmp_path / "run" / ".hydra" / "config.yaml").write_text("stage:\n  name: supervised\n")
    paths = {"missing": tmp_path / "nowhere", "empty": tmp_path / "run" / "tensorboard_none"}
    paths["empty"].mkdir()
    with pytest.raises(SystemExit) as exit_info:
        main([str(paths.get(case, tmp_path / "run" / ".hydra"))])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


def test_runs_differing_in_max_epochs_are_two_rows_named_in_the_legend(tmp_path):
    make_run(tmp_path / "short", accuracy(0.50), "trainer.max_epochs=10")
    make_run(tmp_path / "long", accuracy(0.70), "trainer.max_epochs=200")
    rows, printed = report_of(tmp_path, tmp_path)
    assert [(r["recipe"], r["accuracy (%)"], r["seeds"]) for r in rows] == [
        ("A", "50.00", "1"),
        ("B", "70.00", "1"),
    ]
    assert legend(printed) == ["- supervised: A: trainer.max_epochs=10; B: trainer.max_epochs=200"]
    assert legend_lines(printed)[0] == (
        "- A (supervised): SGD lr 0.1 per 128 images, 10 epochs, batch 128, 96 px; "
        "differs in trainer.max_epochs=10"
    )


def test_backbone_options_are_different_rows(tmp_path):
    make_run(tmp_path / "conv3_pool", accuracy(0.70))
    make_run(tmp_path / "imagenet", accuracy(0.60), "backbone.stem=imagenet")
    rows, printed = report_of(tmp_path, tmp_path)
    assert [(r["backbone"], r["accuracy (%)"], r["seeds"]) for r in rows] == [
        ("resnet18", "70.00", "1"),
        ("resnet18", "60.00", "1"),
    ]
    assert legend(printed) == ["- supervised: A: backbone.stem=conv3_pool; B: backbone.stem=imagenet"]
    assert "Duplicates" not in printed  # same seed, other recipe: no repeat


def test_paths_logging_and_loading_settings_are_no_recipe_and_pointers_count_as_set(tmp_path):
    machine = ("data.num_workers=0", "data.eval_batch_size=64", "callbacks.progress_bar=null", "logger=none")
    make_run(tmp_path / "supervised_0", accuracy(0.70), *machine, "trainer.log_every_n_steps=1")
    make_run(tmp_path / "supervised_1", accuracy(0.72), "seed=1")
    make_run(tmp_path / "student_0", pseudo(1, 0.74, 100), *pseudo_label(1, "pseudo.teacher=/runs/a"))
    make_run(
        tmp_path / "student_1", pseudo(1, 0.76, 100), *pseudo_label(1, "pseudo.teacher=/runs/b", "seed=1")
    )
    online = ("stage=pseudo_label", "pseudo=online", "ratio=1")
    make_run(tmp_path / "scratch", pseudo(1, 0.70, 100, "online"), *online)
    make_run(
        tmp_path / "pretrained", pseudo(1, 0.80, 100, "online"), *online, "pseudo.init_backbone=/runs/bt"
    )
    rows, printed = report_of(tmp_path, tmp_path)
    assert [(r["method"], r["mode"], r["seeds"]) for r in rows] == [
        ("supervised", "", "2"),
        ("pseudo-label", "offline", "2"),  # two teachers of one recipe
        ("pseudo-label", "online", "1"),
        ("pseudo-label", "online", "1"),
    ]
    assert legend(printed) == [
        "- pseudo-label online: C: pseudo.init_backbone=unset; D: pseudo.init_backbone=set"
    ]


def test_a_rerun_of_a_seed_is_a_duplicate_counted_once(tmp_path):
    make_run(tmp_path / "first", accuracy(0.70))
    make_run(tmp_path / "seed1", accuracy(0.72), "seed=1")
    make_run(tmp_path / "rerun", accuracy(0.74))  # seed 0 again, finished last: it counts
    (row,), printed = report_of(tmp_path, tmp_path)
    assert row["seeds"] == "2" and row["accuracy (%)"] == "73.00 ± 1.41"  # 74 and 72, not 70, 72, 74
    assert f"- `{tmp_path / 'first'}` repeats `{tmp_path / 'rerun'}` (seed 0)" in printed


def test_unseeded_runs_are_never_duplicates(tmp_path):
    make_run(tmp_path / "a", accuracy(0.70), "seed=null")
    make_run(tmp_path / "b", accuracy(0.74), "seed=null")
    (row,), printed = report_of(tmp_path, tmp_path)
    assert row["seeds"] == "2" and row["accuracy (%)"] == "72.00 ± 2.83" and "Duplicates" not in printed


def test_pseudo_label_delta_is_against_the_supervised_runs_of_its_recipe(tmp_path):
    make_run(tmp_path / "supervised_short", accuracy(0.50), "trainer.max_epochs=10")
    make_run(tmp_path / "supervised_long", accuracy(0.70))
    make_run(tmp_path / "pseudo_short", pseudo(1, 0.53, 100), *pseudo_label(1, "trainer.max_epochs=10"))
    make_run(tmp_path / "pseudo_long", pseudo(1, 0.75, 100), *pseudo_label(1))
    rows, printed = report_of(tmp_path, tmp_path)
    deltas = {r["accuracy (%)"]: r["Δ vs supervised"] for r in rows if r["method"] == "pseudo-label"}
    assert deltas == {"53.00": "+3.00 (1 pair)", "75.00": "+5.00 (1 pair)"}
    assert "- pseudo-label offline: C: trainer.max_epochs=10; D: trainer.max_epochs=200" in legend(printed)


def test_delta_is_paired_by_seed_with_its_spread_else_unpaired(tmp_path):
    for seed, (supervised, student) in enumerate([(0.70, 0.72), (0.60, 0.63), (0.80, 0.81)]):
        make_run(tmp_path / f"supervised_{seed}", accuracy(supervised), f"seed={seed}")
        make_run(tmp_path / f"pseudo_{seed}", pseudo(1, student, 100), *pseudo_label(1, f"seed={seed}"))
    make_run(tmp_path / "pseudo_seed_5", pseudo(2, 0.75, 100), *pseudo_label(2, "seed=5"))
    rows, _ = report_of(tmp_path, tmp_path)
    deltas = {r["ratio"]: r["Δ vs supervised"] for r in rows if r["method"] == "pseudo-label"}
    # Differences 2, 3 and 1 points; seed 5 has no supervised twin: 75 against the mean of 70, 60, 80.
    assert deltas == {"1:1": "+2.00 ± 1.00 (3 pairs)", "1:2": "+5.00 (unpaired)"}


def test_delta_is_empty_without_a_matching_supervised_run(tmp_path):
    make_run(tmp_path / "supervised", accuracy(0.70))
    make_run(tmp_path / "other_lr", pseudo(1, 0.75, 100), *pseudo_label(1, "optimizer.lr=0.03"))
    make_run(tmp_path / "ema", pseudo(1, 0.76, 100), *pseudo_label(1, "model.ema=0.999"))
    rows, _ = report_of(tmp_path, tmp_path)
    assert [r["Δ vs supervised"] for r in rows if r["method"] == "pseudo-label"] == ["—", "—"]
    with open(tmp_path / "report/results.csv", newline="") as file:
        assert [row["delta_vs_supervised"] for row in csv.DictReader(file)] == ["", "", ""]


def test_probe_delta_matches_data_and_backbone_only(tmp_path):
    make_run(tmp_path / "supervised", accuracy(0.70))
    make_run(tmp_path / "supervised_imagenet_stem", accuracy(0.60), "backbone.stem=imagenet")
    probe = ("stage=linear_probe", "probe.backbone=/runs/barlow_twins")  # batch 256, 100 epochs, sgd_probe
    make_run(tmp_path / "probe", accuracy(0.65), *probe)
    make_run(tmp_path / "probe_64px", accuracy(0.55), *probe, "data.image_size=64")
    rows, printed = report_of(tmp_path, tmp_path)
    deltas = {r["accuracy (%)"]: r["Δ vs supervised"] for r in rows if r["method"] == "linear probe"}
    assert deltas == {"65.00": "-5.00 (1 pair)", "55.00": "—"}
    assert "so its Δ compares data and backbone only" in printed


def test_older_run_folders_appear_with_dashes(tmp_path):
    """Configs from before some keys existed, metrics.json without steps or seed, config.yaml unreadable."""
    for name, config in [("old", "stage:\n  name: supervised\ndata:\n  root: data/stl10\n"), ("bad", "[:")]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.yaml").write_text(config)
        (tmp_path / name / "metrics.json").write_text(json.dumps({"stage": "supervised", "test/acc": 0.6}))
    make_run(tmp_path / "pseudo", pseudo(1, 0.7, 100), *pseudo_label(1))
    rows, _ = report_of(tmp_path, tmp_path)
    assert [(r["method"], r["recipe"], r["steps"], r["epochs"], r["seeds"]) for r in rows] == [
        ("supervised", "A", "—", "—", "1"),
        ("pseudo-label", "B", "—", "—", "1"),
        ("supervised", "—", "—", "—", "1"),  # no config: no data root, a recipe of its own
    ]
    assert rows[1]["Δ vs supervised"] == "—"  # the old config lacks the keys a baseline must share


def test_figure_draws_one_series_per_mode_and_recipe(tmp_path):
    make_run(tmp_path / "supervised_long", accuracy(0.70))
    make_run(tmp_path / "supervised_short", accuracy(0.50), "trainer.max_epochs=10")
    for ratio in (1, 2):
        short = pseudo_label(ratio, "trainer.max_epochs=10")
        make_run(tmp_path / f"short_{ratio}", pseudo(ratio, 0.5, 100), *short)
        make_run(tmp_path / f"long_{ratio}", pseudo(ratio, 0.7, 100), *pseudo_label(ratio))
    counted, _ = drop_duplicates([run for run in collect([tmp_path]) if run.metrics is not None])
    figure = accuracy_vs_ratio(build_rows(counted))
    labels = {text.get_text() for text in figure.legends[0].get_texts()}
    assert labels == {
        "pseudo-label offline C (trainer.max_epochs=10)",
        "pseudo-label offline D (trainer.max_epochs=200)",
        "supervised A (trainer.max_epochs=200)",
        "supervised B (trainer.max_epochs=10)",
    }
    (ax,) = figure.axes
    assert len({line.get_color() for line in ax.lines if line.get_linestyle() == "--"}) == 2


# A few seconds a run; AdamW at a high rate without warm-up, so that one epoch and two of so few steps
# already end at different accuracies (10.33% and 11.00% on the session's synthetic data).
FAST = ("+trainer.limit_train_batches=2", "optimizer=adamw", "optimizer.lr=0.01", "model.warmup_epochs=0")


@pytest.mark.slow
def test_real_runs_are_grouped_by_recipe_and_compared_with_their_own(synthetic_root, tmp_path):
    """Real train() runs: two supervised recipes, a rerun of one, and a student of that recipe."""
    from stl10_lightning.train import train
    from tests.conftest import compose_tiny

    def run(name: str, *overrides: str) -> dict:
        train(compose_tiny(synthetic_root, tmp_path / name, *FAST, *overrides))
        return json.loads((tmp_path / name / "metrics.json").read_text())

    run("supervised_1", "trainer.max_epochs=1")
    first = run("supervised_2", "trainer.max_epochs=2")
    rerun = run("supervised_2_rerun", "trainer.max_epochs=2")
    teacher = ("stage=pseudo_label", f"pseudo.teacher={tmp_path / 'supervised_2'}", "ratio=0.2")
    student = run("pseudo_label", *teacher, "pseudo.threshold=0.5", "trainer.max_epochs=2")
    rows, printed = report_of(tmp_path, tmp_path)
    assert [(r["method"], r["recipe"], r["steps"], r["epochs"], r["seeds"]) for r in rows] == [
        ("supervised", "A", "2", "1", "1"),
        ("supervised", "B", "4", "2", "1"),
        ("pseudo-label", "C", "4", "2", "1"),
    ]
    assert rows[0]["accuracy (%)"] != rows[1]["accuracy (%)"]  # else Δ could not tell the baselines apart
    assert rows[1]["accuracy (%)"] == f"{100 * rerun['test/acc']:.2f}"  # the newest of seed 0 counts
    assert legend(printed) == ["- supervised: A: trainer.max_epochs=1; B: trainer.max_epochs=2"]
    assert f"- `{tmp_path / 'supervised_2'}` repeats `{tmp_path / 'supervised_2_rerun'}` (seed 0)" in printed
    delta = 100 * (student["test/acc"] - rerun["test/acc"])
    assert rows[2]["Δ vs supervised"] == f"{delta:+.2f} (1 pair)" and first["seed"] == 0
