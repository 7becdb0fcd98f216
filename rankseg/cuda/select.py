"""GPU rank-search plumbing for RMA: the twin of ``rankseg/kernels/select.py``.

One block per row (grid-stride over rows) for everything that reduces a row:

* :func:`row_stats_kernel`: μ, maximum, count and sum of ``p >= 1/2``, and the
  number of invalid values (NaN, inf, outside [0, 1]) by block reductions;
* :func:`band_kernel`: screening bounds ``(lo, hi)`` (device twin of
  ``rma_bounds``), band size, forced count, sum and minimum;
* :func:`gather_kernel`: the band ``lo < p < hi`` into an exactly sized buffer
  (each thread owns a contiguous slice of the row, so the gather keeps flat order);
* :func:`cut_kernel`: sorts the band in descending order (bitonic network, in shared
  memory for short bands), scans the objective for the first maximizer, and locates
  the tie cut, giving the same cut ``(t, jcut)`` as the CPU.

Sums are block-tree reductions, so μ and the forced sum may differ from the CPU's
in the last bits: the backends agree exactly except on numerical ties of the
objective (docs/gpu.rst, tests/cuda).
"""

from __future__ import annotations

import math

from numba import cuda, float64, int64

from rankseg.cuda._config import MAX_THREADS, SHARED_SORT_CAPACITY
from rankseg.cuda._dtype import as_f64
from rankseg.cuda.rma import rma_bounds, rma_objective

__all__ = [
    "BAND_FORCED_MIN",
    "BAND_FORCED_N",
    "BAND_FORCED_SUM",
    "BAND_HI",
    "BAND_LO",
    "BAND_MU",
    "BAND_N",
    "block_max",
    "block_sum",
    "band_kernel",
    "cut_kernel",
    "gather_kernel",
    "row_stats_kernel",
    "sort_desc",
]

# columns of the per-row stats array (same order as the CPU's STAT_*, plus validity)
STAT_MU = 0
STAT_MAX = 1
STAT_NHALF = 2
STAT_SHALF = 3
STAT_BAD = 4
NSTAT = 5
# columns of the per-active-row band array
BAND_LO = 0
BAND_HI = 1
BAND_N = 2
BAND_FORCED_N = 3
BAND_FORCED_SUM = 4
BAND_FORCED_MIN = 5
BAND_MU = 6
NBAND = 7


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
def exclusive_scan_counts(cnt):
    """In-place exclusive prefix sum of ``cnt[:blockDim]`` (thread 0 serially)."""
    if cuda.threadIdx.x == 0:
        acc = 0
        for k in range(cuda.blockDim.x):
            c = cnt[k]
            cnt[k] = acc
            acc += c
    cuda.syncthreads()


@cuda.jit
def row_stats_kernel(x, stats):
    """Per row ``r`` of ``x`` (R, d): ``stats[r] = (μ, max, n_half, s_half, n_bad)``."""
    buf = cuda.shared.array(MAX_THREADS, float64)
    tid = cuda.threadIdx.x
    nt = cuda.blockDim.x
    d = x.shape[1]
    for r in range(cuda.blockIdx.x, x.shape[0], cuda.gridDim.x):
        s = 0.0
        sh = 0.0
        nh = 0.0
        bad = 0.0
        mx = -math.inf
        for j in range(tid, d, nt):
            v = as_f64(x[r, j])
            if not (v >= 0.0 and v <= 1.0):  # NaN fails both comparisons
                bad += 1.0
            s += v
            if v >= 0.5:
                sh += v
                nh += 1.0
            mx = max(mx, v)
        s = block_sum(buf, s)
        sh = block_sum(buf, sh)
        nh = block_sum(buf, nh)
        bad = block_sum(buf, bad)
        mx = block_max(buf, mx)
        if tid == 0:
            stats[r, STAT_MU] = s
            stats[r, STAT_MAX] = mx
            stats[r, STAT_NHALF] = nh
            stats[r, STAT_SHALF] = sh
            stats[r, STAT_BAD] = bad


@cuda.jit
def band_kernel(x, rows, stats, params, band):
    """Screening bounds, band size and forced set of each active row.

    ``params = (metric, gamma)``; ``band[i]`` gets the ``BAND_*`` columns of row
    ``rows[i]``.
    """
    buf = cuda.shared.array(MAX_THREADS, float64)
    bounds = cuda.shared.array(2, float64)
    metric, gamma = params
    tid = cuda.threadIdx.x
    nt = cuda.blockDim.x
    d = x.shape[1]
    for i in range(cuda.blockIdx.x, rows.shape[0], cuda.gridDim.x):
        r = rows[i]
        if tid == 0:
            lo, hi = rma_bounds(
                metric,
                stats[r, STAT_MU],
                gamma,
                d,
                stats[r, STAT_MAX],
                int64(stats[r, STAT_NHALF]),
                stats[r, STAT_SHALF],
            )
            bounds[0] = lo
            bounds[1] = hi
        cuda.syncthreads()
        lo = bounds[0]
        hi = bounds[1]
        nb = 0.0
        nf = 0.0
        sf = 0.0
        neg_min = -math.inf
        for j in range(tid, d, nt):
            v = as_f64(x[r, j])
            if v >= hi:
                nf += 1.0
                sf += v
                neg_min = max(neg_min, -v)
            elif v > lo:
                nb += 1.0
        nb = block_sum(buf, nb)
        nf = block_sum(buf, nf)
        sf = block_sum(buf, sf)
        neg_min = block_max(buf, neg_min)
        if tid == 0:
            band[i, BAND_LO] = lo
            band[i, BAND_HI] = hi
            band[i, BAND_N] = nb
            band[i, BAND_FORCED_N] = nf
            band[i, BAND_FORCED_SUM] = sf
            band[i, BAND_FORCED_MIN] = -neg_min if nf > 0 else math.inf
            band[i, BAND_MU] = stats[r, STAT_MU]
        cuda.syncthreads()  # bounds is rewritten for the next row


@cuda.jit
def gather_kernel(x, rows, band, start, values):
    """Gather row ``rows[i]``'s band into ``values[start[i]:start[i + 1]]`` in flat order."""
    cnt = cuda.shared.array(MAX_THREADS, int64)
    tid = cuda.threadIdx.x
    nt = cuda.blockDim.x
    d = x.shape[1]
    per = (d + nt - 1) // nt
    j0 = min(d, tid * per)
    j1 = min(d, j0 + per)
    for i in range(cuda.blockIdx.x, rows.shape[0], cuda.gridDim.x):
        r = rows[i]
        lo = band[i, BAND_LO]
        hi = band[i, BAND_HI]
        c = 0
        for j in range(j0, j1):
            v = as_f64(x[r, j])
            if v > lo and v < hi:
                c += 1
        cnt[tid] = c
        cuda.syncthreads()
        exclusive_scan_counts(cnt)
        pos = start[i] + cnt[tid]
        for j in range(j0, j1):
            v = as_f64(x[r, j])
            if v > lo and v < hi:
                values[pos] = v + 0.0  # -0.0 stored as +0.0, as on the CPU
                pos += 1
        cuda.syncthreads()  # cnt is rewritten for the next row


@cuda.jit(device=True)
def sort_desc(a, n):
    """Sort ``a[:n]`` in descending order in place, by the whole block.

    A bitonic network in its "flip" form (every comparator moves the larger value
    to the lower index), which sorts any ``n``: comparators reaching past ``n`` are
    skipped, exactly as if the array were padded with ``-inf``.
    """
    tid = cuda.threadIdx.x
    nt = cuda.blockDim.x
    size = 1
    while size < n:
        size *= 2
    k = 2
    while k <= size:
        half = k // 2
        for q in range(tid, size // 2, nt):
            blk = q // half
            off = q - blk * half
            lo = blk * k + off
            hi = blk * k + k - 1 - off
            if hi < n and a[hi] > a[lo]:
                tmp = a[lo]
                a[lo] = a[hi]
                a[hi] = tmp
        cuda.syncthreads()
        j = half // 2
        while j > 0:
            for q in range(tid, size // 2, nt):
                blk = q // j
                lo = blk * 2 * j + (q - blk * j)
                hi = lo + j
                if hi < n and a[hi] > a[lo]:
                    tmp = a[lo]
                    a[lo] = a[hi]
                    a[hi] = tmp
            cuda.syncthreads()
            j //= 2
        k *= 2


@cuda.jit(device=True)
def scan_band(vals, n, forced, mu, metric, gamma):
    """First maximizer of ``F`` over the prefixes ending in the sorted band.

    Same scan as the CPU's ``solve_band`` (sums in descending order after the
    forced sum).  Returns ``(tau, t, score, k_in, full)``.
    """
    nf, sf, mf = forced
    best = rma_objective(metric, sf, nf, mu, gamma)
    best_tau = nf
    best_t = mf
    best_kin = 0
    full = True
    s = sf
    tau = nf
    run = 0
    for q in range(n):
        v = vals[q]
        if q > 0 and vals[q - 1] == v:
            run += 1
        else:
            run = 1
        s += v
        tau += 1
        f = rma_objective(metric, s, tau, mu, gamma)
        if f > best:
            best = f
            best_tau = tau
            best_t = v
            best_kin = run
            full = q == n - 1 or vals[q + 1] != v
    return best_tau, best_t, best, best_kin, full


@cuda.jit
def cut_kernel(x, rows, band, start, values, params, cut_i, cut_f):
    """Cut ``(tau, jcut)`` / ``(t, score)`` of each active row from its band.

    ``params = (metric, gamma, shared_sort)``: bands of at most ``shared_sort``
    values are copied to shared memory and sorted there, longer ones are sorted
    in place in ``values``.
    """
    sh = cuda.shared.array(SHARED_SORT_CAPACITY, float64)
    cnt = cuda.shared.array(MAX_THREADS, int64)
    res_i = cuda.shared.array(2, int64)
    res_f = cuda.shared.array(1, float64)
    metric, gamma, shared_sort = params
    tid = cuda.threadIdx.x
    nt = cuda.blockDim.x
    d = x.shape[1]
    per = (d + nt - 1) // nt
    j0 = min(d, tid * per)
    j1 = min(d, j0 + per)
    for i in range(cuda.blockIdx.x, rows.shape[0], cuda.gridDim.x):
        a = start[i]
        n = start[i + 1] - a
        small = n <= shared_sort
        if small:
            for q in range(tid, n, nt):
                sh[q] = values[a + q]
            cuda.syncthreads()
            sort_desc(sh, n)
        else:
            sort_desc(values[a : a + n], n)
        if tid == 0:
            forced = (
                int64(band[i, BAND_FORCED_N]),
                band[i, BAND_FORCED_SUM],
                band[i, BAND_FORCED_MIN],
            )
            mu = band[i, BAND_MU]
            if small:
                res = scan_band(sh, n, forced, mu, metric, gamma)
            else:
                res = scan_band(values[a : a + n], n, forced, mu, metric, gamma)
            tau, t, score, k_in, full = res
            cut_i[i, 0] = tau
            cut_f[i, 1] = score
            if tau == 0:
                cut_f[i, 0] = math.inf
                cut_i[i, 1] = -1
                res_i[0] = 0
            elif full:
                cut_f[i, 0] = t
                cut_i[i, 1] = d
                res_i[0] = 0
            else:
                cut_f[i, 0] = t
                res_i[0] = k_in  # a tie straddles the cut: locate the k_in-th tied pixel
            res_f[0] = t
        cuda.syncthreads()
        k_in = res_i[0]
        tv = res_f[0]
        r = rows[i]
        c = 0
        if k_in > 0:
            for j in range(j0, j1):
                if as_f64(x[r, j]) == tv:
                    c += 1
        cnt[tid] = c
        cuda.syncthreads()
        exclusive_scan_counts(cnt)
        base = cnt[tid]
        if k_in > 0 and base < k_in and k_in <= base + c:
            seen = base
            for j in range(j0, j1):
                if as_f64(x[r, j]) == tv:
                    seen += 1
                    if seen == k_in:
                        cut_i[i, 1] = j
                        break
        cuda.syncthreads()  # shared buffers are rewritten for the next row
