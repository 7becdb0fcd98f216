"""Block-wide reductions of the CUDA kernels (every thread of the block must call them).

Tree reductions over a shared buffer of at least ``blockDim.x`` entries (a power of
two); every thread gets the result.  Shared by the passes of :mod:`rankseg.cuda.rma_passes`,
:mod:`rankseg.cuda.assign`, :mod:`rankseg.cuda.solver_passes` and :mod:`rankseg.cuda.exact`.
"""

from __future__ import annotations

from numba import cuda

__all__ = ["block_argmax", "block_max", "block_scan", "block_sum"]


@cuda.jit(device=True)
def block_sum(buf, val):
    """Sum of ``val`` over the block (tree reduction; every thread gets the total)."""
    tid = cuda.threadIdx.x
    buf[tid] = val
    cuda.syncthreads()
    s = cuda.blockDim.x // 2
    while s > 0:
        if tid < s:
            buf[tid] += buf[tid + s]
        cuda.syncthreads()
        s //= 2
    total = buf[0]
    cuda.syncthreads()  # buf is reused by the next reduction
    return total


@cuda.jit(device=True)
def block_max(buf, val):
    """Maximum of ``val`` over the block (``-block_max(-v)`` gives the minimum)."""
    tid = cuda.threadIdx.x
    buf[tid] = val
    cuda.syncthreads()
    s = cuda.blockDim.x // 2
    while s > 0:
        if tid < s:
            buf[tid] = max(buf[tid], buf[tid + s])
        cuda.syncthreads()
        s //= 2
    total = buf[0]
    cuda.syncthreads()
    return total


@cuda.jit(device=True)
def block_scan(buf, val):
    """Inclusive prefix sum of ``val`` over the threads; returns ``(prefix, total)``."""
    tid = cuda.threadIdx.x
    nt = cuda.blockDim.x
    buf[tid] = val
    cuda.syncthreads()
    off = 1
    while off < nt:
        add = buf[tid - off] if tid >= off else 0.0
        cuda.syncthreads()
        buf[tid] += add
        cuda.syncthreads()
        off *= 2
    res = buf[tid]
    total = buf[nt - 1]
    cuda.syncthreads()
    return res, total


@cuda.jit(device=True)
def block_argmax(buf, ibuf, val, idx):
    """Largest ``val`` over the block and its ``idx`` (the smallest on equal values)."""
    tid = cuda.threadIdx.x
    buf[tid] = val
    ibuf[tid] = idx
    cuda.syncthreads()
    s = cuda.blockDim.x // 2
    while s > 0:
        if tid < s:
            vo = buf[tid + s]
            io = ibuf[tid + s]
            if vo > buf[tid] or (vo == buf[tid] and io < ibuf[tid]):
                buf[tid] = vo
                ibuf[tid] = io
        cuda.syncthreads()
        s //= 2
    rv = buf[0]
    ri = ibuf[0]
    cuda.syncthreads()
    return rv, ri
