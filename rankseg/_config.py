"""One home for JIT options and kernel tuning constants.

Every ``@njit`` kernel of the package is built through :func:`jit` so that the
options stay consistent (DESIGN.md: ``cache=True`` honouring ``NUMBA_CACHE_DIR``,
``nogil=True``, fastmath off because it breaks NaN checks and tie handling,
``error_model="numpy"`` so divisions do not raise inside kernels).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numba

__all__ = [
    "CHUNK",
    "KERNELS",
    "MAX_BAND_BYTES",
    "SERIAL_SIZE",
    "call_threads",
    "jit",
    "num_threads",
    "pjit",
]

#: Pixels per work item when a row is split for parallel passes.  It is a fixed
#: constant (not derived from the thread count) so that partial sums, and hence
#: every result, are identical for any number of threads.
CHUNK = 1 << 16

#: Inputs with fewer elements (B * C * d) than this run their kernels on one Numba
#: thread (``RankSEG.predict``): a few work items cannot pay for waking the thread
#: team, and when another process holds a core every parallel region waits for a
#: paused worker (tens of ms per call).  Results do not depend on the thread count.
SERIAL_SIZE = 4 * CHUNK

#: Default memory (bytes) the chunked path (:mod:`rankseg.dask`) may spend in the
#: calling process on gathered values: ``max_band_bytes`` of the dask and xarray
#: ``predict`` and ``--max-band-bytes`` of the CLI.
MAX_BAND_BYTES = 2 << 30

#: Every kernel built by :func:`jit`, by ``(module, qualified name)``: its numba
#: dispatcher (the Python function itself under ``NUMBA_DISABLE_JIT``).  The
#: ahead-of-time build (:mod:`rankseg.kernels._aot`) finds kernels here.
KERNELS: dict[tuple[str, str], Callable] = {}

_BASE: dict[str, Any] = {
    "cache": True,
    "nogil": True,
    "fastmath": False,
    "error_model": "numpy",
}


def jit(func: Callable | None = None, **overrides: Any) -> Callable:
    """Compile ``func`` with the package's serial JIT options.

    Parameters
    ----------
    func : callable, optional
        The function to compile.  When omitted, a decorator is returned.
    **overrides
        Options that replace the defaults (e.g. ``inline="always"``).

    Returns
    -------
    callable
        The numba dispatcher, or a decorator producing one.
    """
    if func is None:
        return lambda f: jit(f, **overrides)
    kernel = numba.njit(**{**_BASE, **overrides})(func)
    KERNELS[(func.__module__, func.__qualname__)] = kernel
    return kernel


def pjit(func: Callable | None = None, **overrides: Any) -> Callable:
    """Compile ``func`` like :func:`jit` with ``parallel=True`` (for ``prange``).

    Parameters
    ----------
    func : callable, optional
        The function to compile.  When omitted, a decorator is returned.
    **overrides
        Options that replace the defaults.

    Returns
    -------
    callable
        The numba dispatcher, or a decorator producing one.
    """
    return jit(func, parallel=True, **overrides)


@contextmanager
def num_threads(nthreads: int) -> Iterator[None]:
    """Run the body with ``nthreads`` Numba threads in the calling thread, then restore.

    ``numba.set_num_threads`` is thread-local: other threads keep their own count.
    The count is capped at ``NUMBA_NUM_THREADS`` (a worker process may have been
    started with fewer threads); the previous count is restored also on exceptions.

    Parameters
    ----------
    nthreads : int
        Numba threads for the kernels called in the body (at least 1).
    """
    previous = numba.get_num_threads()
    wanted = max(1, min(nthreads, numba.config.NUMBA_NUM_THREADS))
    if wanted == previous:
        yield
        return
    numba.set_num_threads(wanted)
    try:
        yield
    finally:
        numba.set_num_threads(previous)


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _runnable_elsewhere(proc: str = "/proc") -> float | None:
    """Threads of other processes running or waiting for a core now, on our cores.

    Linux only (``None`` elsewhere, or when ``/proc`` cannot be read).  The fourth
    field of ``/proc/loadavg`` counts the runnable threads of the whole machine at
    this instant; this process's own ones (the caller, Numba workers still spinning
    after the last call) are taken off, read from ``/proc/self/task/*/stat``.  When
    this process may use only some of the machine's cores, the count is scaled to
    them (the file does not say on which core a thread waits).
    """
    try:
        with open(f"{proc}/loadavg", "rb") as f:
            running = int(f.read().split()[3].split(b"/")[0])
        own = 0
        for tid in os.listdir(f"{proc}/self/task"):
            with open(f"{proc}/self/task/{tid}/stat", "rb") as f:
                stat = f.read()
            own += stat[stat.rindex(b")") + 2 : stat.rindex(b")") + 3] == b"R"
    except (OSError, ValueError, IndexError):
        return None
    others = max(0, running - max(own, 1))
    total = os.cpu_count() or 1
    return others * min(1.0, _usable_cpus() / total)


def call_threads(size: int) -> int:
    """Numba threads for one call over ``size`` elements.

    Parallel regions end in a barrier: when another process holds a core, the OS
    pauses one of our threads and every region waits for it (about 85 ms a call on
    2 busy cores, docs/performance.rst).  So a call uses at most as many threads as
    there are cores that nothing else is running on at the moment of the call (at
    least one), never more than the calling thread's ``numba.get_num_threads()``;
    inputs below :data:`SERIAL_SIZE` always run on one.  Results do not depend on
    the thread count (fixed work items, see :data:`CHUNK`).

    Parameters
    ----------
    size : int
        Elements of the input (``B * C * d``).

    Returns
    -------
    int
        The thread count for this call (at least 1).
    """
    current = numba.get_num_threads()
    if size < SERIAL_SIZE or current == 1:
        return 1
    others = _runnable_elsewhere()
    if others is None:
        return current
    free = int(_usable_cpus() - others + 0.5)
    return max(1, min(current, free))
