"""Parallel work items on Python threads, over serial ``nogil`` kernels.

The passes of a call are split into fixed work items (a ``chunk`` of one row, or one
row; :func:`rankseg.kernels._tasks.work_item`), and every work item writes its own
slots of the outputs, so results do not depend on how items are spread over threads.
A pass is a serial ``@jit`` kernel over a range of items, ``body(i0, i1, *args)``;
:func:`run_tasks` hands ranges to the calling thread and the threads of one shared
pool, which take the next range when they are done (a thread the OS pauses holds up
only the range it is on).

Why not ``parallel=True``: numba compiles a ``prange`` kernel in about twice the
time of the same kernel without it (docs/performance.rst, "The first call"), and
its workqueue threading layer aborts when two threads enter parallel kernels at
once (dask workers); serial kernels have neither problem.  They release the GIL
(``nogil=True``), so Python threads run them in parallel.

The thread count is :func:`rankseg._threads.threads` in the calling thread (inside
:func:`rankseg.predict`: the count :func:`rankseg._threads.call_threads` chose), one
for a pass whose launcher estimates less work than ``rankseg._config.PASS_WORK``
(:func:`rankseg._threads.pass_threads`), and the pool is
:func:`rankseg._threads.pool` (reset in a forked child).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from rankseg import _threads
from rankseg._compile import aot as _aot

__all__ = ["run_tasks"]

#: ranges handed out per thread: a few, so that a slow thread can be helped
_RANGES_PER_THREAD = 4


def run_tasks(body: Callable[..., Any], ntasks: int, *args: Any, work: int | None = None) -> None:
    """Run ``body(i0, i1, *args)`` over ``[0, ntasks)`` in contiguous ranges, in parallel.

    Parameters
    ----------
    body : callable
        A serial ``nogil`` kernel that processes work items ``i0 <= i < i1`` (or a
        Python function that calls such kernels, as ``cpu/driver.py``'s ranges of
        one-call kernels do); items must write disjoint outputs.
    ntasks : int
        Number of work items.
    *args
        Passed to every call of ``body``.
    work : int, optional
        About how many values the pass streams: with less than
        :data:`rankseg._config.PASS_WORK` it runs in the calling thread
        (:func:`rankseg._threads.pass_threads`).

    Notes
    -----
    With one thread allowed (:func:`rankseg._threads.pass_threads`) or one item, ``body`` runs
    once in the calling thread.  Otherwise the calling thread and up to
    ``threads - 1`` pool threads take ranges (about four per thread) from a shared
    counter until none is left; the first exception raised by a range is re-raised.
    ``body`` is looked up among the kernels compiled ahead of time first
    (:func:`rankseg._compile.aot.find`).
    """
    body = _aot.find(body, (0, 0, *args))
    nthreads = min(_threads.pass_threads(work), ntasks)
    if nthreads <= 1:
        body(0, ntasks, *args)
        return
    nranges = min(ntasks, _RANGES_PER_THREAD * nthreads)
    edges = [ntasks * k // nranges for k in range(nranges + 1)]
    counter = itertools.count()  # next() on it is atomic under the GIL

    def take_ranges() -> None:
        while True:
            k = next(counter)
            if k >= nranges:
                return
            body(edges[k], edges[k + 1], *args)

    pool = _threads.pool(nthreads - 1)
    futures = [pool.submit(take_ranges) for _ in range(nthreads - 1)]
    try:
        take_ranges()
    finally:
        for fut in futures:
            fut.result()
