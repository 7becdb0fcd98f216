"""GPU pass for the whole-row summary of the solvers (twin of ``exact.row_summary``).

:func:`summary_kernel` gives, per (row, tile), the sums ``[mu, var, m3, P_1, ...,
P_K]`` of the tile's pixels (``var = sum p (1 - p)``, ``m3 = sum p (1 - p) (1 - 2 p)``,
``P_k = sum p**k``, ``K = NPOW``); the tiles are folded in a fixed order by
:func:`rankseg.cuda.select.reduce_parts_kernel`.  The sums are taken in another
order than on the CPU, so they may differ in the last bits.
"""

from __future__ import annotations

from numba import cuda, float64

from rankseg.cuda._config import MAX_THREADS
from rankseg.cuda._dtype import as_f64
from rankseg.cuda.select import block_sum, tile_of
from rankseg.kernels.exact import DEFAULT_NPOW

__all__ = ["NPOW", "NSUM", "summary_kernel"]

#: power sums kept (the CPU solvers' default)
NPOW = DEFAULT_NPOW
#: columns of a tile's partial summary
NSUM = 3 + NPOW


@cuda.jit
def summary_kernel(x, tile, part):
    """``part[r, k]`` = ``(sum p, sum p(1-p), sum p(1-p)(1-2p), P_1..P_K)`` of tile ``k``."""
    acc = cuda.local.array(NSUM, float64)
    buf = cuda.shared.array(MAX_THREADS, float64)
    tid = cuda.threadIdx.x
    nt = cuda.blockDim.x
    nrow, d = x.shape
    ntile = part.shape[1]
    for w in range(cuda.blockIdx.x, nrow * ntile, cuda.gridDim.x):
        r, k, j0, j1 = tile_of(w, ntile, tile, d)
        for c in range(NSUM):
            acc[c] = 0.0
        for j in range(j0 + tid, j1, nt):
            p = as_f64(x[r, j])
            v = p * (1.0 - p)
            acc[0] += p
            acc[1] += v
            acc[2] += v * (1.0 - 2.0 * p)
            t = p
            for kk in range(NPOW):
                acc[3 + kk] += t
                t *= p
        for c in range(NSUM):
            s = block_sum(buf, acc[c])
            if tid == 0:
                part[r, k, c] = s
