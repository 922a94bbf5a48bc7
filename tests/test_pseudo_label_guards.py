"""The online mode's guards against confirmation bias, against their papers' formulas."""

import pytest
import torch

from stl10_lightning.losses import DistributionAlignment, SelfAdaptiveThreshold


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
