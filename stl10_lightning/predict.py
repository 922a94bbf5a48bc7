"""stl10-predict: apply a finished supervised, linear-probe or pseudo-label run to image files.

    stl10-predict RUN_OR_CKPT PATH... [--out predictions.csv] [--batch-size N] [--device auto|cpu|cuda]
    (also: python -m stl10_lightning.predict ...)

RUN_OR_CKPT is a run folder (its best checkpoint) or a .ckpt file. PATH is an image file or a folder,
read at any depth. Images are made square as stl10-prepare makes them, at the run's image size, and
normalized with the run's statistics; a run with a weight average (model.ema) predicts with the
average, as it was tested. The CSV has one row per readable image: path, predicted class, its
confidence, and the three most probable classes as `class:probability` (columns top1 to top3);
unreadable files are listed on stderr and left out.
"""

import argparse
import csv
import io
import os
import sys
from collections.abc import Iterator
from multiprocessing.pool import Pool
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from stl10_lightning.common.atomic import write_text
from stl10_lightning.common.errors import OneLineArgumentParser, UserError
from stl10_lightning.common.output_paths import check_new_output
from stl10_lightning.data.image_files import decoded, decoding_pool, image_files, most_workers, shown
from stl10_lightning.runs.folder import read_metrics
from stl10_lightning.stages.teacher import Teacher, load_teacher

TOP = 3
COLUMNS = ("path", "class", "confidence", *(f"top{rank}" for rank in range(1, TOP + 1)))
NOT_A_CLASSIFIER = "a barlow_twins run learned features, not classes; predict with the linear_probe run on it"


def checkpoint_of(source: Path) -> Path:
    """The .ckpt of a finished run folder (the best one, as metrics.json names it), or the .ckpt given."""
    if source.is_file():
        if source.suffix != ".ckpt":
            raise UserError(f"{source} is not a .ckpt file; give a run folder or a checkpoint")
        return source
    if not source.is_dir():
        raise UserError(f"{source} does not exist; give a run folder or a .ckpt file")
    metrics, _, problem = read_metrics(source)
    if metrics is None:
        raise UserError(f"{source} holds no finished run ({problem or 'no metrics.json'}); give one that has")
    if metrics.get("stage") == "barlow_twins":
        raise UserError(f"{source}: {NOT_A_CLASSIFIER}")
    path = source / (metrics.get("best_checkpoint") or "checkpoints/last.ckpt")
    if not path.is_file():
        raise UserError(f"{source} has no checkpoint to predict with ({path} is missing)")
    return path


def input_files(paths: list[Path], dropped: list[tuple[Path, str]]) -> list[Path]:
    """The files named and every file under the folders named, in the order given; what a folder holds
    that is not a file (a broken link, a pipe) goes to `dropped` as (path, why)."""
    files = []
    for path in paths:
        if path.is_dir():
            files += image_files(path, dropped)
        elif path.is_file():
            files.append(path)
        else:
            raise UserError(f"{path} does not exist or is not a file; give image files or folders")
    return files


def check_out(out: Path) -> None:
    """Refuse an --out that would overwrite something other than an earlier predictions CSV."""
    check_new_output(out, "--out")
    if not out.parent.is_dir():
        raise UserError(f"--out {out}: the folder {out.parent} does not exist")
    if out.is_dir():
        raise UserError(f"--out {out} is a folder; give a file name, such as {out / 'predictions.csv'}")
    if out.exists() and out.suffix.lower() != ".csv":
        raise UserError(f"--out {out} exists and is not a .csv file; give a new name or an earlier CSV")


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: this machine has no CUDA device; use --device cpu or auto")
    return torch.device(name)


@torch.inference_mode()
def class_probabilities(model: nn.Module, images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Softmax probabilities, on the CPU, of a uint8 batch (B, 3, S, S): the model resizes and normalizes."""
    return model(images.to(device, non_blocking=True)).float().softmax(dim=1).cpu()


def _batches(files: list[Path], size: int, batch_size: int, pool: Pool | None, skipped: list) -> Iterator:
    """(paths, uint8 batch) of the readable files; the others go to `skipped` as (path, why)."""
    paths, images = [], []
    for path, (image, reason) in zip(files, decoded(files, size, pool), strict=True):
        if image is None:
            skipped.append((path, reason))
            continue
        paths.append(path)
        images.append(image)
        if len(images) == batch_size:
            yield paths, torch.from_numpy(np.stack(images))
            paths, images = [], []
    if images:
        yield paths, torch.from_numpy(np.stack(images))


def rows(paths: list[Path], probabilities: torch.Tensor, names: list[str]) -> Iterator[list[str]]:
    """One CSV row per image; with fewer than TOP classes the last top columns stay empty."""
    top, classes = probabilities.topk(min(TOP, probabilities.shape[1]), dim=1)
    for path, values, indices in zip(paths, top.tolist(), classes.tolist(), strict=True):
        ranked = [f"{names[i]}:{value:.4f}" for i, value in zip(indices, values, strict=True)]
        yield [str(path), names[indices[0]], f"{values[0]:.4f}", *ranked, *[""] * (TOP - len(ranked))]


def class_names(teacher: Teacher) -> list[str]:
    """The names saved with the weights; a run from before they were saved gets the class numbers."""
    classes = teacher.settings.get("num_classes", 10)
    names = teacher.class_names
    return list(names) if names and len(names) == classes else [str(number) for number in range(classes)]


def predict(
    source: Path, paths: list[Path], out: Path, batch_size: int = 256, device: str = "auto", workers: int = 0
) -> tuple[int, list[tuple[Path, str]]]:
    """Write `out` (CSV, atomically); return (rows written, [(unreadable file, why)]). Inputs without one
    readable image are refused: a CSV of headers only would pass for a finished job."""
    skipped: list[tuple[Path, str]] = []
    check_out(out)
    files = input_files(paths, skipped)
    if out.exists() and out.resolve() in {path.resolve() for path in files}:  # an earlier run's CSV
        files = [path for path in files if path.resolve() != out.resolve()]
        skipped.append((out, "the --out file, replaced by these predictions"))
    if not files:
        why = f" ({shown(skipped[0][0])}: {skipped[0][1]})" if skipped else ""
        raise UserError(f"no files under {' '.join(map(str, paths))}{why}; give image files or folders")
    on = pick_device(device)
    teacher = load_teacher(checkpoint_of(source), wanted=f"a classifier run: {NOT_A_CLASSIFIER}")
    names, size = class_names(teacher), teacher.settings.get("image_size", 96)
    model = teacher.model.to(on).eval()
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(COLUMNS)
    written = 0
    # The bar counts decoded images; on a few files it would only flicker.
    progress = tqdm(total=len(files), unit=" images", disable=len(files) < batch_size)
    with decoding_pool(workers) as pool, progress:
        for batch_paths, images in _batches(files, size, batch_size, pool, skipped):
            writer.writerows(rows(batch_paths, class_probabilities(model, images, on), names))
            written += len(batch_paths)
            progress.update(len(batch_paths))
    if not written:
        path, why = skipped[-1]
        raise UserError(
            f"none of the {len(files)} files is a readable image ({shown(path)}: {why}); nothing written"
        )
    write_text(out, text.getvalue(), errors="surrogateescape")  # paths as the file system spells them
    return written, skipped


def main(argv: list[str] | None = None) -> None:
    parser = OneLineArgumentParser(
        prog="stl10-predict", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("source", type=Path, metavar="RUN_OR_CKPT")
    parser.add_argument("paths", type=Path, nargs="+", metavar="PATH", help="image files or folders")
    parser.add_argument("--out", type=Path, default=Path("predictions.csv"))
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="decoding processes (0: none)")
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error(f"--batch-size {args.batch_size}: give at least 1")
    if not 0 <= args.workers <= most_workers():
        parser.error(f"--workers {args.workers}: give 0 (decode in this process) to {most_workers()}")
    try:
        written, skipped = predict(
            args.source, args.paths, args.out, args.batch_size, args.device, args.workers
        )
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(f"interrupted: {args.out} was not written", file=sys.stderr)
        sys.exit(130)
    for path, why in skipped:
        print(f"skipped {shown(path)}: {why}", file=sys.stderr)
    print(
        f"wrote {written} predictions to {args.out}; {len(skipped)} unreadable files skipped", file=sys.stderr
    )


if __name__ == "__main__":
    main()
