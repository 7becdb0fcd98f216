"""One home for JIT options and kernel tuning constants.

Every ``@njit`` kernel of the package is built through :func:`jit` so that the
options stay consistent (DESIGN.md: ``cache=True`` honouring ``NUMBA_CACHE_DIR``,
``nogil=True``, fastmath off because it breaks NaN checks and tie handling,
``error_model="numpy"`` so divisions do not raise inside kernels).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numba

__all__ = ["CHUNK", "SERIAL_SIZE", "jit", "num_threads", "pjit"]

#: Pixels per work item when a row is split for parallel passes.  It is a fixed
#: constant (not derived from the thread count) so that partial sums, and hence
#: every result, are identical for any number of threads.
CHUNK = 1 << 16

#: Inputs with fewer elements (B * C * d) than this run their kernels on one Numba
#: thread (``RankSEG.predict``): a few work items cannot pay for waking the thread
#: team, and when another process holds a core every parallel region waits for a
#: paused worker (tens of ms per call).  Results do not depend on the thread count.
SERIAL_SIZE = 4 * CHUNK

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
    opts = {**_BASE, **overrides}
    if func is None:
        return lambda f: numba.njit(**opts)(f)
    return numba.njit(**opts)(func)


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
