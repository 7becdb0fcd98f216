"""GPU rank-search plumbing for RMA: the twin of ``rankseg/kernels/rma_passes.py``.

The first pass, the tiling of the rows and the layout of the per-row device record
``rowd`` are in :mod:`rankseg.cuda.stats` (:func:`row_stats_kernel`,
:func:`row_setup_kernel`); this module holds the passes after it:

* :func:`band_kernel`: with the bounds ``(lo, hi)`` of each active row, counts the
  band ``lo < p < hi``, sums the forced set ``p >= hi`` and appends the band values
  to the row's slice of one buffer (an integer atomic per tile reserves the space;
  the order inside a row does not matter since the band is sorted next);
* :func:`cut_kernel`: one block per active row folds the band partials, sorts the
  band in descending order (bitonic network in shared memory for short bands; for
  long ones a counting sort into value buckets, each bucket then sorted on its own),
  then scans the objective in parallel (block prefix sums, objective per prefix,
  first maximizer by a block reduction) and writes the cut ``(tau, t, score, k_in,
  full)`` as the CPU's ``solve_band`` does, and ``jcut``;
* :func:`tie_count_kernel`: where a tie straddles the cut, counts the tied pixels
  per tile so the host finds the ``k_in``-th one in flat order (the CPU's ``jcut``).

Sums are block-tree reductions, so μ and the forced sum may differ from the CPU's
in the last bits: the backends agree exactly except on numerical ties of the
objective (docs/gpu.rst, tests/cuda).
"""

from __future__ import annotations

import math

from numba import cuda, float64, int32, int64

from rankseg.cuda._block import block_argmax, block_max, block_scan, block_sum
from rankseg.cuda._config import (
    BUCKETS,
    MAX_SORT_THREADS,
    MAX_THREADS,
    SHARED_SORT_CAPACITY,
    SHORT_BUCKET,
)
from rankseg.cuda._dtype import as_f64
from rankseg.cuda.rma import rma_objective
from rankseg.cuda.stats import (
    BAND_FORCED_N,
    BAND_FORCED_NEG_MIN,
    BAND_FORCED_SUM,
    BAND_N,
    R_ACTIVE,
    R_BANDN,
    R_FULL,
    R_HI,
    R_KIN,
    R_LO,
    R_OVER,
    R_SCORE,
    R_T,
    R_TAU,
    STAT_MU,
    fold_column,
    load4,
    tile_of,
)

__all__ = [
    "band_kernel",
    "bucket_sort_desc",
    "cut_kernel",
    "insertion_sort_desc",
    "sort_desc",
    "tie_count_kernel",
]


@cuda.jit(device=True)
def _band_step(v, lo, hi, nb, nf, sf, neg_min):
    if v >= hi:
        nf += 1.0
        sf += v
        neg_min = max(neg_min, -v)
    elif v > lo:
        nb += 1
    return nb, nf, sf, neg_min


@cuda.jit
def band_kernel(x, rows, rowd, tile, start, cap, fill, values, part):
    """Band and forced set of tile ``k`` of row ``r = rows[i]``.

    ``part[i, k]`` gets the ``BAND_*`` columns; the band values ``lo < p < hi``
    (``rowd[r, R_LO]``, ``rowd[r, R_HI]``) go to ``values[start[i] + pos]`` for the
    positions ``pos < cap[i]`` reserved by ``fill[i]`` (an integer atomic per tile).
    A row whose band is longer than ``cap[i]`` is cut short; the cut kernel marks it
    and the host gathers it again.  Inactive rows are skipped (empty partials).
    """
    buf = cuda.shared.array(MAX_THREADS, float64)
    cnt = cuda.shared.array(2, int64)
    tid = cuda.threadIdx.x
    nt = cuda.blockDim.x
    d = x.shape[1]
    ntile = part.shape[1]
    for w in range(cuda.blockIdx.x, rows.shape[0] * ntile, cuda.gridDim.x):
        i, k, j0, j1 = tile_of(w, ntile, tile, d)
        r = rows[i]
        if rowd[r, R_ACTIVE] == 0.0:  # the same for the whole block
            if tid == 0:
                part[i, k, BAND_N] = 0.0
                part[i, k, BAND_FORCED_N] = 0.0
                part[i, k, BAND_FORCED_SUM] = 0.0
                part[i, k, BAND_FORCED_NEG_MIN] = -math.inf
            continue
        lo = rowd[r, R_LO]
        hi = rowd[r, R_HI]
        if tid == 0:
            cnt[0] = 0
        cuda.syncthreads()
        nb = 0
        nf = 0.0
        sf = 0.0
        neg_min = -math.inf
        j = j0 + tid
        while j + 3 * nt < j1:
            v0, v1, v2, v3 = load4(x, r, j, nt)
            nb, nf, sf, neg_min = _band_step(v0, lo, hi, nb, nf, sf, neg_min)
            nb, nf, sf, neg_min = _band_step(v1, lo, hi, nb, nf, sf, neg_min)
            nb, nf, sf, neg_min = _band_step(v2, lo, hi, nb, nf, sf, neg_min)
            nb, nf, sf, neg_min = _band_step(v3, lo, hi, nb, nf, sf, neg_min)
            j += 4 * nt
        while j < j1:
            nb, nf, sf, neg_min = _band_step(as_f64(x[r, j]), lo, hi, nb, nf, sf, neg_min)
            j += nt
        mine = cuda.atomic.add(cnt, 0, nb)  # this thread's offset inside the tile
        cuda.syncthreads()
        if tid == 0:
            cnt[1] = cuda.atomic.add(fill, i, cnt[0])  # the tile's offset inside the row
        cuda.syncthreads()
        pos = cnt[1] + mine
        if nb > 0:
            base = start[i]
            limit = cap[i]
            for j in range(j0 + tid, j1, nt):
                v = as_f64(x[r, j])
                if v > lo and v < hi:
                    if pos < limit:
                        values[base + pos] = v + 0.0  # -0.0 stored as +0.0, as on the CPU
                    pos += 1
        nf = block_sum(buf, nf)
        sf = block_sum(buf, sf)
        neg_min = block_max(buf, neg_min)
        if tid == 0:
            part[i, k, BAND_N] = cnt[0]
            part[i, k, BAND_FORCED_N] = nf
            part[i, k, BAND_FORCED_SUM] = sf
            part[i, k, BAND_FORCED_NEG_MIN] = neg_min


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
def scan_band(vals, n, nf, sf, mu, metric, gamma, buf, ibuf):
    """First maximizer of ``F`` over the prefixes ending in the sorted band, by the block.

    The prefixes are taken ``blockDim`` at a time: a block prefix sum gives their
    sums (after the forced sum ``sf`` and the earlier chunks), every thread
    evaluates one, and a block reduction keeps the first maximizer.  Returns
    ``(best, q)``: the best objective and the band index of the last selected value
    (``-1``: the forced set alone is best).
    """
    tid = cuda.threadIdx.x
    nt = cuda.blockDim.x
    best = rma_objective(metric, sf, nf, mu, gamma)
    best_q = int64(-1)
    carry = sf
    for base in range(0, n, nt):
        q = base + tid
        v = vals[q] if q < n else 0.0
        pre, total = block_scan(buf, v)
        f = -math.inf
        if q < n:
            f = rma_objective(metric, carry + pre, nf + q + 1, mu, gamma)
        fq, qq = block_argmax(buf, ibuf, f, int64(q))
        if fq > best:
            best = fq
            best_q = qq
        carry += total
    return best, best_q


@cuda.jit(device=True)
def count_above(buf, vals, n, t):
    """How many of ``vals[:n]`` exceed ``t`` (block reduction)."""
    c = 0.0
    for q in range(cuda.threadIdx.x, n, cuda.blockDim.x):
        if vals[q] > t:
            c += 1.0
    return int64(block_sum(buf, c))


@cuda.jit(device=True)
def insertion_sort_desc(a, lo, hi):
    """Sort ``a[lo:hi]`` in descending order, by one thread (short runs)."""
    for q in range(lo + 1, hi):
        v = a[q]
        p = q - 1
        while p >= lo and a[p] < v:
            a[p + 1] = a[p]
            p -= 1
        a[p + 1] = v


@cuda.jit(device=True)
def bucket_sort_desc(src, dst, n, fill, buf):
    """Sort ``src[:n]`` into ``dst[:n]`` in descending order, by the whole block.

    A counting sort into ``BUCKETS`` equal-width value buckets between the band's
    minimum and maximum (a monotone bucket index, so equal values share a bucket),
    then each bucket is sorted: short ones by one thread (insertion sort), long ones
    by the block (bitonic network).  ``fill`` is a shared int32 array of
    ``BUCKETS``; ``buf`` the block's reduction buffer.
    """
    tid = cuda.threadIdx.x
    nt = cuda.blockDim.x
    vmax = -math.inf
    neg_min = -math.inf
    for q in range(tid, n, nt):
        v = src[q]
        vmax = max(vmax, v)
        neg_min = max(neg_min, -v)
    vmax = block_max(buf, vmax)
    vmin = -block_max(buf, neg_min)
    if not vmax > vmin:  # every value equal: already sorted
        for q in range(tid, n, nt):
            dst[q] = src[q]
        cuda.syncthreads()
        return
    nbk = min(BUCKETS, max(1, n // 4))
    span = vmax - vmin
    for k in range(tid, nbk, nt):
        fill[k] = 0
    cuda.syncthreads()
    for q in range(tid, n, nt):
        k = nbk - 1 - min(nbk - 1, int32((src[q] - vmin) / span * nbk))  # descending
        cuda.atomic.add(fill, k, 1)
    cuda.syncthreads()
    # exclusive prefix sum of the counts: each thread owns a contiguous run of buckets
    per = (nbk + nt - 1) // nt
    k0 = min(nbk, tid * per)
    k1 = min(nbk, k0 + per)
    own = 0
    for k in range(k0, k1):
        own += fill[k]
    incl, _ = block_scan(buf, float64(own))
    acc = int32(incl) - own
    for k in range(k0, k1):
        c = fill[k]
        fill[k] = acc
        acc += c
    cuda.syncthreads()
    for q in range(tid, n, nt):
        v = src[q]
        k = nbk - 1 - min(nbk - 1, int32((v - vmin) / span * nbk))
        dst[cuda.atomic.add(fill, k, 1)] = v
    cuda.syncthreads()
    # fill[k] is now the end of bucket k, i.e. the start of bucket k + 1
    for k in range(tid, nbk, nt):
        b0 = fill[k - 1] if k > 0 else 0
        if fill[k] - b0 <= SHORT_BUCKET:
            insertion_sort_desc(dst, b0, fill[k])
    cuda.syncthreads()
    for k in range(nbk):  # uniform over the block: the long buckets, one at a time
        b0 = fill[k - 1] if k > 0 else 0
        m = fill[k] - b0
        if m > SHORT_BUCKET:
            sort_desc(dst[b0 : b0 + m], m)
    cuda.syncthreads()


@cuda.jit
def cut_kernel(values, rows, start, cap, part, scratch, params, rowd, jcut):
    """Cut of each active row ``r = rows[i]`` from its band ``values[start[i]:start[i] + n]``.

    The block folds the row's band partials ``part[i]`` of :func:`band_kernel`
    (``n`` is the band length); a band longer than ``cap[i]`` was cut short: the row
    gets ``R_OVER = 1`` and nothing else.  ``params = (metric, gamma, shared_sort,
    d)``: bands of at most ``shared_sort`` values are sorted in shared memory, longer
    ones by :func:`bucket_sort_desc` into ``scratch[start[i]:start[i] + n]``.  Writes
    ``R_TAU, R_T, R_SCORE, R_KIN, R_FULL, R_BANDN`` of ``rowd[r]`` and ``jcut[r]``
    (-1: empty, ``d``: every pixel equal to ``t`` is selected, -2: a tie straddles the
    cut, located by the host).
    """
    sh = cuda.shared.array(SHARED_SORT_CAPACITY, float64)
    fill = cuda.shared.array(BUCKETS, int32)
    buf = cuda.shared.array(MAX_SORT_THREADS, float64)
    ibuf = cuda.shared.array(MAX_SORT_THREADS, int64)
    metric, gamma, shared_sort, d = params
    tid = cuda.threadIdx.x
    for i in range(cuda.blockIdx.x, rows.shape[0], cuda.gridDim.x):
        r = rows[i]
        if rowd[r, R_ACTIVE] == 0.0:  # the same for the whole block
            continue
        n = int64(fold_column(buf, part, i, BAND_N, False))
        nf = int64(fold_column(buf, part, i, BAND_FORCED_N, False))
        sf = fold_column(buf, part, i, BAND_FORCED_SUM, False)
        neg_min = fold_column(buf, part, i, BAND_FORCED_NEG_MIN, True)
        if n > cap[i]:
            if tid == 0:
                rowd[r, R_BANDN] = n
                rowd[r, R_OVER] = 1.0
            cuda.syncthreads()
            continue
        a = start[i]
        if n <= shared_sort:
            for q in range(tid, n, cuda.blockDim.x):
                sh[q] = values[a + q]
            cuda.syncthreads()
            vals = sh[:n]
            sort_desc(vals, n)
            best, q = scan_band(vals, n, nf, sf, rowd[r, STAT_MU], metric, gamma, buf, ibuf)
            t, k_in, full = _cut_at(vals, n, q, nf, neg_min, buf)
        else:
            svals = scratch[a : a + n]
            bucket_sort_desc(values[a : a + n], svals, n, fill, buf)
            best, q = scan_band(svals, n, nf, sf, rowd[r, STAT_MU], metric, gamma, buf, ibuf)
            t, k_in, full = _cut_at(svals, n, q, nf, neg_min, buf)
        tau = nf + q + 1
        if tid == 0:
            rowd[r, R_TAU] = tau
            rowd[r, R_T] = t
            rowd[r, R_SCORE] = best
            rowd[r, R_KIN] = k_in
            rowd[r, R_FULL] = 1.0 if full else 0.0
            rowd[r, R_BANDN] = n
            rowd[r, R_OVER] = 0.0
            jcut[r] = -1 if tau == 0 else (d if full else -2)
        cuda.syncthreads()  # shared buffers are rewritten for the next row


@cuda.jit(device=True)
def _cut_at(vals, n, q, nf, neg_min, buf):
    """``(t, k_in, full)`` of the cut after band index ``q`` (-1: the forced set alone)."""
    if q >= 0:
        t = float64(vals[q])
        full = q == n - 1 or vals[q + 1] != t
        k_in = int64(0)
        if not full:
            k_in = q + 1 - count_above(buf, vals, n, t)
        return t, k_in, full
    t = -neg_min if nf > 0 else math.inf
    return t, int64(0), True


@cuda.jit
def tie_count_kernel(x, rows, tval, tile, part):
    """``part[i, k]``: pixels of tile ``k`` of row ``rows[i]`` equal to ``tval[i]``."""
    buf = cuda.shared.array(MAX_THREADS, float64)
    tid = cuda.threadIdx.x
    nt = cuda.blockDim.x
    d = x.shape[1]
    ntile = part.shape[1]
    for w in range(cuda.blockIdx.x, rows.shape[0] * ntile, cuda.gridDim.x):
        i, k, j0, j1 = tile_of(w, ntile, tile, d)
        r = rows[i]
        t = tval[i]
        c = 0.0
        for j in range(j0 + tid, j1, nt):
            if as_f64(x[r, j]) == t:
                c += 1.0
        c = block_sum(buf, c)
        if tid == 0:
            part[i, k, 0] = c
