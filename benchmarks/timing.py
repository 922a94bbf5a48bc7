"""How the CPU benchmarks time both sides alike on a small machine shared with other processes.

Two intra-op threads on two cores shared with other jobs spin and wait on each other: the same step
measured 250 ms with one thread and 800-1,300 ms with two. So the overhead benchmarks run torch on one
thread and count the CPU time of this process (`cpu_seconds`), which other jobs change far less, and
each round measures both sides in turn. The ratio is the median over rounds of the two sides' ratio
within a round: page faults alone vary one side's time by 15% from run to run on this machine.
"""

import argparse
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

cpu_seconds = time.process_time  # all threads of this process; the benchmarks read data in-process


@contextmanager
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def alternate(
    ours: Callable[[], float], baseline: Callable[[], float], rounds: int
) -> tuple[list[float], list[float]]:
    """Every round measures both sides, in turn first, so neither always runs on a warmer cache."""
    ours_samples, baseline_samples = [], []
    for number in range(rounds):
        if number % 2:
            baseline_samples.append(baseline())
            ours_samples.append(ours())
        else:
            ours_samples.append(ours())
            baseline_samples.append(baseline())
    return ours_samples, baseline_samples


def median_ratio(ours: list[float], baseline: list[float]) -> float:
    """The median of ours / baseline over rounds (rates, so above 1 is ours faster)."""
    return statistics.median(o / b for o, b in zip(ours, baseline, strict=True))


def ratio_row(
    benchmark: str, ours: list[float], baseline: list[float], unit: str, goal: str, setup: str
) -> dict:
    """One RESULTS.md row: both sides' medians over the rounds and the median of their ratios."""
    return {
        "benchmark": benchmark,
        "ours": statistics.median(ours),
        "baseline": statistics.median(baseline),
        "unit": unit,
        "ratio": median_ratio(ours, baseline),
        "goal": goal,
        "setup": setup,
    }


def print_rows(run, description: str, quick_help: str) -> None:
    """The command line of one benchmark module: `python -m benchmarks.<name> [--quick]`."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help=quick_help)
    for row in run(parser.parse_args().quick):
        print(row)
