"""Image files as square uint8 arrays, for stl10-prepare and stl10-predict: decoded with PIL in worker
processes, made RGB, resized on the short side and centre-cropped.

Any format PIL reads works (JPEG, PNG, WebP, BMP, ...). Grayscale, palette, CMYK and 16-bit images become
RGB; transparent pixels are laid on white (what an image viewer shows), since the colour PIL stores under
them is arbitrary. A photo's EXIF orientation is applied, so images come out as they are displayed.
Images of 32-bit integer or floating-point pixels are refused as unreadable: their range is not fixed, so
any scaling to 8 bits would be a guess.
"""

import multiprocessing
import os
import signal
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from multiprocessing.pool import Pool
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from stl10_lightning.common.errors import UserError

# Images handed to each worker at a time: large enough that the handover costs little per image.
CHUNK = 32
SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I")
TIFF_BITS_PER_SAMPLE = 258


def most_workers() -> int:
    """The --workers bound: decoding is CPU-bound, so more processes than a few per core only cost memory."""
    return 4 * (os.cpu_count() or 1)


def image_files(folder: Path, dropped: list[tuple[Path, str]] | None = None) -> list[Path]:
    """Every file under `folder`, at any depth and through linked folders, in a stable order; hidden
    entries (.DS_Store) are left out. What is there but is not read goes to `dropped` as (path, why), so
    that it is reported: a folder that cannot be opened, a broken link, a pipe, and a link to a folder
    already read or above `folder` (which would read it again)."""
    files, gone, seen, top = [], [], set(), folder.resolve()

    def unreadable(err: OSError) -> None:
        gone.append((Path(err.filename), f"cannot be read ({err.strerror})"))

    try:
        for root, subfolders, names in os.walk(folder, onerror=unreadable, followlinks=True):
            info, real = os.stat(root), Path(root).resolve()
            if (info.st_dev, info.st_ino) in seen or (real != top and top.is_relative_to(real)):
                gone.append((Path(root), "a link to a folder above or already read, not followed"))
                subfolders.clear()
                continue
            seen.add((info.st_dev, info.st_ino))
            # Sorted, so that which of a folder and a link to it is read does not depend on the file system.
            subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
            for name in names:
                path = Path(root) / name
                if name.startswith("."):
                    continue
                try:
                    regular = path.is_file()
                except OSError as err:  # in a folder that can be listed but not entered
                    gone.append((path, f"cannot be read ({err.strerror})"))
                    continue
                if regular:
                    files.append(path)
                else:
                    gone.append((path, "a broken link" if path.is_symlink() else "not a regular file"))
    except RecursionError:  # os.walk recurses once per level
        raise UserError(f"{folder} nests folders too deeply to read; flatten it to a few levels") from None
    if dropped is not None:
        dropped += sorted(gone)
    return sorted(files)


def shown(path: str | Path) -> str:
    """A file name as one line of a listing: a name that holds a tab or newline is quoted, so that it
    cannot pass for more lines or columns."""
    text = str(path)
    return repr(text) if any(ord(char) < 32 or ord(char) == 127 for char in text) else text


def _refuse_unscaled_depths(image: Image.Image) -> None:
    """32-bit integer or float pixels may span any range: refuse them rather than guess a scaling."""
    bits = image.tag_v2.get(TIFF_BITS_PER_SAMPLE, (0,)) if image.format == "TIFF" else (0,)
    bits = bits if isinstance(bits, tuple) else (bits,)
    if image.mode == "F" or (image.mode == "I" and max(bits) > 16):
        kind = "floating-point" if image.mode == "F" else "integer"
        raise ValueError(f"{kind} pixels of {max(bits) or 32} bits have no fixed range; save 8 or 16 bits")


def to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in SIXTEEN_BIT:  # PIL's convert would clip 16-bit values at 255 instead of scaling them
        values = np.asarray(image, dtype=np.float64)
        if values.min(initial=0) < 0 or values.max(initial=0) > 65535:
            raise ValueError("integer pixels beyond 16 bits have no fixed range; save 8 or 16 bits")
        key = image.info.get("transparency")  # a 16-bit key is a pixel value, not a scaled one
        image = Image.fromarray(np.clip(np.rint(values / 257), 0, 255).astype(np.uint8))
        if key is not None:
            image = Image.merge(
                "LA", (image, Image.fromarray(np.where(values == key, 0, 255).astype(np.uint8)))
            )
    # A transparency key (grey or RGB PNG) marks transparent pixels as much as an alpha channel does.
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
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
        _refuse_unscaled_depths(image)
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
    # The workers leave Ctrl-C to this process, which then ends them; a worker that took it itself would
    # print its own traceback and could leave the pool waiting for its result.
    with multiprocessing.Pool(
        workers, initializer=signal.signal, initargs=(signal.SIGINT, signal.SIG_IGN)
    ) as pool:
        yield pool


def decoded(
    paths: Sequence[str | Path], size: int, pool: Pool | None = None
) -> Iterator[tuple[np.ndarray | None, str | None]]:
    """(image, None) or (None, why it could not be read) for each path, in order."""
    job = partial(_decode_or_reason, size=size)
    names = [str(path) for path in paths]
    yield from map(job, names) if pool is None else pool.imap(job, names, chunksize=CHUNK)
