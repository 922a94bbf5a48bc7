"""benchmarks/quality.py judges a collapse as the online stage's warning does: over epochs with enough
confident pseudo-labels to judge, after the first."""

from benchmarks.quality import online_notes


def summary(shares, masked):
    return {
        "mask_rate_by_epoch": [0.5] * len(shares),
        "precision_by_epoch": [0.9] * len(shares),
        "top_class_share_by_epoch": shares,
        "masked_by_epoch": masked,
        "masked_per_class_last_epoch": [10] * 10,
    }


def test_a_share_over_a_handful_of_labels_is_not_judged(tmp_path):
    (tmp_path / "train.log").write_text("epoch 1/3: ...\n")
    # Epoch 1 is never judged; epoch 2 has 4 labels, all of one class; epoch 3 has 250, spread.
    notes, warned, top = online_notes(tmp_path, summary([0.9, 1.0, 0.2], [500, 4, 250]))
    assert (warned, top) == (False, 0.2)
    assert "at most 0.20 (epochs with 100 confident labels or more)" in notes


def test_a_judged_pile_up_counts_and_the_warning_is_read_from_the_log(tmp_path):
    (tmp_path / "train.log").write_text("epoch 2: 89% of the confident pseudo-labels are class 'ship'\n")
    notes, warned, top = online_notes(tmp_path, summary([0.2, 0.89, 0.3], [300, 3000, 400]))
    assert (warned, top) == (True, 0.89) and notes.endswith("**collapse warning**")


def test_no_judged_epoch_is_said_in_words(tmp_path):
    (tmp_path / "train.log").write_text("")
    notes, _, top = online_notes(tmp_path, summary([1.0, None], [3, 0]))
    assert top is None and "no epoch after the first with 100 confident labels" in notes
