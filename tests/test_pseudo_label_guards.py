"""The online mode's guards against confirmation bias, against their papers' formulas."""

import os
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from stl10_lightning.losses import (
    ClassBalancedSelection,
    DistributionAlignment,
    SelfAdaptiveThreshold,
    doubt,
    passes,
)
from tests.test_distributed import free_port


def test_distribution_alignment_follows_remixmatch_s_formula():
    alignment = DistributionAlignment(num_classes=3, momentum=0.5)
    alignment.set_target(torch.tensor([0, 0, 1, 2]))  # labeled frequencies 1/2, 1/4, 1/4
    batch = torch.tensor([[0.8, 0.1, 0.1], [0.6, 0.3, 0.1]])
    alignment.update(batch)
    model_mean = 0.5 * torch.full((3,), 1 / 3) + 0.5 * batch.mean(dim=0)
    assert torch.allclose(alignment.model_mean, model_mean)
    scaled = batch * torch.tensor([0.5, 0.25, 0.25]) / model_mean
    assert torch.allclose(alignment(batch), scaled / scaled.sum(dim=1, keepdim=True))


def test_distribution_alignment_pulls_an_over_predicted_class_back():
    alignment = DistributionAlignment(num_classes=4, momentum=0.9)
    alignment.set_target(torch.arange(4).repeat(5))  # balanced labeled images
    skewed = torch.tensor([[0.7, 0.1, 0.1, 0.1]] * 8)  # every prediction favours class 0
    for _ in range(100):
        alignment.update(skewed)
    aligned = alignment(skewed)
    assert aligned[0].tolist() == pytest.approx([0.25] * 4, abs=1e-3)


def test_self_adaptive_thresholds_follow_freematch_s_formula_capped_at_the_threshold():
    adaptive = SelfAdaptiveThreshold(num_classes=3, momentum=0.9, ceiling=0.5)
    assert torch.allclose(adaptive.thresholds(), torch.full((3,), 1 / 3))  # FreeMatch's start: 1/C
    batch = torch.tensor([[0.9, 0.05, 0.05], [0.2, 0.7, 0.1]])
    adaptive.update(batch)
    confidence = 0.9 / 3 + 0.1 * (0.9 + 0.7) / 2
    class_mean = 0.9 / 3 + 0.1 * batch.mean(dim=0)
    expected = (confidence * class_mean / class_mean.max()).clamp_max(0.5)
    assert torch.allclose(adaptive.thresholds(), expected)
    for _ in range(200):
        adaptive.update(torch.tensor([[0.98, 0.01, 0.01], [0.01, 0.98, 0.01]]))
    assert adaptive.thresholds()[:2].tolist() == pytest.approx([0.5, 0.5])  # the ceiling holds
    assert adaptive.thresholds()[2] < 0.05  # a class never predicted gets a low bar


def test_the_running_statistics_are_checkpointed():
    adaptive = SelfAdaptiveThreshold(num_classes=3, momentum=0.5, ceiling=0.95)
    adaptive.update(torch.tensor([[0.9, 0.05, 0.05]]))
    restored = SelfAdaptiveThreshold(num_classes=3, momentum=0.5, ceiling=0.95)
    restored.load_state_dict(adaptive.state_dict())
    assert torch.equal(restored.thresholds(), adaptive.thresholds())


def class_balanced_bars(
    confidence: list[float],
    labels: list[int],
    threshold: float,
    classes: int,
    target: list[float] | None = None,
) -> list:
    """CBST's selection written out with lists: the share r at or above the threshold overall, then each
    class's k-th highest confidence, k = round(r x n) but at most round(target x passes), or above 1 where
    k is 0."""
    passing = sum(value >= threshold for value in confidence)
    target = target or [1 / classes] * classes
    bars = []
    for label in range(classes):
        pairs = zip(confidence, labels, strict=True)
        mine = sorted((value for value, of in pairs if of == label), reverse=True)
        kept = min(round(passing / len(confidence) * len(mine)), round(target[label] * passing))
        bars.append(mine[kept - 1] if kept else 2.0)
    return bars


def bars(selection: ClassBalancedSelection) -> list[float]:
    """The selection's bars as confidences (1 - the most doubt that passes): 2 where nothing passes."""
    return (1 - selection.most_doubt()).tolist()


def one_hot_confidences(confidence: list[float], labels: list[int], classes: int) -> torch.Tensor:
    """Probability rows whose top value is `confidence` at `labels` (the rest spread evenly)."""
    rows = torch.tensor([[(1 - value) / (classes - 1)] * classes for value in confidence])
    rows[torch.arange(len(labels)), torch.tensor(labels)] = torch.tensor(confidence)
    return rows


def test_class_balanced_selection_passes_each_class_the_same_share():
    generator = torch.Generator().manual_seed(0)
    confidence = (0.5 + 0.5 * torch.rand(60, generator=generator)).tolist()
    labels = torch.randint(0, 4, (60,), generator=generator).tolist()
    selection = ClassBalancedSelection(num_classes=4, threshold=0.8, window=40)
    selection.update(one_hot_confidences(confidence[:25], labels[:25], 4))
    expected = class_balanced_bars(confidence[:25], labels[:25], 0.8, 4)
    assert bars(selection) == pytest.approx(expected)
    selection.update(one_hot_confidences(confidence[25:], labels[25:], 4))  # wraps: the last 40 remain
    expected = class_balanced_bars(confidence[20:], labels[20:], 0.8, 4)
    assert bars(selection) == pytest.approx(expected)


def test_class_balanced_selection_raises_an_easy_class_s_bar_and_lowers_the_others():
    # Class 0 is sure of itself (0.99 and up), classes 1 and 2 are not (0.6 to 0.9): one threshold of 0.95
    # would pass class 0 only. Balanced, the same third of each class passes: 2 of its 6 predictions.
    confidence = [0.999, 0.998, 0.997, 0.996, 0.995, 0.99] + [0.9, 0.8, 0.7, 0.65, 0.62, 0.6] * 2
    labels = [0] * 6 + [1] * 6 + [2] * 6
    selection = ClassBalancedSelection(num_classes=3, threshold=0.95, window=18)
    selection.update(one_hot_confidences(confidence, labels, 3))
    assert bars(selection) == pytest.approx([0.998, 0.8, 0.8])
    rows, labels = one_hot_confidences(confidence, labels, 3), torch.tensor(labels)
    passed = passes(doubt(rows, labels), labels, selection.most_doubt())
    assert torch.bincount(labels[passed], minlength=3).tolist() == [2, 2, 2]


def test_class_balanced_selection_caps_an_over_predicted_class_at_its_labeled_share():
    # Class 0 takes 12 of 18 predictions, all confident: r = 2/3 would pass 8 of them, but its labeled
    # share (1/3 balanced, 1/2 after set_target) of the 12 passes caps it at 4, then 6.
    confidence = [0.999 - 0.001 * rank for rank in range(12)] + [0.9, 0.8, 0.7] * 2
    labels = [0] * 12 + [1] * 3 + [2] * 3
    selection = ClassBalancedSelection(num_classes=3, threshold=0.95, window=18)
    selection.update(one_hot_confidences(confidence, labels, 3))
    assert bars(selection) == pytest.approx([0.996, 0.8, 0.8])
    assert bars(selection) == pytest.approx(class_balanced_bars(confidence, labels, 0.95, 3))
    selection.set_target(torch.tensor([0, 0, 1, 2]))
    expected = class_balanced_bars(confidence, labels, 0.95, 3, target=[0.5, 0.25, 0.25])
    assert bars(selection) == pytest.approx(expected) == [0.994, 0.8, 0.8]


def test_class_balanced_selection_keeps_its_cap_when_top_probabilities_round_to_one():
    # Class 0's 12 predictions have logit margins of 20 to 31: each top probability is exactly 1.0 in
    # float32, so a bar on it would be 1.0 and pass all 12. Ranked by doubt, the cap of 4 holds.
    logits = torch.zeros(18, 3)
    logits[:12, 0] = torch.arange(20.0, 32.0)
    logits[12:, 1:] = torch.tensor([[3.0, 0.0], [2.0, 0.0], [1.0, 0.0], [0.0, 3.0], [0.0, 2.0], [0.0, 1.0]])
    probabilities = logits.softmax(dim=1)
    assert (probabilities[:12, 0] == 1.0).all()
    selection = ClassBalancedSelection(num_classes=3, threshold=0.95, window=18)
    selection.update(probabilities)
    labels = probabilities.max(dim=1).indices
    passed = passes(doubt(probabilities, labels), labels, selection.most_doubt())
    assert passed[:12].tolist() == [False] * 8 + [True] * 4  # the four surest: the largest margins


def test_class_balanced_selection_passes_nothing_before_anything_reaches_the_threshold():
    selection = ClassBalancedSelection(num_classes=3, threshold=0.95, window=8)
    assert (selection.most_doubt() < 0).all()  # an empty window
    selection.update(one_hot_confidences([0.5, 0.9, 0.7], [0, 1, 2], 3))
    assert (selection.most_doubt() < 0).all()
    restored = ClassBalancedSelection(num_classes=3, threshold=0.95, window=8)
    restored.load_state_dict(selection.state_dict())
    assert torch.equal(restored.doubt, selection.doubt) and restored.next_slot == 3


def balanced_worker(rank: int, port: int, out_dir: Path, batch: torch.Tensor) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        selection = ClassBalancedSelection(num_classes=3, threshold=0.8, window=32)
        selection.update(batch.chunk(2)[rank])  # each process holds half of the batch
        torch.save(1 - selection.most_doubt(), out_dir / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_class_balanced_selection_reads_every_process_s_predictions(tmp_path):
    generator = torch.Generator().manual_seed(1)
    confidence = (0.5 + 0.5 * torch.rand(20, generator=generator)).tolist()
    labels = torch.randint(0, 3, (20,), generator=generator).tolist()
    batch = one_hot_confidences(confidence, labels, 3)
    mp.spawn(balanced_worker, args=(free_port(), tmp_path, batch), nprocs=2)
    expected = class_balanced_bars(confidence, labels, 0.8, 3)
    for rank in range(2):
        assert torch.load(tmp_path / f"rank{rank}.pt", weights_only=True).tolist() == pytest.approx(expected)
