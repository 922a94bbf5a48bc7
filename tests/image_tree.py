"""A small tree of image files as users have them, drawn with PIL: several formats, modes and shapes, one
corrupt file, nested unlabeled folders. Shared by the preparation, training and prediction tests."""

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

# A class name with spaces: names are folder names, and class_names.txt is read line by line.
CLASSES = ("circle", "hot air balloon", "square")
COLOURS = {"circle": (200, 40, 40), "hot air balloon": (40, 160, 40), "square": (40, 40, 200)}


def draw(name: str, size: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    """The class's shape in its colour on a noisy grey background, so that a tiny model can learn it."""
    width, height = size
    background = rng.integers(90, 160, size=(height, width, 3), dtype=np.uint8)
    image = Image.fromarray(background)
    pen = ImageDraw.Draw(image)
    side = min(width, height)
    x, y = width // 2 + rng.integers(-side // 8, side // 8 + 1), height // 2
    r = side // 3
    box = (x - r, y - r, x + r, y + r)
    if name == "square":
        pen.rectangle(box, fill=COLOURS[name])
    elif name == "circle":
        pen.ellipse(box, fill=COLOURS[name])
    else:
        pen.polygon([(x, y - r), (x + r, y + r // 2), (x - r, y + r // 2)], fill=COLOURS[name])
    return image


def save_as(image: Image.Image, path: Path, kind: str) -> None:
    """Save in one of the formats and modes photos arrive in."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "gray":
        image.convert("L").save(path.with_suffix(".png"))
    elif kind == "rgba":
        rgba = image.convert("RGBA")
        rgba.putalpha(255)
        rgba.save(path.with_suffix(".png"))
    elif kind == "cmyk":
        image.convert("CMYK").save(path.with_suffix(".jpg"))
    elif kind == "webp":
        image.save(path.with_suffix(".webp"))
    elif kind == "bmp":
        image.save(path.with_suffix(".bmp"))
    elif kind == "palette":
        image.convert("P").save(path.with_suffix(".gif"))
    else:
        image.save(path.with_suffix(".jpg"), quality=90)


KINDS = ("jpeg", "gray", "rgba", "jpeg", "cmyk", "webp", "bmp", "palette")


def write_image_tree(
    src: Path, train_per_class: int = 12, test_per_class: int = 4, unlabeled: int = 24
) -> Path:
    """SRC/train/<class>/, SRC/test/<class>/ and SRC/unlabeled/ (nested), plus one corrupt train file."""
    rng = np.random.default_rng(0)
    for split, count in (("train", train_per_class), ("test", test_per_class)):
        for name in CLASSES:
            for number in range(count):
                size = (64, 40) if number == 0 else (48, 48)  # one wide image per class and split
                kind = KINDS[number % len(KINDS)]
                save_as(draw(name, size, rng), src / split / name / f"{number:03d}", kind)
    for number in range(unlabeled):
        name = CLASSES[number % len(CLASSES)]
        save_as(
            draw(name, (48, 48), rng),
            src / "unlabeled" / f"batch{number % 2}" / "deep" / f"{number:03d}",
            "jpeg",
        )
    (src / "train" / "circle" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    return src
