"""Benchmarks of rankseg (asv suite) and the helpers they share with ``compare.py``.

Workloads come from :mod:`rankseg.datasets`.  Setting the environment variable
``RANKSEG_BENCH_SMALL=1`` swaps them for tiny arrays of the same kind (same classes,
dtype and number of spatial dimensions) so that the whole suite runs in seconds; the
pytest smoke test uses it so that the benchmarks cannot rot.

Nothing here may be named like an asv benchmark (``time_*``, ``peakmem_*``, ...):
asv imports every module of this package when it discovers benchmarks.
"""

from __future__ import annotations

import ctypes
import gc
import os
import sys
import time
from collections.abc import Callable
from functools import cache

import numpy as np

from rankseg.datasets import WORKLOADS, make_probs

__all__ = [
    "SMALL_ENV",
    "SMALL_SHAPES",
    "WORKLOAD_NAMES",
    "interleaved_times",
    "load_workload",
    "peak_rss_growth",
    "reset_peak_rss",
    "small_mode",
    "unmap_freed_memory",
    "warmup_input",
]

#: Environment variable that selects the tiny shapes.
SMALL_ENV = "RANKSEG_BENCH_SMALL"

WORKLOAD_NAMES = list(WORKLOADS)

#: Tiny stand-ins used by ``compare.py --quick`` and the smoke tests.
SMALL_SHAPES = {
    "voc2d": (2, 21, 32, 32),
    "ct3d": (1, 8, 8, 16, 16),
    "tumor3d": (1, 1, 12, 16, 16),
}


def small_mode() -> bool:
    """Whether ``RANKSEG_BENCH_SMALL`` asks for the tiny shapes."""
    return os.environ.get(SMALL_ENV, "").strip() not in ("", "0")


@cache
def _generate(name: str, small: bool) -> np.ndarray:
    make = WORKLOADS[name]
    return make(seed=0, shape=SMALL_SHAPES[name]) if small else make(seed=0)


def load_workload(name: str, small: bool | None = None) -> np.ndarray:
    """Return the seeded workload ``name``, generated once per process.

    ``small=None`` follows :func:`small_mode`.
    """
    return _generate(name, small_mode() if small is None else small)


def warmup_input(probs: np.ndarray) -> np.ndarray:
    """A tiny map like ``probs`` (classes, dtype, spatial rank) to trigger JIT compilation."""
    shape = (1, probs.shape[1]) + (8,) * (probs.ndim - 2)
    kind = "sigmoid" if probs.shape[1] == 1 else "softmax"
    return make_probs(shape, kind=kind, smoothness=1.0, seed=1, dtype=probs.dtype)


def interleaved_times(
    funcs: dict[str, Callable[[], object]], repeat: int
) -> dict[str, list[float]]:
    """Wall times in seconds of each callable, timed in ``repeat`` interleaved rounds.

    Each round calls every function once, in order, so slow drifts of the machine
    (frequency scaling, other tenants) hit all of them alike and their ratios stay
    meaningful.  The garbage collector is off while timing, as in :mod:`timeit`.
    """
    times: dict[str, list[float]] = {key: [] for key in funcs}
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeat):
            for key, func in funcs.items():
                start = time.perf_counter()
                func()
                times[key].append(time.perf_counter() - start)
    finally:
        if gc_was_enabled:
            gc.enable()
    return times


def unmap_freed_memory() -> bool:
    """Make glibc give large blocks (>= 1 MiB) their own pages and unmap them on free.

    By default glibc raises its mmap threshold after the first large free and then
    reuses freed heap memory that is still resident, so a later call that allocates
    the same amount shows no growth in RSS.  With a fixed threshold every large array
    is mapped afresh and counted.  This is process-wide and makes large allocations
    fault their pages in on every call, so switch it on only for memory measurements,
    after timing.  Returns False where unavailable (not Linux, no ``mallopt``).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's <malloc.h>
    return bool(mallopt(m_mmap_threshold, 1 << 20)) and bool(mallopt(m_trim_threshold, 1 << 20))


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter of this process (Linux ``clear_refs``).

    asv's ``peakmem_*`` reports the peak RSS of the whole process, setup (workload
    generation, JIT compilation) included; resetting it at the end of ``setup`` leaves
    the resident baseline plus what the benchmarked call adds.  Returns False where
    the reset is unavailable (other systems, restricted containers).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def peak_rss_growth(func: Callable[[], object]) -> int | None:
    """Peak resident memory in bytes that ``func()`` adds above the current RSS.

    Sees every allocation that touches memory, including those made inside numba
    kernels (which :mod:`tracemalloc` misses).  Memory reused from the allocator's
    free lists is not counted again (call :func:`unmap_freed_memory` first), and pages
    allocated but never touched are not counted at all, so it is a lower bound.  None
    where the peak cannot be reset (see :func:`reset_peak_rss`).
    """
    gc.collect()
    if not reset_peak_rss():
        return None
    before = _status_kib("VmRSS")
    func()
    return max(_status_kib("VmHWM") - before, 0) * 1024
