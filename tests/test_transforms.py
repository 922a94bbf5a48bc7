import torch

from stl10_lightning.data.transforms import (
    STL10_MEAN,
    STL10_STD,
    classification_train_transform,
    eval_transform,
    to_float,
)


def batch_of_one_image(n: int = 16) -> torch.Tensor:
    image = torch.randint(0, 256, (1, 3, 96, 96), dtype=torch.uint8)
    return image.expand(n, -1, -1, -1).contiguous()


def test_eval_transform_resizes_and_normalizes():
    images = torch.full((4, 3, 96, 96), 255, dtype=torch.uint8)
    out = eval_transform(32)(images)
    assert out.shape == (4, 3, 32, 32) and out.dtype == torch.float32
    expected = (1 - torch.tensor(STL10_MEAN)) / torch.tensor(STL10_STD)
    assert torch.allclose(out[0, :, 0, 0], expected, atol=1e-5)


def test_train_augmentation_is_random_per_sample():
    out = classification_train_transform(32, crop_padding=0.125, flip=True, cutout=0.33)(batch_of_one_image())
    assert out.shape == (16, 3, 32, 32)
    distinct = {tuple(image.flatten()[:2000].tolist()) for image in out}
    assert len(distinct) > 8  # one image, copied: each copy got its own crop, flip and cutout


def test_cutout_erases_a_square_of_the_requested_side():
    out = classification_train_transform(96, crop_padding=0.0, flip=False, cutout=1 / 3)(
        batch_of_one_image(4)
    )
    clean = eval_transform(96)(batch_of_one_image(4))
    erased = (out == 0).all(dim=1) & (clean != 0).any(dim=1)
    assert erased.sum(dim=(1, 2)).tolist() == [32 * 32] * 4


def test_without_augmentation_train_equals_eval():
    images = batch_of_one_image(2)
    plain = classification_train_transform(32, crop_padding=0.0, flip=False, cutout=0.0)(images)
    assert torch.allclose(plain, eval_transform(32)(images))


def test_any_stored_side_is_resized_and_the_given_statistics_normalize():
    images = torch.full((2, 3, 40, 40), 255, dtype=torch.uint8)
    out = eval_transform(32, mean=(0.5, 0.5, 0.5), std=(0.25, 0.5, 1.0))(images)
    assert out.shape == (2, 3, 32, 32)
    assert torch.allclose(out[0, :, 0, 0], torch.tensor([2.0, 1.0, 0.5]), atol=1e-5)


def test_at_the_stored_side_nothing_is_resampled():
    convert, resize = to_float(24)
    images = convert(torch.randint(0, 256, (2, 3, 24, 24), dtype=torch.uint8))
    assert resize(images) is images
    assert resize(images[..., :20]).shape == (2, 3, 24, 24)
