"""Startup time and peak memory of the train+unlabeled data: our memory maps against torchvision's STL10.

    python -m benchmarks.data_startup [--quick]      (from the repository root)

Each load runs in a fresh process, timed after its imports, so neither side inherits the other's
memory. Both read the same synthetic folder from a warm page cache (it was just written or read).

- ours: `STL10DataModule.setup()`, `unlabeled_set()` and the train+unlabeled training loader.
- baseline: torchvision's `STL10(split="train+unlabeled")`, which reads every image into one array,
  without its md5 check (synthetic files cannot pass it). That check hashes every file on each
  construction; it is timed on its own, over all five files as on a real download.

Peak RSS growth is the high-water mark above the resident size just before the load; Linux resets the
mark through /proc/self/clear_refs. Times and memory are medians over the repeats.
"""

import gc
import multiprocessing
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from torchvision.datasets import STL10
from torchvision.datasets.utils import check_integrity

from benchmarks.cached_data import synthetic_root
from benchmarks.timing import print_rows
from stl10_lightning.data import STL10DataModule

UNLABELED = 20_000
FEWER_UNLABELED = 5_000  # the second size, to show that our memory does not grow with the images


class UncheckedSTL10(STL10):
    """torchvision's STL10 without its md5 check, which synthetic files cannot pass."""

    def _check_integrity(self) -> bool:
        return True


def _ours(root: Path) -> int:
    data = STL10DataModule(str(root), train_on="train+unlabeled", num_workers=0)
    data.setup("fit")
    data.unlabeled_set()
    return len(data.train_dataloader().iterables["unlabeled"].dataset)


def _torchvision(root: Path) -> int:
    return len(UncheckedSTL10(str(root), split="train+unlabeled"))


def _md5_check(root: Path) -> int:
    """What STL10's integrity check costs on real files: it hashes all of them (ours fail at the first)."""
    files = STL10.train_list + STL10.test_list
    for name, md5 in files:
        check_integrity(str(root / STL10.base_folder / name), md5)
    return len(files)


LOADS = {"ours": _ours, "torchvision": _torchvision, "md5": _md5_check}


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def _measure(load: str, root: str) -> tuple[float, float, int]:
    """(seconds, peak RSS growth in MB, images served) of one load, in this (fresh) process."""
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # peak RSS := current RSS
    before = _status_kb("VmRSS")
    start = time.perf_counter()
    served = LOADS[load](Path(root))
    seconds = time.perf_counter() - start
    return seconds, (_status_kb("VmHWM") - before) / 1024, served


def measure_fresh(load: str, root: Path, repeats: int) -> tuple[float, float, int]:
    """Medians of `repeats` loads, each in a new spawned interpreter."""
    samples = []
    for _ in range(repeats):
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            samples.append(pool.submit(_measure, load, str(root)).result())
    seconds, megabytes, served = zip(*samples, strict=True)
    return statistics.median(seconds), statistics.median(megabytes), served[0]


def _per_thousand(megabytes: float) -> float:
    """KB per 1,000 images of the difference between the two folder sizes."""
    return megabytes * 1024 * 1000 / (UNLABELED - FEWER_UNLABELED)


def run(quick: bool = False) -> list[dict]:
    repeats = 1 if quick else 3
    root, small_root = synthetic_root(UNLABELED), synthetic_root(FEWER_UNLABELED)
    ours_s, ours_mb, ours_served = measure_fresh("ours", root, repeats)
    tv_s, tv_mb, tv_served = measure_fresh("torchvision", root, repeats)
    md5_s, _, _ = measure_fresh("md5", root, 1)
    _, ours_small_mb, _ = measure_fresh("ours", small_root, repeats)
    _, tv_small_mb, _ = measure_fresh("torchvision", small_root, 1)
    folder = f"5,000 train + {UNLABELED:,} unlabeled synthetic images; median of {repeats} fresh processes"
    return [
        {
            "benchmark": "data startup, train+unlabeled",
            "ours": ours_s * 1000,
            "baseline": tv_s * 1000,
            "unit": "ms",
            "ratio": tv_s / ours_s,
            "goal": ">= 20x",
            "setup": f"{folder}; torchvision without its md5 check; ours serves {ours_served:,} images "
            f"(val held out), torchvision {tv_served:,}",
        },
        {
            "benchmark": "data startup, torchvision with its md5 check",
            "ours": ours_s * 1000,
            "baseline": (tv_s + md5_s) * 1000,
            "unit": "ms",
            "ratio": (tv_s + md5_s) / ours_s,
            "goal": "info",
            "setup": f"the md5 check alone: {md5_s * 1000:.0f} ms over all five files of this folder",
        },
        {
            "benchmark": "peak RSS growth at data startup",
            "ours": ours_mb,
            "baseline": tv_mb,
            "unit": "MB",
            "ratio": ours_mb / tv_mb,
            "goal": "< 10%",
            "setup": f"{folder}; ratio = ours / torchvision",
        },
        {
            "benchmark": "peak RSS growth per 1,000 more unlabeled images",
            "ours": _per_thousand(ours_mb - ours_small_mb),
            "baseline": _per_thousand(tv_mb - tv_small_mb),
            "unit": "KB",
            "ratio": (ours_mb - ours_small_mb) / (tv_mb - tv_small_mb),
            "goal": "< 1%",
            "setup": f"from {FEWER_UNLABELED:,} to {UNLABELED:,} unlabeled: ours {ours_small_mb:.2f} -> "
            f"{ours_mb:.2f} MB (an 8-byte index per image), torchvision {tv_small_mb:.0f} -> {tv_mb:.0f} MB",
        },
    ]


if __name__ == "__main__":
    print_rows(run, __doc__, "one load per side, to check that it runs")
