import pytest
import torch
import torch.nn.functional as F

from stl10_lightning.data.strong_augment import (
    PerSampleRandAugment,
    randaugment_pool,
    strong_transform,
    weak_transform,
)

POOL = list(randaugment_pool())


@pytest.fixture(autouse=True)
def seed():
    torch.manual_seed(0)


def smooth_images(n: int, size: int = 96) -> torch.Tensor:
    """uint8 images with structure and a partial value range, so AutoContrast and Equalize change them."""
    coarse = torch.rand(n, 3, 6, 6)
    images = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    return (40 + 170 * images).round().to(torch.uint8)


def copies_of_one_image(n: int, size: int = 32) -> torch.Tensor:
    return (smooth_images(1, size).float() / 255).expand(n, -1, -1, -1).contiguous()


def test_the_pool_is_fixmatchs():
    assert sorted(POOL) == sorted(
        ["identity", "auto_contrast", "brightness", "color", "contrast", "equalize", "posterize", "rotate"]
        + ["sharpness", "shear_x", "shear_y", "solarize", "translate_x", "translate_y"]
    )


def test_identical_images_get_different_strong_views():
    out = PerSampleRandAugment()(copies_of_one_image(16))
    distinct = {tuple(image.flatten()[:500].tolist()) for image in out}
    assert len(distinct) == 16


def test_each_sample_draws_its_own_ops():
    chosen = PerSampleRandAugment().choose(64)
    assert len({tuple(row.tolist()) for row in chosen}) > 32  # 91 pairs to draw from


@pytest.mark.parametrize("num_ops", [1, 2, 3])
def test_every_op_is_reachable_and_each_sample_gets_num_ops_distinct_ops(num_ops):
    chosen = PerSampleRandAugment(num_ops).choose(2000)
    assert chosen.shape == (2000, len(POOL))
    assert (chosen.sum(dim=1) == num_ops).all()  # a bool mask: num_ops true columns are num_ops distinct ops
    assert chosen.any(dim=0).all()
    share = chosen.float().mean(dim=0)
    assert torch.allclose(share, torch.full_like(share, num_ops / len(POOL)), atol=0.05)  # uniform


def test_too_many_ops_are_refused():
    with pytest.raises(ValueError, match="num_ops"):
        PerSampleRandAugment(len(POOL) + 1)


@pytest.mark.parametrize("fill", ["zeros", "ones", "random"])
def test_randaugment_keeps_shape_dtype_and_unit_range(fill):
    shape = (64, 3, 32, 32)
    images = {"zeros": torch.zeros(shape), "ones": torch.ones(shape), "random": torch.rand(shape)}[fill]
    out = PerSampleRandAugment(num_ops=3)(images)
    assert out.shape == shape and out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize("name", POOL)
def test_each_op_keeps_shape_dtype_and_unit_range(name):
    augment = PerSampleRandAugment(num_ops=1)
    only_this_op = torch.tensor([op == name for op in POOL]).expand(32, -1)
    augment.choose = lambda batch_size: only_this_op
    for images in (torch.zeros(32, 3, 32, 32), torch.ones(32, 3, 32, 32), torch.rand(32, 3, 32, 32)):
        out = augment(images)
        assert out.shape == images.shape and out.dtype == images.dtype
        assert out.min() >= 0 and out.max() <= 1


def test_strong_view_differs_from_weak_view():
    images = smooth_images(16)
    torch.manual_seed(0)
    weak = weak_transform(32)(images)
    torch.manual_seed(0)  # the same crops and flips, so only RandAugment can tell them apart
    strong = strong_transform(32, cutout=0.0)(images)
    assert ((strong - weak).abs().amax(dim=(1, 2, 3)) > 1e-3).all()


def test_strong_transform_is_reproducible_from_the_seed():
    transform, images = strong_transform(32), smooth_images(8)
    outs = []
    for seed in (1, 1, 2):
        torch.manual_seed(seed)
        outs.append(transform(images))
    assert torch.equal(outs[0], outs[1])
    assert not torch.equal(outs[0], outs[2])


def test_strong_transform_shape_dtype_and_cutout_square():
    out = strong_transform(32, cutout=0.5)(smooth_images(8))
    assert out.shape == (8, 3, 32, 32) and out.dtype == torch.float32
    side = round(0.5 * 32)
    for erased in (out == 0).all(dim=1):  # the dataset mean, on every channel
        rows, cols = erased.any(dim=1).nonzero(), erased.any(dim=0).nonzero()
        assert erased.sum() == side * side
        assert rows.max() - rows.min() + 1 == side and cols.max() - cols.min() + 1 == side


def test_no_cutout_leaves_nothing_erased():
    out = strong_transform(32, cutout=0.0)(smooth_images(8))
    assert not (out == 0).all(dim=1).any()
