"""Shared helpers for the benchmarks: interleaved timing rounds reduced to medians and paired
ratios, a one-line description of the machine, and how much CPU other processes (and the
hypervisor) took while a benchmark ran, because the VMs these numbers come from are shared and
drift."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable


def machine() -> str:
    """CPU model, core count and the versions that matter for these numbers."""
    import gymnasium
    import numba
    import numpy

    try:
        layer = numba.threading_layer()  # known once a parallel kernel has run
    except ValueError:
        layer = numba.config.THREADING_LAYER
    threads = numba.get_num_threads()
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"{model}, {os.cpu_count()} cores; Python {platform.python_version()}, NumPy {numpy.__version__}, "
            f"Numba {numba.__version__} ({layer} threading layer, {threads} thread{'s' if threads != 1 else ''}), "
            f"Gymnasium {gymnasium.__version__}")


def _cpu_jiffies() -> tuple[int, int]:
    """(busy, steal) jiffies of the whole machine from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return user + nice + system + irq + softirq, steal


class OtherLoad:
    """Context manager: CPU used by other processes and stolen by the hypervisor during the
    block, each as a fraction of the machine's capacity (``summary()`` after the block)."""

    def __enter__(self) -> OtherLoad:
        self._wall = time.perf_counter()
        self._own = time.process_time()
        try:
            self._jiffies = _cpu_jiffies()
        except OSError:
            self._jiffies = None
        return self

    def __exit__(self, *exc) -> None:
        wall = time.perf_counter() - self._wall
        own = time.process_time() - self._own
        self.other = self.steal = float("nan")
        if self._jiffies is not None:
            busy, steal = _cpu_jiffies()
            tick = os.sysconf("SC_CLK_TCK")
            capacity = wall * (os.cpu_count() or 1)
            self.other = max(0.0, (busy - self._jiffies[0]) / tick - own) / capacity
            self.steal = (steal - self._jiffies[1]) / tick / capacity

    def summary(self) -> str:
        return f"other processes used {self.other:.0%} and the hypervisor stole {self.steal:.0%} of the CPUs meanwhile"


def interleaved_samples(variants: dict[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Run every variant once per round, round after round (so drift hits all alike; the order
    is reversed every other round, so no variant always runs right after the same one), and
    return what each run returned (e.g. seconds per step), round by round."""
    samples: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            samples[name].append(variants[name]())
    return samples


def interleaved(variants: dict[str, Callable[[], float]], rounds: int) -> dict[str, float]:
    """``interleaved_samples`` reduced to each variant's median."""
    return {name: statistics.median(values) for name, values in interleaved_samples(variants, rounds).items()}


def paired_ratio(samples: dict[str, list[float]], name: str, baseline: str) -> tuple[float, float, float]:
    """Median, first and third quartile of the per-round ratio ``name / baseline``: a round runs
    every variant once, close together in time, so a ratio within a round cancels most of the
    machine's slow drift (which moves a single variant's median by up to ~2x on a shared VM)."""
    ratios = sorted(a / b for a, b in zip(samples[name], samples[baseline]))
    q1, median, q3 = statistics.quantiles(ratios, n=4, method="inclusive") if len(ratios) > 1 else ratios * 3
    return median, q1, q3


def print_table(header: tuple[str, ...], rows: list[tuple]) -> None:
    """A plain fixed-width table on stdout."""
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows)]
    for row in (header, *rows):
        print("  ".join(str(x).rjust(w) if i else str(x).ljust(w) for i, (x, w) in enumerate(zip(row, widths))))
