"""One home for the CUDA launch configuration and the device-twin helper.

The launch values are read by the host driver at every call (not baked into the
kernels), so tests can make them tiny: a few threads per block and a few blocks
exercise the block reductions and the grid-stride loops on small inputs.  The
compile-time capacities bound them.
"""

from __future__ import annotations

import os
import types
from collections.abc import Callable
from typing import Any

__all__ = [
    "MAX_BLOCKS",
    "MAX_THREADS",
    "SHARED_SORT",
    "SHARED_SORT_CAPACITY",
    "THREADS_PER_BLOCK",
    "device_twin",
    "launch",
]

#: compile-time capacity of the per-block shared reduction buffers
MAX_THREADS = 1024
#: compile-time capacity (float64 values) of the shared-memory band sort
SHARED_SORT_CAPACITY = 2048

#: threads per block of every kernel: a power of two in [1, MAX_THREADS]
THREADS_PER_BLOCK = int(os.environ.get("RANKSEG_CUDA_THREADS", "256"))
#: upper bound on blocks per launch; kernels loop (grid-stride) over the rest
MAX_BLOCKS = int(os.environ.get("RANKSEG_CUDA_MAX_BLOCKS", "65535"))
#: bands up to this many values are sorted in shared memory (<= SHARED_SORT_CAPACITY),
#: longer ones in global memory
SHARED_SORT = SHARED_SORT_CAPACITY


def launch(n_items: int, per_block: int = 1) -> tuple[int, int]:
    """Grid and block size for ``n_items`` work items, ``per_block`` items per block.

    Parameters
    ----------
    n_items : int
        Rows (``per_block=1``: one block per row) or pixels
        (``per_block=THREADS_PER_BLOCK``).
    per_block : int
        Items handled by one block per grid-stride step.

    Returns
    -------
    (blocks, threads) : tuple of int
    """
    tpb = THREADS_PER_BLOCK
    if tpb < 1 or tpb > MAX_THREADS or tpb & (tpb - 1):
        raise ValueError(
            f"THREADS_PER_BLOCK must be a power of two in [1, {MAX_THREADS}]; got {tpb}"
        )
    if not 0 <= SHARED_SORT <= SHARED_SORT_CAPACITY:
        raise ValueError(f"SHARED_SORT must be in [0, {SHARED_SORT_CAPACITY}]; got {SHARED_SORT}")
    blocks = max(1, min(MAX_BLOCKS, -(-n_items // per_block)))
    return blocks, tpb


def device_twin(cpu_kernel: Any, **replace: Any) -> Callable:
    """Build a ``@cuda.jit(device=True)`` twin of a pure-scalar CPU ``@njit`` function.

    The twin runs the very same Python code (the dispatcher's ``py_func``), so the
    formulas cannot drift apart; CPU dispatchers it calls are swapped for their own
    twins through ``replace`` (global name -> device function).

    Parameters
    ----------
    cpu_kernel : numba dispatcher
        The CPU function (scalar arguments, no NumPy allocations).
    **replace
        Globals of the function to rebind.

    Returns
    -------
    callable
        The device function.
    """
    from numba import cuda

    fn = cpu_kernel.py_func
    env = dict(fn.__globals__)
    env.update(replace)
    twin = types.FunctionType(fn.__code__, env, fn.__name__, fn.__defaults__, fn.__closure__)
    twin.__doc__ = fn.__doc__
    return cuda.jit(device=True)(twin)
