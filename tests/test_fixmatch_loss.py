import math

import pytest
import torch

from stl10_lightning.losses import consistency_loss


def reference_loss(weak: torch.Tensor, strong: torch.Tensor, threshold: float) -> float:
    """Sohn et al. eq. 4 sample by sample in float64: -log softmax(strong)[argmax weak] where kept."""
    total = 0.0
    for w, s in zip(weak.double().tolist(), strong.double().tolist(), strict=True):
        exp_w = [math.exp(v) for v in w]
        probabilities = [v / sum(exp_w) for v in exp_w]
        if max(probabilities) >= threshold:
            label = probabilities.index(max(probabilities))
            total -= s[label] - math.log(sum(math.exp(v) for v in s))
    return total / len(weak)


@pytest.mark.parametrize("threshold", [0.3, 0.6, 0.95, 1.0])
def test_matches_the_equation_sample_by_sample(threshold):
    generator = torch.Generator().manual_seed(0)
    weak = torch.randn(64, 10, generator=generator) * 3
    strong = torch.randn(64, 10, generator=generator)
    out = consistency_loss(weak, strong, threshold)
    assert out.loss.item() == pytest.approx(reference_loss(weak, strong, threshold), abs=1e-6)


def test_exactly_the_confident_samples_get_a_gradient_towards_the_weak_label():
    # Sample 0: confidence exactly 0.5 (two equal logits, the rest -inf), which counts at threshold 0.5;
    # sample 1: just below; sample 2: confident on class 3.
    weak = torch.full((3, 4), -math.inf)
    weak[0, :2] = 0.0
    weak[1, :3] = torch.tensor([0.0, 0.0, -0.01])
    weak[2] = torch.tensor([0.0, 0.0, 0.0, 5.0])
    strong = torch.zeros(3, 4, requires_grad=True)
    out = consistency_loss(weak, strong, threshold=0.5)
    out.loss.backward()
    assert out.mask.tolist() == [True, False, True]
    assert out.pseudo_labels[2].item() == 3
    assert strong.grad[1].abs().sum() == 0
    # d CE / d logit = softmax - onehot, over 3 unlabeled samples: only the pseudo-label's logit falls.
    for row, label in ((0, out.pseudo_labels[0].item()), (2, 3)):
        expected = torch.full((4,), 0.25 / 3)
        expected[label] -= 1 / 3
        assert torch.allclose(strong.grad[row], expected)


def test_no_gradient_reaches_the_weak_view():
    weak = torch.randn(8, 10, requires_grad=True)
    strong = torch.randn(8, 10, requires_grad=True)
    consistency_loss(weak * 10, strong, threshold=0.0).loss.backward()
    assert weak.grad is None and strong.grad is not None


def test_nothing_confident_gives_zero_loss():
    out = consistency_loss(torch.zeros(5, 10), torch.randn(5, 10), threshold=0.95)
    assert not out.mask.any() and out.loss.item() == 0.0


def test_a_threshold_per_class_applies_to_each_image_s_pseudo_label_class():
    generator = torch.Generator().manual_seed(1)
    weak = torch.randn(64, 4, generator=generator) * 3
    strong = torch.randn(64, 4, generator=generator)
    thresholds = torch.tensor([0.3, 0.9, 0.6, 1.0])
    out = consistency_loss(weak, strong, thresholds)
    # Independently: each image is kept by the threshold of its own argmax class.
    expected = 0.0
    for w, s in zip(weak.double(), strong.double(), strict=True):
        probabilities = w.softmax(0)
        label = int(probabilities.argmax())
        if probabilities[label] >= thresholds[label]:
            expected -= float(s.log_softmax(0)[label])
    assert out.loss.item() == pytest.approx(expected / 64, abs=1e-6)
    assert not out.mask[out.pseudo_labels == 3].any()
