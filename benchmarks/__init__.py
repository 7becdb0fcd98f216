"""Benchmarks of rankseg (asv suite) and the helpers they share with ``compare.py``.

Workloads come from :mod:`rankseg.datasets`.  Setting the environment variable
``RANKSEG_BENCH_SMALL=1`` swaps them for tiny arrays of the same kind (same classes,
dtype and number of spatial dimensions) so that the whole suite runs in seconds; the
pytest smoke test uses it so that the benchmarks cannot rot.  The scaling maps of
:func:`make_scaling_probs` (volume size ``d`` from 1e4 to 1e8) shrink a thousandfold in
that mode.

Modules: ``bench_rma.py`` (every solver and output mode on the three workloads),
``bench_scaling.py`` (time against the volume size), ``bench_first_call.py`` (import
and first call in a fresh interpreter, numba's disk cache cold or warm); the scripts
``compare.py``, ``compare_upstream.py`` and ``scaling.py`` print tables of ratios to
``np.argmax`` measured in the same run.

Nothing here may be named like an asv benchmark (``time_*``, ``peakmem_*``, ...):
asv imports every module of this package when it discovers benchmarks.
"""

from __future__ import annotations

import ctypes
import gc
import math
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Mapping
from functools import cache, lru_cache

import numpy as np

from rankseg.datasets import WORKLOADS, make_probs

__all__ = [
    "SCALING_CLASSES",
    "SCALING_SIZES",
    "SMALL_ENV",
    "SMALL_SCALING_DIVISOR",
    "SMALL_SHAPES",
    "WORKLOAD_NAMES",
    "balanced_orders",
    "interleaved_times",
    "load_scaling_probs",
    "load_workload",
    "make_scaling_probs",
    "peak_rss_growth",
    "reset_peak_rss",
    "run_in_fresh_interpreter",
    "scaling_shape",
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


def balanced_orders(n: int) -> list[list[int]]:
    """Orders of ``n`` functions in which each one follows every other equally often.

    A Williams design: the rows ``(b + r) mod n`` of the sequence
    ``b = 0, 1, n-1, 2, n-2, ...``, and for odd ``n`` their reverses as well.  Over
    its ``n`` rows (``2 n`` for odd ``n``) every ordered pair ``(a, b)`` of distinct
    functions is adjacent, ``a`` just before ``b``, exactly once (twice for odd ``n``).
    """
    seq = [0]
    lo, hi = 1, n - 1
    while len(seq) < n:
        seq.append(lo)
        lo += 1
        if len(seq) < n:
            seq.append(hi)
            hi -= 1
    rows = [[(x + r) % n for x in seq] for r in range(n)]
    if n % 2:
        rows += [row[::-1] for row in rows]
    return rows


def interleaved_times(
    funcs: dict[str, Callable[[], object]],
    repeat: int,
    before: Callable[[], object] | None = None,
    balanced: bool = False,
) -> dict[str, list[float]]:
    """Wall times in seconds of each callable, timed in ``repeat`` interleaved rounds.

    Each round calls every function once, in order, so slow drifts of the machine
    (frequency scaling, other tenants) hit all of them alike and their ratios stay
    meaningful.  The garbage collector is off while timing, as in :mod:`timeit`.
    ``before``, when given, is called (untimed) before every timed call, so that
    each function starts from the same state of the caches whatever ran before it.
    With ``balanced``, round ``r`` takes the ``r``-th order of
    :func:`balanced_orders` (cyclically), so each function follows every other one
    equally often over a full cycle: what a function leaves behind that ``before``
    does not undo (dirty cache lines to write back, a core's clock after a long
    single-threaded call) falls on each of the others in turn, and the medians do
    not show it.  (Rotating the start of a fixed order does not do that: a function
    then follows the same one in every round but one.)
    """
    keys = list(funcs)
    orders = balanced_orders(len(keys)) if balanced and keys else [list(range(len(keys)))]
    times: dict[str, list[float]] = {key: [] for key in funcs}
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for r in range(repeat):
            for idx in orders[r % len(orders)]:
                key = keys[idx]
                func = funcs[key]
                if before is not None:
                    before()
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


# ------------------------------------------------------------------------ scaling maps

#: Volume sizes ``d`` (voxels per class map) of the scaling benchmark: 1e4 to 1e8.
SCALING_SIZES = [10**k for k in range(4, 9)]

#: Classes of the scaling maps: 1e8 voxels x 2 classes of float32 are 800 MB.
SCALING_CLASSES = 2

#: In small mode the scaling benchmark uses ``d // SMALL_SCALING_DIVISOR`` voxels.
SMALL_SCALING_DIVISOR = 1000

# Logit scale (per unit standard deviation of the field) and foreground level: with
# these about 7 % of the voxels have a largest probability below 0.95 and 22 % belong
# to the foreground class, at every d (measured for C = 2, seed 0).
_SCALING_SHARPNESS = 24.0
_SCALING_LEVEL = 0.8


def scaling_shape(d: int) -> tuple[int, int, int]:
    """A near-cubic 3-D grid of ``d`` voxels (exactly ``d`` for powers of ten).

    ``10**k`` splits its exponent as evenly as possible, e.g. 1e4 -> (100, 10, 10) and
    1e8 -> (1000, 1000, 100); other sizes get the nearest near-cubic grid.
    """
    d = int(d)
    if d < 1:
        raise ValueError(f"d must be at least 1, got {d}")
    k = round(math.log10(d))
    if 10**k == d:
        return tuple(10 ** (k // 3 + (1 if i < k % 3 else 0)) for i in range(3))
    n0 = max(round(d ** (1 / 3)), 1)
    n1 = max(round((d / n0) ** 0.5), 1)
    return (n0, n1, max(round(d / (n0 * n1)), 1))


def make_scaling_probs(d: int, classes: int = SCALING_CLASSES, seed: int = 0) -> np.ndarray:
    """Softmax probabilities ``(1, classes, *scaling_shape(d))`` in float32, cheaply.

    A self-similar map: class 0 (background) has logit 0; every other class has the
    logit ``sharpness * (f1(x) + f2(y) + f3(z)) / sqrt(3) - level * sharpness``, where
    each ``f`` is a smooth random function of the *relative* coordinate along its
    axis (three sinusoids of 1-3 periods, random phases, amplitudes ``~ 1/k``, unit
    variance).  The same seed draws the same functions at every ``d``, so the objects
    and the fraction of uncertain voxels (about 7 % with a largest probability below
    0.95) stay the same and only the resolution grows: every step of a solver has
    work proportional to ``d``.  (A model whose uncertain band stays a fixed number of
    voxels wide would have relatively fewer candidates at large ``d``.)

    The field is separable, so it costs one broadcast addition per class instead of
    the FFTs of :func:`rankseg.datasets.make_probs`; peak memory is the output plus
    half of it (the class maximum and sum of the softmax).
    """
    spatial = scaling_shape(d)
    ndim = len(spatial)
    rng = np.random.default_rng(seed)
    x = np.empty((1, classes, *spatial), dtype=np.float32)
    x[0, 0] = 0.0
    k = np.arange(1, 4)
    scale = _SCALING_SHARPNESS / math.sqrt(ndim)
    for c in range(1, classes):
        head = np.float32(-_SCALING_LEVEL * _SCALING_SHARPNESS)
        for axis, n in enumerate(spatial):
            u = (np.arange(n) + 0.5) / n
            amp = rng.standard_normal(k.size) / k
            phase = rng.uniform(0.0, 2.0 * math.pi, k.size)
            f = (amp[:, None] * np.sin(2.0 * math.pi * k[:, None] * u + phase[:, None])).sum(0)
            f *= scale / math.sqrt(float((amp**2).sum()) / 2.0)  # unit variance, then scale
            f = f.astype(np.float32).reshape((-1,) + (1,) * (ndim - 1 - axis))
            if axis < ndim - 1:
                head = head + f  # small: the grid without its last axis
            else:
                np.add(head, f, out=x[0, c])  # the one full-size pass of this class
    np.subtract(x, x.max(axis=1, keepdims=True), out=x)
    np.exp(x, out=x)
    np.divide(x, x.sum(axis=1, keepdims=True), out=x)
    return x


@lru_cache(maxsize=1)
def _scaling_cached(d: int) -> np.ndarray:
    return make_scaling_probs(d)


def load_scaling_probs(d: int, small: bool | None = None) -> np.ndarray:
    """The scaling map of ``d`` voxels, kept for reuse (one size at a time).

    asv re-runs ``setup`` between samples; the cache keeps that from regenerating an
    800 MB map each time.  ``small=None`` follows :func:`small_mode`, which divides
    ``d`` by :data:`SMALL_SCALING_DIVISOR`.
    """
    if small_mode() if small is None else small:
        d = max(int(d) // SMALL_SCALING_DIVISOR, 1)
    return _scaling_cached(int(d))


# ------------------------------------------------------------------- fresh interpreters

_FRESH_TEMPLATE = """\
from timeit import default_timer, timeit
print(repr(timeit(stmt={stmt!r}, setup={setup!r}, number=1, timer=default_timer)))
"""


def run_in_fresh_interpreter(
    stmt: str, setup: str = "", env: Mapping[str, str] | None = None, timeout: float = 600
) -> float:
    """Seconds of ``stmt`` after ``setup`` in a new Python process, like asv's ``timeraw_``.

    asv times the ``(stmt, setup)`` pair returned by a ``timeraw_`` benchmark the same
    way: one :func:`timeit.timeit` call with ``number=1`` in a child interpreter.  Used
    to populate a warm numba cache and by the smoke tests.  ``env`` replaces the
    environment of the child (default: this process's).
    """
    code = _FRESH_TEMPLATE.format(stmt=textwrap.dedent(stmt), setup=textwrap.dedent(setup))
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env=None if env is None else dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"fresh interpreter failed:\n{proc.stderr}")
    return float(proc.stdout.strip().splitlines()[-1])
