import kornia.augmentation as K
import numpy as np
import pytest
import torch
from torch import nn

from stl10_lightning.data import synthetic
from stl10_lightning.data.ssl_transforms import BarlowTwinsViews
from stl10_lightning.data.transforms import STL10_MEAN, STL10_STD


def shapes(n: int) -> torch.Tensor:
    """Synthetic STL-10 images: flat shapes with pixel noise, so blurring visibly removes detail."""
    return torch.from_numpy(synthetic.draw(np.arange(n) % 10, np.random.default_rng(0)))


def unnormalize(view: torch.Tensor) -> torch.Tensor:
    return view * torch.tensor(STL10_STD).view(1, 3, 1, 1) + torch.tensor(STL10_MEAN).view(1, 3, 1, 1)


def horizontal_detail(images: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of neighbouring pixels, over the batch."""
    return (images[..., 1:] - images[..., :-1]).abs().mean()


def blur_step(view: nn.Sequential) -> tuple[int, K.RandomGaussianBlur]:
    return next((i, step) for i, step in enumerate(view) if isinstance(step, K.RandomGaussianBlur))


@pytest.mark.parametrize("image_size", [32, 96])
def test_views_are_normalized_float_images_of_the_requested_size(image_size):
    view1, view2 = BarlowTwinsViews(image_size)(shapes(8))
    for view in (view1, view2):
        assert view.shape == (8, 3, image_size, image_size) and view.dtype == torch.float32
        pixels = unnormalize(view)
        assert pixels.min() >= -1e-5 and pixels.max() <= 1 + 1e-5


def test_the_two_views_of_an_image_differ():
    view1, view2 = BarlowTwinsViews()(shapes(4))
    assert not torch.allclose(view1, view2)


def test_each_sample_draws_its_own_parameters():
    copies = shapes(1).expand(16, -1, -1, -1).contiguous()
    view1, _ = BarlowTwinsViews()(copies)
    assert len({tuple(image.flatten()[:2000].tolist()) for image in view1}) > 8


def test_a_seed_fixes_both_views():
    views, images = BarlowTwinsViews(), shapes(8)
    torch.manual_seed(0)
    first = views(images)
    torch.manual_seed(0)
    second = views(images)
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))


def test_view_1_is_always_blurred_and_view_2_rarely():
    torch.manual_seed(0)
    views = BarlowTwinsViews()
    images = views.to_float(shapes(64))
    kept = []
    for view in (views.view1, views.view2):
        at, blur = blur_step(view)
        before = view[:at](images)
        kept.append(horizontal_detail(blur(before)) / horizontal_detail(before))
    assert kept[0] < 0.9 < kept[1]  # the detail kept: 0.75-0.80 and 0.94-0.99 over seeds 0..5


def drawn_blurs(image_size: int) -> list[K.RandomGaussianBlur]:
    """Both views' blur steps, after drawing their parameters for 256 images."""
    views = BarlowTwinsViews(image_size)
    views(shapes(256))
    return [blur_step(view)[1] for view in (views.view1, views.view2)]


@pytest.mark.parametrize("image_size", [32, 96])
def test_blur_sigma_is_the_papers_at_224_px_scaled_to_the_view_side(image_size):
    low, high = 0.1 * image_size / 224, 2.0 * image_size / 224  # 0.043-0.857 px at 96
    for blur in drawn_blurs(image_size):
        sigma = blur._params["sigma"]  # drawn for every image, blurred or not
        assert sigma.min() >= low - 1e-6 and sigma.max() <= high + 1e-6
        assert sigma.max() > low + 0.9 * (high - low)  # the whole range is used


@pytest.mark.parametrize("image_size", [32, 96])
def test_the_blur_kernel_covers_3_sigma_of_the_largest_sigma(image_size):
    for blur in drawn_blurs(image_size):
        side = blur.flags["kernel_size"][0]
        assert side % 2 == 1 and (side - 1) / 2 >= 3 * blur._params["sigma"].max()


def test_solarization_inverts_above_a_fixed_half_and_adds_nothing():
    views = BarlowTwinsViews()
    views(shapes(16))
    drawn = views.view2[-1]._params  # kornia's defaults would draw thresholds in (0.4, 0.6) and additions
    assert (drawn["thresholds"] == 0.5).all() and (drawn["additions"] == 0).all()


def test_the_module_has_nothing_to_train():
    assert list(BarlowTwinsViews().parameters()) == []
