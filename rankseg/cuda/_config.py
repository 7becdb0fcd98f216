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
    "BAND_MIN_CAPACITY",
    "BUCKETS",
    "FUSED_CLASSES",
    "MAX_BLOCKS",
    "MAX_FUSED_CLASSES",
    "MAX_SORT_THREADS",
    "MAX_THREADS",
    "MIN_TILE",
    "SHARED_SORT",
    "SHARED_SORT_CAPACITY",
    "SHORT_BUCKET",
    "SORT_THREADS",
    "TARGET_ITEMS",
    "THREADS_PER_BLOCK",
    "TILE",
    "band_capacity",
    "device_twin",
    "launch",
    "launch_tiles",
]

#: compile-time capacity of the per-block shared reduction buffers
MAX_THREADS = 1024
#: compile-time capacity (float64 values) of the shared-memory band sort
SHARED_SORT_CAPACITY = 2048
#: compile-time capacity of the band-sort kernel's threads per block
MAX_SORT_THREADS = 256
#: compile-time number of value buckets of the long-band sort (int32 counts, shared)
BUCKETS = 4096
#: buckets of at most this many values are sorted by one thread (insertion sort)
SHORT_BUCKET = 32
#: compile-time capacity of the per-thread class accumulators of the fused pass A
MAX_FUSED_CLASSES = 32

#: threads per block of every kernel: a power of two in [1, MAX_THREADS]
THREADS_PER_BLOCK = int(os.environ.get("RANKSEG_CUDA_THREADS", "256"))
#: upper bound on blocks per launch; kernels loop (grid-stride) over the rest
MAX_BLOCKS = int(os.environ.get("RANKSEG_CUDA_MAX_BLOCKS", "65535"))
#: threads per block of the band sort and objective scan (one block per row)
SORT_THREADS = int(os.environ.get("RANKSEG_CUDA_SORT_THREADS", "256"))
#: bands up to this many values are sorted in shared memory (<= SHARED_SORT_CAPACITY),
#: longer ones in global memory
SHARED_SORT = SHARED_SORT_CAPACITY
#: pixels of one row handled by one block per step of the passes over the input: a
#: row is cut into tiles, so a few long rows still spread over the whole GPU
TILE = int(os.environ.get("RANKSEG_CUDA_TILE", "32768"))
#: a pass over the input halves its tile (down to ``MIN_TILE``) until it has at least
#: this many (row, tile) work items, so a small input still fills every multiprocessor
TARGET_ITEMS = int(os.environ.get("RANKSEG_CUDA_TARGET_ITEMS", "2048"))
#: the smallest tile that :data:`TARGET_ITEMS` may choose (a smaller TILE is kept)
MIN_TILE = 1024
#: the band buffer holds ``min(d, max(BAND_MIN_CAPACITY, d // 32))`` values per row;
#: a row whose band is longer is gathered again into a buffer of its exact size
BAND_MIN_CAPACITY = 65536
#: most blocks of the exact solver's quadrature (each holds ~0.6 MB of scratch for
#: its nodes; the blocks loop over the rows)
QUADRATURE_BLOCKS = int(os.environ.get("RANKSEG_CUDA_QUADRATURE_BLOCKS", "128"))
#: multiclass inputs with at most this many classes (<= MAX_FUSED_CLASSES) sum the
#: safe sets inside pass A; more classes take one more pass
FUSED_CLASSES = MAX_FUSED_CLASSES


def band_capacity(d: int) -> int:
    """Values per row of the first band buffer (see :data:`BAND_MIN_CAPACITY`)."""
    return max(1, min(d, max(BAND_MIN_CAPACITY, d // 32)))


def _threads(tpb: int, name: str) -> int:
    if tpb < 1 or tpb > MAX_THREADS or tpb & (tpb - 1):
        raise ValueError(f"{name} must be a power of two in [1, {MAX_THREADS}]; got {tpb}")
    return tpb


def launch_tiles(nrows: int, d: int) -> tuple[tuple[int, int], int, int]:
    """Launch configuration, tile count and tile of a pass over ``nrows`` rows of ``d`` pixels.

    The tile is :data:`TILE`, halved (not below :data:`MIN_TILE`) while the pass
    would have fewer than :data:`TARGET_ITEMS` (row, tile) work items.

    Parameters
    ----------
    nrows, d : int
        Rows and pixels per row.

    Returns
    -------
    ((blocks, threads), ntiles, tile) : tuple
        One block per (row, tile) work item per grid-stride step.
    """
    if TILE < 1:
        raise ValueError(f"TILE must be >= 1; got {TILE}")
    tile = TILE
    while tile > MIN_TILE and nrows * -(-d // tile) < TARGET_ITEMS:
        tile //= 2
    ntiles = max(1, -(-d // tile))
    tpb = _threads(THREADS_PER_BLOCK, "THREADS_PER_BLOCK")
    return (max(1, min(MAX_BLOCKS, nrows * ntiles)), tpb), ntiles, tile


def launch(n_items: int, per_block: int = 1, threads: int | None = None) -> tuple[int, int]:
    """Grid and block size for ``n_items`` work items, ``per_block`` items per block.

    Parameters
    ----------
    n_items : int
        Rows (``per_block=1``: one block per row) or pixels
        (``per_block=THREADS_PER_BLOCK``).
    per_block : int
        Items handled by one block per grid-stride step.
    threads : int, optional
        Threads per block (default :data:`THREADS_PER_BLOCK`).

    Returns
    -------
    (blocks, threads) : tuple of int
    """
    if threads is None:
        tpb = _threads(THREADS_PER_BLOCK, "THREADS_PER_BLOCK")
    else:
        tpb = _threads(threads, "SORT_THREADS")
        if tpb > MAX_SORT_THREADS:
            raise ValueError(f"SORT_THREADS must be at most {MAX_SORT_THREADS}; got {tpb}")
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
        Globals of the function to rebind; each must be a name its code reads.

    Returns
    -------
    callable
        The device function.

    Raises
    ------
    ValueError
        If a key of ``replace`` is not a global the function reads (a helper renamed
        on one side only).
    """
    from numba import cuda

    from rankseg._compile.jit import go_live

    go_live()  # the globals copied below are the kernels' dispatchers, not lazy kernels
    fn = cpu_kernel.py_func
    unused = sorted(set(replace) - set(fn.__code__.co_names))
    if unused:  # a renamed helper would silently keep calling the CPU dispatcher
        raise ValueError(
            f"device_twin({fn.__qualname__}): {', '.join(unused)} not among the globals "
            f"its code reads ({', '.join(sorted(fn.__code__.co_names))}); rename the keys "
            "to the names the CPU function calls"
        )
    env = dict(fn.__globals__)
    env.update(replace)
    twin = types.FunctionType(fn.__code__, env, fn.__name__, fn.__defaults__, fn.__closure__)
    twin.__doc__ = fn.__doc__
    return cuda.jit(device=True)(twin)
