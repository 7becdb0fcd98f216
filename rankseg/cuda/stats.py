"""GPU row statistics for RMA and the other solvers: the first pass over the input.

The passes over the input cut every row into tiles (:func:`tile_of`; the tile size
comes from :func:`rankseg.cuda._config.launch_tiles`) and give each block one (row,
tile) work item per grid-stride step, so that a volume with few long rows (one CT,
14 classes) still spreads over every multiprocessor; threads read consecutive
pixels (coalesced), four per step (:func:`load4`).  Each tile writes its partial
results (sums, counts, maxima) to a ``part[row, tile, column]`` array that is folded
per row in a fixed order (:func:`fold_column`), so every result is deterministic for
a given tile size (no floating-point atomics).  Per-row results live in the device
record ``rowd`` (``STAT_*`` and ``R_*`` columns, laid out here for every pass).

* :func:`row_stats_kernel`: μ, maximum, count and sum of ``p >= 1/2``, and the
  number of invalid values (NaN, inf, outside [0, 1]), per tile;
* :func:`row_setup_kernel`: folds them into ``rowd``, marks the active rows and
  computes their bounds (device twins of the CPU's ``rma_bounds``, or of the other
  solvers' ``candidate_bound``).

The band and cut passes that follow are in :mod:`rankseg.cuda.rma_passes`.
"""

from __future__ import annotations

import math

from numba import cuda, float64, int64

from rankseg.cuda._block import block_max, block_sum
from rankseg.cuda._config import MAX_THREADS
from rankseg.cuda._dtype import as_f64
from rankseg.cuda.rma import rma_bounds
from rankseg.cuda.solver_passes import candidate_bound

__all__ = [
    "BAND_FORCED_N",
    "BAND_FORCED_NEG_MIN",
    "BAND_FORCED_SUM",
    "BAND_N",
    "CUT_FULL",
    "CUT_KIN",
    "CUT_TAU",
    "NBAND",
    "NROWD",
    "NSTAT",
    "R_ACTIVE",
    "R_BANDN",
    "R_FULL",
    "R_HI",
    "R_JCUT",
    "R_KIN",
    "R_LO",
    "R_OVER",
    "R_SCORE",
    "R_T",
    "R_TAU",
    "STAT_BAD",
    "STAT_MAX",
    "STAT_MU",
    "STAT_NHALF",
    "STAT_SHALF",
    "fold_column",
    "load4",
    "reduce_parts_kernel",
    "row_setup_kernel",
    "row_stats_kernel",
    "tile_of",
]

# columns of the per-row stats (same order as the CPU's STAT_*, plus validity)
STAT_MU = 0
STAT_MAX = 1
STAT_NHALF = 2
STAT_SHALF = 3
STAT_BAD = 4
NSTAT = 5
# columns of the per-row device record ``rowd`` (float64): the folded stats (same
# columns), then what the setup and cut kernels decide; ``jcut`` is its own int64 array
R_ACTIVE = 5  # 1: the row is solved (valid, not pruned), 0: empty mask
R_LO = 6  # screening bounds of an active row
R_HI = 7
R_TAU = 8  # the cut: tau, t (inf: nothing selected), score, k_in, full
R_T = 9
R_SCORE = 10
R_KIN = 11
R_FULL = 12
R_BANDN = 13  # band length
R_OVER = 14  # 1: the band did not fit its buffer (gathered again by the host)
R_JCUT = 15  # room for the host's copy of jcut (the device keeps its own int64 array)
NROWD = 16
# columns of the per-active-row band results
BAND_N = 0
BAND_FORCED_N = 1
BAND_FORCED_SUM = 2
BAND_FORCED_NEG_MIN = 3  # -min of the forced set (a maximum, like every non-sum)
NBAND = 4
# integer columns of the cut (the float columns are t and the score)
CUT_TAU = 0
CUT_KIN = 1
CUT_FULL = 2


@cuda.jit(device=True)
def tile_of(w, ntile, tile, d):
    """Row, tile and pixel range ``[j0, j1)`` of the (row, tile) work item ``w``."""
    r = w // ntile
    k = w - r * ntile
    j0 = k * tile
    return r, k, j0, min(d, j0 + tile)


@cuda.jit(device=True)
def load4(x, r, j, nt):
    """``x[r, j + i nt]`` for ``i = 0..3`` as float64: four independent loads in flight."""
    return (
        as_f64(x[r, j]),
        as_f64(x[r, j + nt]),
        as_f64(x[r, j + 2 * nt]),
        as_f64(x[r, j + 3 * nt]),
    )


@cuda.jit(device=True)
def fold_column(buf, part, r, c, is_max):
    """Sum (or maximum) of ``part[r, :, c]`` over the tiles, by the block (fixed order)."""
    tid = cuda.threadIdx.x
    nt = cuda.blockDim.x
    ntile = part.shape[1]
    if is_max:
        acc = -math.inf
        for k in range(tid, ntile, nt):
            acc = max(acc, part[r, k, c])
        return block_max(buf, acc)
    acc = 0.0
    for k in range(tid, ntile, nt):
        acc += part[r, k, c]
    return block_sum(buf, acc)


@cuda.jit
def reduce_parts_kernel(part, max_mask, out):
    """``out[r, c]``: sum of ``part[r, :, c]`` (maximum where bit ``c`` of ``max_mask`` is set)."""
    buf = cuda.shared.array(MAX_THREADS, float64)
    nrow, _, ncol = part.shape
    for r in range(cuda.blockIdx.x, nrow, cuda.gridDim.x):
        for c in range(ncol):
            acc = fold_column(buf, part, r, c, (max_mask >> c) & 1)
            if cuda.threadIdx.x == 0:
                out[r, c] = acc


@cuda.jit
def row_setup_kernel(part, params, rowd, fill, jcut):
    """Fold the row statistics of :func:`row_stats_kernel` and set up each row.

    ``params = (metric, gamma, pruning_prob, d, candidates)`` (``metric < 0``: no
    bounds, the accuracy rules).  Writes the ``STAT_*`` columns of ``rowd``,
    ``R_ACTIVE`` (a valid row whose maximum exceeds ``pruning_prob``), the bounds of
    active rows and the empty cut; zeroes ``fill`` and sets ``jcut`` to -1.  The
    bounds are RMA's screening bounds (device twin of the CPU's ``rma_bounds``), or
    with ``candidates`` the other solvers' candidate bound ``(θ, inf)`` (twin of
    ``candidate_bound``: every pixel above ``θ`` is a candidate, none is forced).
    One block per row.
    """
    buf = cuda.shared.array(MAX_THREADS, float64)
    metric, gamma, prune, d, candidates = params
    nrow = part.shape[0]
    for r in range(cuda.blockIdx.x, nrow, cuda.gridDim.x):
        mu = fold_column(buf, part, r, STAT_MU, False)
        mx = fold_column(buf, part, r, STAT_MAX, True)
        nh = fold_column(buf, part, r, STAT_NHALF, False)
        sh = fold_column(buf, part, r, STAT_SHALF, False)
        bad = fold_column(buf, part, r, STAT_BAD, False)
        if cuda.threadIdx.x == 0:
            rowd[r, STAT_MU] = mu
            rowd[r, STAT_MAX] = mx
            rowd[r, STAT_NHALF] = nh
            rowd[r, STAT_SHALF] = sh
            rowd[r, STAT_BAD] = bad
            active = bad == 0.0 and mx > prune and metric >= 0
            rowd[r, R_ACTIVE] = 1.0 if active else 0.0
            lo = 2.0
            hi = 2.0
            if active and candidates:
                lo = candidate_bound(metric, mu, gamma, d, mx, int64(nh), sh)
                hi = math.inf
            elif active:
                lo, hi = rma_bounds(metric, mu, gamma, d, mx, int64(nh), sh)
            rowd[r, R_LO] = lo
            rowd[r, R_HI] = hi
            rowd[r, R_TAU] = 0.0
            rowd[r, R_T] = math.inf
            rowd[r, R_SCORE] = 0.0
            rowd[r, R_KIN] = 0.0
            rowd[r, R_FULL] = 1.0
            rowd[r, R_BANDN] = 0.0
            rowd[r, R_OVER] = 0.0
            fill[r] = 0
            jcut[r] = -1


@cuda.jit(device=True)
def _stat_step(v, s, sh, nh, bad, mx):
    if not (v >= 0.0 and v <= 1.0):  # NaN fails both comparisons
        bad += 1.0
    s += v
    if v >= 0.5:
        sh += v
        nh += 1.0
    return s, sh, nh, bad, max(mx, v)


@cuda.jit
def row_stats_kernel(x, tile, part):
    """``part[r, k]`` = (sum, max, n_half, s_half, n_bad) of tile ``k`` of row ``r``.

    Each thread reads four pixels per step (``j, j + nt, j + 2 nt, j + 3 nt``: four
    loads in flight) and adds them in that order, so the sums are those of the plain
    strided loop.
    """
    buf = cuda.shared.array(MAX_THREADS, float64)
    tid = cuda.threadIdx.x
    nt = cuda.blockDim.x
    nrow, d = x.shape
    ntile = part.shape[1]
    for w in range(cuda.blockIdx.x, nrow * ntile, cuda.gridDim.x):
        r, k, j0, j1 = tile_of(w, ntile, tile, d)
        s = 0.0
        sh = 0.0
        nh = 0.0
        bad = 0.0
        mx = -math.inf
        j = j0 + tid
        while j + 3 * nt < j1:
            v0, v1, v2, v3 = load4(x, r, j, nt)
            s, sh, nh, bad, mx = _stat_step(v0, s, sh, nh, bad, mx)
            s, sh, nh, bad, mx = _stat_step(v1, s, sh, nh, bad, mx)
            s, sh, nh, bad, mx = _stat_step(v2, s, sh, nh, bad, mx)
            s, sh, nh, bad, mx = _stat_step(v3, s, sh, nh, bad, mx)
            j += 4 * nt
        while j < j1:
            s, sh, nh, bad, mx = _stat_step(as_f64(x[r, j]), s, sh, nh, bad, mx)
            j += nt
        s = block_sum(buf, s)
        sh = block_sum(buf, sh)
        nh = block_sum(buf, nh)
        bad = block_sum(buf, bad)
        mx = block_max(buf, mx)
        if tid == 0:
            part[r, k, STAT_MU] = s
            part[r, k, STAT_MAX] = mx
            part[r, k, STAT_NHALF] = nh
            part[r, k, STAT_SHALF] = sh
            part[r, k, STAT_BAD] = bad
