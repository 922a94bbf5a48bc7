"""Image files as square uint8 arrays, for stl10-prepare and stl10-predict: decoded with PIL in worker
processes, made RGB, resized on the short side and centre-cropped.

Any format PIL reads works (JPEG, PNG, WebP, BMP, ...). Grayscale, palette, CMYK and 16-bit images become
RGB; transparent pixels are laid on white (what an image viewer shows), since the colour PIL stores under
them is arbitrary. A photo's EXIF orientation is applied, so images come out as they are displayed.
"""

import multiprocessing
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from multiprocessing.pool import Pool
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

# Images handed to each worker at a time: large enough that the handover costs little per image.
CHUNK = 32
SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def image_files(folder: Path) -> list[Path]:
    """Every file under `folder`, at any depth, in a stable order; hidden files (.DS_Store) are left out."""
    return sorted(
        path
        for path in folder.rglob("*")
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    )


def to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in SIXTEEN_BIT:  # PIL's convert would clip 16-bit values at 255 instead of scaling them
        scaled = np.asarray(image, dtype=np.float64) / 257
        image = Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), mode="L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, image)
    return image.convert("RGB")


def square(image: Image.Image, size: int) -> Image.Image:
    """The short side resized to `size`, the long one centre-cropped to it: one antialiased resize."""
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) / 2, (height - side) / 2
    box = (left, top, left + side, top + side)
    # reducing_gap: a fast box reduction first when shrinking a lot, then bicubic; PIL's own quality advice.
    return image.resize((size, size), Image.Resampling.BICUBIC, box=box, reducing_gap=3.0)


def decode(path: str | Path, size: int) -> np.ndarray:
    """(3, size, size) uint8, rows top to bottom; PIL's errors (unreadable, truncated) pass through."""
    with Image.open(path) as image:
        if image.format == "JPEG":
            image.draft(image.mode, (size, size))  # decode at a reduced scale that still covers `size`
        upright = ImageOps.exif_transpose(image)
        rgb = square(to_rgb(upright), size)
    return np.asarray(rgb).transpose(2, 0, 1)


def _decode_or_reason(path: str, size: int) -> tuple[np.ndarray | None, str | None]:
    try:
        return decode(path, size), None
    except Exception as err:  # any file may be anything: one bad file must not end the conversion
        reason = str(err).splitlines()[0] if str(err) else ""
        return None, f"{type(err).__name__}: {reason}" if reason else type(err).__name__


@contextmanager
def decoding_pool(workers: int) -> Iterator[Pool | None]:
    """`workers` processes that decode in parallel, for every `decoded` call of one conversion (starting
    them per split would cost more than a small split takes); None for 0, which decodes in this process."""
    if workers == 0:
        yield None
        return
    with multiprocessing.Pool(workers) as pool:
        yield pool


def decoded(
    paths: Sequence[str | Path], size: int, pool: Pool | None = None
) -> Iterator[tuple[np.ndarray | None, str | None]]:
    """(image, None) or (None, why it could not be read) for each path, in order."""
    job = partial(_decode_or_reason, size=size)
    names = [str(path) for path in paths]
    yield from map(job, names) if pool is None else pool.imap(job, names, chunksize=CHUNK)
