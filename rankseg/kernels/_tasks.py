"""Parallel work items on Python threads, over serial ``nogil`` kernels.

The passes of a call are split into fixed work items (a ``chunk`` of one row, or one
row), and every work item writes its own slots of the outputs, so results do not
depend on how items are spread over threads.  A pass is a serial ``@jit`` kernel
over a range of items, ``body(i0, i1, *args)``; :func:`run_tasks` hands ranges to
the calling thread and the threads of one shared pool, which take the next range
when they are done (a thread the OS pauses holds up only the range it is on).

Why not ``parallel=True``: numba compiles a ``prange`` kernel in about twice the
time of the same kernel without it (docs/performance.rst, "The first call"), and
its workqueue threading layer aborts when two threads enter parallel kernels at
once (dask workers); serial kernels have neither problem.  They release the GIL
(``nogil=True``), so Python threads run them in parallel.

The thread count of a call is :func:`rankseg._config.threads` in the calling thread
(thread-local: :func:`rankseg._config.num_threads`, else
``numba.get_num_threads()`` when numba is imported, else ``NUMBA_NUM_THREADS``).
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from rankseg._config import jit, max_threads, threads
from rankseg.kernels import _aot

__all__ = ["run_tasks", "work_item"]

#: ranges handed out per thread: a few, so that a slow thread can be helped
_RANGES_PER_THREAD = 4

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


@jit(inline="always")
def work_item(task: int, nch: int, chunk: int, d: int) -> tuple[int, int, int]:
    """``(row, j0, j1)`` of work item ``task``: pixels ``j0 <= j < j1`` of that row.

    Rows of ``d`` pixels are cut into ``nch`` items of ``chunk`` pixels (the last
    one shorter), numbered row by row.
    """
    j0 = (task % nch) * chunk
    return task // nch, j0, min(d, j0 + chunk)


def _get_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            workers = max(1, max_threads() - 1)
            _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rankseg")
        return _pool


def _reset_pool_in_child() -> None:
    # After fork the child has only the forking thread: the parent's pool threads are
    # gone, but the pool object still counts them as idle and would hand them work
    # nobody runs (tests/test_fork.py).  A lock held by another thread at the fork
    # stays held in the child: a new one too.
    global _pool, _pool_lock
    _pool = None
    _pool_lock = threading.Lock()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_reset_pool_in_child)


def run_tasks(body: Callable[..., Any], ntasks: int, *args: Any) -> None:
    """Run ``body(i0, i1, *args)`` over ``[0, ntasks)`` in contiguous ranges, in parallel.

    Parameters
    ----------
    body : callable
        A serial ``nogil`` kernel that processes work items ``i0 <= i < i1``; items
        must write disjoint outputs.
    ntasks : int
        Number of work items.
    *args
        Passed to every call of ``body``.

    Notes
    -----
    With one thread allowed (:func:`rankseg._config.threads`) or one item, ``body`` runs
    once in the calling thread.  Otherwise the calling thread and up to
    ``threads - 1`` pool threads take ranges (about four per thread) from a shared
    counter until none is left; the first exception raised by a range is re-raised.
    ``body`` is looked up among the kernels compiled ahead of time first
    (:func:`rankseg.kernels._aot.find`).
    """
    body = _aot.find(body, (0, 0, *args))
    nthreads = min(threads(), ntasks)
    if nthreads <= 1:
        body(0, ntasks, *args)
        return
    nranges = min(ntasks, _RANGES_PER_THREAD * nthreads)
    edges = [ntasks * k // nranges for k in range(nranges + 1)]
    counter = itertools.count()  # next() on it is atomic under the GIL

    def work() -> None:
        while True:
            k = next(counter)
            if k >= nranges:
                return
            body(edges[k], edges[k + 1], *args)

    pool = _get_pool()
    futures = [pool.submit(work) for _ in range(nthreads - 1)]
    try:
        work()
    finally:
        for fut in futures:
            fut.result()
