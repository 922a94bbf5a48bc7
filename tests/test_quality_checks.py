"""benchmarks/quality.py: one table row per recipe, averaged over seeds, and a collapse judged as the
online stage's warning judges it, over epochs with enough confident pseudo-labels, after the first."""

import json
from types import SimpleNamespace

import pytest

from benchmarks.quality import finished, jobs, main, reads, rows
from benchmarks.quality_report import online_notes
from tests.helpers import compose_train


def online_summary(shares, masked, **extra):
    return {
        "mask_rate_by_epoch": [0.5] * len(shares),
        "precision_by_epoch": [0.9] * len(shares),
        "top_class_share_by_epoch": shares,
        "masked_by_epoch": masked,
        "masked_per_class_last_epoch": [10] * 10,
        **extra,
    }


def test_a_share_over_a_handful_of_labels_is_not_judged(tmp_path):
    (tmp_path / "train.log").write_text("epoch 1/3: ...\n")
    # Epoch 1 is never judged; epoch 2 has 4 labels, all of one class; epoch 3 has 250, spread.
    summary = online_summary([0.9, 1.0, 0.2], [500, 4, 250], precision_by_epoch=[0.1, 0.0, 0.8])
    notes, warned, top = online_notes(tmp_path, summary)
    assert (warned, top) == (False, 0.2)
    # The precision of epoch 2's 4 labels is not judged either.
    judged = "with 100 confident labels or more: top class share at most 0.20, labeled-batch precision 0.80"
    assert f"{judged} at worst" in notes


def test_a_judged_pile_up_counts_and_the_warning_is_read_from_the_log(tmp_path):
    (tmp_path / "train.log").write_text("epoch 2: 89% of the confident pseudo-labels are class 'ship'\n")
    notes, warned, top = online_notes(tmp_path, online_summary([0.2, 0.89, 0.3], [300, 3000, 400]))
    assert (warned, top) == (True, 0.89) and notes.endswith("**collapse warning**")


def test_no_judged_epoch_is_said_in_words(tmp_path):
    (tmp_path / "train.log").write_text("")
    notes, _, top = online_notes(tmp_path, online_summary([1.0, None], [3, 0]))
    assert top is None and "no epoch after the first with 100 confident labels" in notes


def fake_run(job, accuracy: float) -> None:
    """A finished run in the job's folder with the figures the report reads."""
    job.folder.mkdir(parents=True)
    (job.folder / "train.log").write_text("[2026-12-02 08:00:00,000] start\n[2026-12-02 08:06:00,000] end\n")
    steps = 9800 if job.row.name == "offline_10" else 2300
    if job.row.plain:
        summary = {"test/acc": accuracy, "test/f1": accuracy, "steps": steps}
        (job.folder / "result.json").write_text(json.dumps(summary))
        return
    (job.folder / "config.yaml").write_text("seed: 0\n")
    summary = {"test/acc": accuracy, "test/f1": accuracy - 0.01, "steps": steps}
    if job.row.name.startswith("online"):
        summary |= online_summary([0.5, 0.25], [50, 400])
    elif job.row.name.startswith("offline"):
        summary |= {"kept": 12, "unlabeled_used": 800, "kept_frac": 0.015, "val_precision": 1.0}
        summary |= {"teacher_val_acc": 0.48}
    elif job.row.name == "barlow_twins":
        summary = {"knn/acc": 0.3}  # no accuracy and no steps: dashes
    (job.folder / "metrics.json").write_text(json.dumps(summary))


ACCURACY = {
    "supervised": 0.50,
    "plain_loop": 0.495,
    "supervised_online_recipe": 0.52,
    "probe": 0.40,
    "probe_random": 0.30,
    "online_2_default": 0.57,
}


def test_rows_are_averaged_over_seeds_and_checked_on_the_means(tmp_path):
    argv = ["--data", "unused", "--out", str(tmp_path / "out"), "--seeds", "0", "1"]
    argv += ["--report", str(tmp_path / "QUALITY.md")]
    args = SimpleNamespace(out=tmp_path / "out", seeds=[0, 1], epochs=1, bt_epochs=1, ablations=False)
    for job in jobs(args):
        shift = 0.02 if job.seed == 1 and job.row.name in ("supervised", "online_2_default") else 0.0
        fake_run(job, ACCURACY.get(job.row.name, 0.45) + shift)
    assert all(finished(job) for job in jobs(args))  # so main only writes the report
    main(argv)
    report = (tmp_path / "QUALITY.md").read_text()
    assert "seeds 0, 1 (mean ± standard deviation over them" in report
    assert "(none ran in this command's last call, which rewrote the report only)" in report
    # Supervised 0.50 and 0.52: the mean, its spread over seeds, and each seed's notes for online rows.
    assert "| supervised, default recipe | 51.00% ± 1.41 |" in report
    assert (
        "| online pseudo-label 1:2, default | 58.00% ± 1.41 | 57.00% ± 1.41 | +7.0 | 2,300 | 6.0 | seed 0: "
        in report
    )
    # Each row's optimizer steps, so that a row that trains longer than supervised shows it.
    assert "| offline pseudo-label 1:10 | 45.00% ± 0.00 | 44.00% ± 0.00 | -6.0 | 9,800 | 6.0 |" in report
    assert (
        "| Barlow Twins pretraining (10 epochs, projector 2048-2048-2048) | - | - | - | - | 6.0 |" in report
    )
    assert "- [x] online 1:2 >= supervised + 6 points (+7.0)" in report
    assert "- [ ] online 1:10 >= supervised + 6 points (-6.0)" in report
    assert "top class share after epoch 1 <= 30% (25%)" in report  # epoch 2's 0.25 over 400 labels
    assert "- [x] Barlow Twins probe >= random-init probe + 8 points (+10.0)" in report
    assert "- [x] supervised within 1 point of the plain loop, or ahead (+1.5)" in report
    # The online rows against their own recipe without unlabeled images (0.52), apart from the checks.
    assert "- online 1:2: +6.0 points over the same recipe without unlabeled images" in report
    assert "- online 1:10: -7.0 points over the same recipe without unlabeled images" in report


def test_each_run_reads_the_teacher_and_backbone_of_its_own_seed(tmp_path):
    args = SimpleNamespace(out=tmp_path, seeds=[3, 4], epochs=1, bt_epochs=1, ablations=True)
    all_jobs = jobs(args)
    assert len(all_jobs) == 2 * 19
    probe = next(job for job in all_jobs if job.seed == 4 and job.row.name == "probe")
    assert reads(all_jobs, probe).folder == tmp_path / "seed4" / "barlow_twins"
    assert f"probe.backbone={tmp_path / 'seed4' / 'barlow_twins'}" in probe.row.arguments


def test_a_repeated_seed_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["--data", "unused", "--out", str(tmp_path), "--seeds", "1", "1"])
    assert stopped.value.code == 2 and "error: --seeds 1 1 repeats a seed" in capsys.readouterr().err


def test_the_online_recipe_control_trains_as_the_online_mode_does(tmp_path):
    """The control row repeats conf/pseudo/online.yaml's recipe as overrides; it must not drift from it."""
    control = next(row for row in rows(tmp_path, 1, 1, False) if row.name == "supervised_online_recipe")
    supervised = compose_train(*control.arguments)
    online = compose_train("stage=pseudo_label", "pseudo=online")
    assert supervised.optimizer == online.optimizer
    for key in ("warmup_epochs", "ema", "schedule", "label_smoothing"):
        assert supervised.model[key] == online.model[key], key
    # The online module drops the labeled view's cutout; the control turns it off.
    assert supervised.model.augment.cutout == 0
    assert {**supervised.model.augment, "cutout": None} == {**online.model.augment, "cutout": None}
