"""Rank-search plumbing shared by every Dice/IoU solver: the compiled passes.

One pass of :func:`rankseg.cpu.launchers.row_stats` streams every row once (sum,
max, validity count, count and sum of ``p >= 1/2``).
:func:`rankseg.cpu.launchers.rma_cuts` then decides, per active row, the cut of the
stable descending order: it gathers only the band of undecided pixels
``lo < p < hi``, sorts that band, scans the objective and returns

* ``tau``: the selected volume τ*, the first maximizer,
* ``t``: the smallest selected probability (``inf`` when τ* = 0),
* ``jcut``: the flat index of the last selected pixel among those equal to ``t``
  (``d`` when every pixel equal to ``t`` is selected, ``-1`` when τ* = 0),
* ``score``: the objective at τ*.

A pixel ``j`` with value ``v`` is then selected iff ``v > t or (v == t and j <= jcut)``,
which is the stable descending order (ties: lower flat index first) without any
index array.  Rows are split into fixed ``chunk``-sized work items so the
partial sums, and hence the results, do not depend on the number of threads.
"""

from __future__ import annotations

import numpy as np

from rankseg._compile.jit import jit
from rankseg._config import COUNT_BLOCK, SKIP_BLOCK, SUB_BLOCK
from rankseg.kernels._dtype import as_f64, as_native, bits_value, native_bounds
from rankseg.kernels._tasks import work_item
from rankseg.kernels.rma import rma_bounds
from rankseg.kernels.rma_scan import scan_bound, scan_cross, scan_start, scan_values
from rankseg.kernels.sort import sort_descending

__all__ = [
    "STAT_MAX",
    "STAT_MU",
    "STAT_NHALF",
    "STAT_SHALF",
    "solve_band",
]

STAT_MU = 0
STAT_MAX = 1
STAT_NHALF = 2
STAT_SHALF = 3
NSTAT = 4
#: bucketing of large bands: at most this many buckets, about this many values each
_MAX_BUCKETS = 4096
_PER_BUCKET = 16


# fastmath={"reassoc"} only: it lets LLVM vectorize the sums (7x faster measured on
# float32 rows); comparisons, NaN and signed-zero semantics are untouched.  The
# summation order is fixed by the compiled code and the fixed work items, so the
# result does not depend on the number of threads.
@jit(fastmath={"reassoc"})
def row_stats_tasks(i0, i1, x, xb, chunk, part, pbits):
    """Work items ``i0 <= task < i1`` of ``cpu.launchers.row_stats`` (a chunk of a row each)."""
    d = x.shape[1]
    nch = (d + chunk - 1) // chunk
    for task in range(i0, i1):
        r, j0, j1 = work_item(task, nch, chunk, d)
        # a row slice starting at 0 lets numba drop negative-index checks, so the
        # loop vectorizes
        row = x[r, j0:j1]
        rowb = xb[r, j0:j1]
        s = 0.0
        sh = 0.0
        nh = 0
        mb = rowb[0]
        for j in range(row.shape[0]):
            v = as_f64(row[j])
            s += v
            sh += v if v >= 0.5 else 0.0
            nh += v >= 0.5
            mb = rowb[j] if rowb[j] > mb else mb
        part[task, 0] = s
        part[task, 1] = 0.0
        part[task, 2] = nh
        part[task, 3] = sh
        pbits[task] = mb


@jit
def solve_band(vals, lo, hi, forced, mu, metric, gamma):
    """First maximizer of the RMA objective over the prefixes that end in the band.

    The band values (unsorted) are bucketed by value; a bucket is sorted and scanned
    only if an upper bound of the objective over its prefixes can reach the best
    value found so far (by a relative margin of 1e-9), else it is crossed in one
    step.  Equal values always share a bucket, so ties are resolved within one.

    Parameters
    ----------
    vals : ndarray of float64
        The band values ``lo < p < hi`` of one row, in any order.
    lo, hi : float
        The screening bounds.
    forced : tuple of (int, float, float)
        Count, sum and minimum of the forced pixels ``p >= hi``.
    mu : float
        Sum of the row.
    metric : int
        ``DICE`` or ``IOU``.
    gamma : float
        Smoothing.

    Returns
    -------
    tau, t, score, k_in, full : int, float, float, int, bool
        τ*, the smallest selected value, ``F(τ*)``, how many selected pixels equal
        ``t``, and whether every pixel equal to ``t`` is selected.
    """
    nb = vals.shape[0]
    nbuck = max(1, min(_MAX_BUCKETS, nb // _PER_BUCKET))
    width = (hi - lo) / nbuck
    cnt = np.zeros(nbuck, dtype=np.int64)
    bsum = np.zeros(nbuck)
    bmin = np.full(nbuck, np.inf)
    bmax = np.full(nbuck, -np.inf)
    idx = np.empty(nb, dtype=np.int32)
    for q in range(nb):
        v = vals[q]
        k = min(nbuck - 1, max(0, np.int64((v - lo) / width))) if nbuck > 1 else 0
        idx[q] = k
        cnt[k] += 1
        bsum[k] += v
        bmin[k] = min(bmin[k], v)
        bmax[k] = max(bmax[k], v)
    # counting sort into buckets (ascending bucket order)
    off = np.empty(nbuck + 1, dtype=np.int64)
    off[0] = 0
    for k in range(nbuck):
        off[k + 1] = off[k] + cnt[k]
    fill = off[:-1].copy()
    sorted_vals = np.empty(nb)
    for q in range(nb):
        k = idx[q]
        sorted_vals[fill[k]] = vals[q]
        fill[k] += 1

    objective = (metric, mu, gamma)
    state = scan_start(forced, objective)
    for k in range(nbuck - 1, -1, -1):
        c = cnt[k]
        if c == 0:
            continue
        if scan_bound(state, c, bmax[k], objective)[1]:
            state = scan_cross(state, c, bsum[k], bmin[k], objective)
            continue
        sort_descending(sorted_vals[off[k] : off[k + 1]])  # this bucket's values: scratch
        state = scan_values(state, sorted_vals, off[k], c, bmax[k], objective)
    return state[3], state[4], state[2], state[5], state[6]


@jit(inline="always")
def block_counts(blk, blkb, a, b, top):
    """Band count, forced count and sum, and smallest forced bit pattern of one block.

    Branch-free, so the loop vectorizes (in a caller compiled with reassociated
    sums): ``blk`` compared in its own float dtype with the bounds ``(a, b)`` of
    :func:`rankseg.kernels._dtype.native_bounds`, 32-bit counters, the minimum
    taken over bit patterns (which order like the values for probabilities in
    [0, 1]; ``top`` when no value is forced).
    """
    # 32-bit lanes (a block holds fewer than 2**31 values): numba widens the sum
    # of two int32 to int64, so each sum is narrowed back
    one = np.int32(1)
    zero = np.int32(0)
    above = zero  # v > a
    nf = zero
    sf = 0.0
    mb = top
    for j in range(blk.shape[0]):
        v = as_native(blk[j])
        forced = v >= b
        above = np.int32(above + (one if v > a else zero))
        nf = np.int32(nf + (one if forced else zero))
        sf += np.float64(v) if forced else 0.0
        fb = blkb[j] if forced else top
        mb = fb if fb < mb else mb
    # a forced value (v >= b > a) lies above a; with a >= b the band is empty
    nb = above - nf if a < b else zero
    return nb, nf, sf, mb


@jit(inline="always")
def largest_pattern(blkb):
    """Return the largest bit pattern of ``blkb`` (at least one value): a vectorized loop."""
    mx = blkb[0]
    for j in range(blkb.shape[0]):
        mx = blkb[j] if blkb[j] > mx else mx
    return mx


@jit  # a call (compiled once), not inlined: two passes use it, and each copy compiles
def gather_chunk(row, a, b, dst, pos):
    """Append the values ``a < v < b`` of ``row`` to ``dst`` from ``pos``, in order.

    Returns the next free position.  The row is read in blocks of ``SKIP_BLOCK``
    values: a block's band count is taken first (branch-free, so it vectorizes) and
    only a block with band values is read again to copy them (a block wholly
    inside the band is copied without a test); the band is a thin layer of the
    row, so most blocks cost one vectorized read.  ``-0.0`` is stored as ``+0.0``.
    """
    n = row.shape[0]
    an, bn = native_bounds(a, b, row)  # the same outcomes in the row's own dtype
    for s in range(0, n, SKIP_BLOCK):
        # a block slice indexed from 0 lets numba drop negative-index checks, so the
        # count vectorizes
        blk = row[s : min(n, s + SKIP_BLOCK)]
        k = 0
        for j in range(blk.shape[0]):
            v = as_native(blk[j])
            k += (v > an) & (v < bn)
        if k == 0:
            continue
        if k == blk.shape[0]:  # a block inside the band (wide bands): a plain copy
            to = dst[pos : pos + k]
            for j in range(k):
                to[j] = as_f64(blk[j]) + 0.0
            pos += k
            continue
        for j in range(blk.shape[0]):
            v = as_f64(blk[j])
            if v > a and v < b:
                dst[pos] = v + 0.0
                pos += 1
    return pos


# fastmath={"reassoc"} only, for the sums of block_counts (see row_stats_tasks)
@jit(fastmath={"reassoc"})
def count_gather_tasks(i0, i1, x, xb, rows, bounds, chunk, out, buffers):
    """Work items ``i0 <= task < i1`` of :func:`rankseg.cpu.launchers.band_values`.

    ``out`` is ``(nband, nforce, sforce, fbits)``: per item the band count, the
    forced count and sum and the smallest forced bit pattern.  ``buffers`` is
    ``(slots, cmax, sbits)``.  An item whose largest value (``cmax``, from the row
    statistics) is at most ``lo`` and below ``hi`` holds neither band nor forced
    values: its counts are those of an empty item, without reading it.  Each other
    item is read once, a sub-block of ``SUB_BLOCK`` values at a time: the
    sub-block's largest bit pattern is taken first (into ``sbits[r, item]``, for the
    mask writer and the multiclass resolution, which
    :func:`rankseg.cpu.launchers.chunk_maxima` decodes; an item not read: 0, +0.0's
    pattern, for every sub-block: its values are at most ``lo``, and a row's cut
    lies above ``lo``).  A sub-block whose largest value is at most ``lo`` and below
    ``hi`` (and whose patterns are those of non-negative values: sign bits clear)
    counts as empty; the others, now in the cache, are counted a block of
    ``COUNT_BLOCK`` values at a time (:func:`block_counts`, vectorized) and their
    band values copied (:func:`gather_chunk`) into the item's own row of ``slots``
    as long as the item's band fits there (an item with more is gathered from the
    input by :func:`place_band_tasks`).  A sub-block passed over would have added
    zeros: the counts and sums are those of every block counted.
    """
    lo, hi = bounds
    slots, cmax, sbits = buffers
    nband, nforce, sforce, fbits = out
    d = x.shape[1]
    nch = (d + chunk - 1) // chunk
    cap = slots.shape[1]
    top = np.iinfo(xb.dtype).max
    positive = top >> 1  # a larger pattern has its sign bit set
    value = np.empty(1, dtype=x.dtype)
    cell = (value, value.view(xb.dtype))  # for bits_value
    for task in range(i0, i1):
        i, j0, j1 = work_item(task, nch, chunk, d)
        m = cmax[rows[i], task % nch]
        nb = 0
        nf = 0
        sf = 0.0
        mb = top
        sub = sbits[rows[i], task % nch]
        for k in range(sub.shape[0]):
            sub[k] = 0
        if not (m <= lo[i] and m < hi[i]):
            row = x[rows[i], j0:j1]
            rowb = xb[rows[i], j0:j1]
            # compared in the row's own float dtype (native_bounds: the same outcomes)
            a, b = native_bounds(lo[i], hi[i], row)
            dst = slots[task]
            n = row.shape[0]
            for s0 in range(0, n, SUB_BLOCK):
                e0 = min(n, s0 + SUB_BLOCK)
                # a loop of its own: inside block_counts' it changed how that loop
                # vectorizes, and so the bits of a float64 map's forced sums
                mx = largest_pattern(rowb[s0:e0])
                sub[s0 // SUB_BLOCK] = np.uint64(mx)
                if mx <= positive:
                    v = bits_value(mx, cell)
                    if v <= lo[i] and v < hi[i]:
                        continue
                # COUNT_BLOCK divides SUB_BLOCK: a sub-block is whole blocks
                for s in range(s0, e0, COUNT_BLOCK):
                    e = min(e0, s + COUNT_BLOCK)
                    kb, kf, sb, mbb = block_counts(row[s:e], rowb[s:e], a, b, top)
                    if kb > 0 and nb + kb <= cap:  # the item's band still fits its slots
                        gather_chunk(row[s:e], lo[i], hi[i], dst, np.int64(nb))
                    nb += kb
                    nf += kf
                    sf += sb
                    mb = mbb if mbb < mb else mb
        nband[task] = nb
        nforce[task] = nf
        sforce[task] = sf
        fbits[task] = mb


@jit
def place_band_tasks(i0, i1, x, rows, bounds, chunk, start, slots, values):
    """Work items ``i0 <= task < i1``: the band of each item into ``values[start[task]:]``.

    Copied from the item's row of ``slots`` (:func:`count_gather_tasks`), or
    gathered from the input when it did not fit there.
    """
    lo, hi = bounds
    d = x.shape[1]
    nch = (d + chunk - 1) // chunk
    cap = slots.shape[1]
    for task in range(i0, i1):
        s0 = start[task]
        n = start[task + 1] - s0
        if n == 0:
            continue
        if n <= cap:
            src = slots[task]
            for q in range(n):
                values[s0 + q] = src[q]
        else:
            i, j0, j1 = work_item(task, nch, chunk, d)
            gather_chunk(x[rows[i], j0:j1], lo[i], hi[i], values, s0)


@jit
def ties_tasks(i0, i1, x, rows, partial, t, jcut, ktie):
    """Rows ``partial[i0:i1]`` of :func:`rankseg.cpu.launchers.locate_ties`."""
    d = x.shape[1]
    for q in range(i0, i1):
        i = partial[q]
        tv = t[i]
        row = x[rows[i]]
        cnt = 0
        for j in range(d):
            if as_f64(row[j]) == tv:
                cnt += 1
                if cnt == ktie[i]:
                    jcut[i] = j
                    break


@jit
def rma_bounds_rows(stats, rows, metric, gamma, d):
    """Screening bounds ``(lo, hi)`` of each requested row (:func:`rma_bounds`)."""
    na = rows.shape[0]
    lo = np.empty(na)
    hi = np.empty(na)
    for i in range(na):
        r = rows[i]
        lo[i], hi[i] = rma_bounds(
            metric,
            stats[r, 0],
            gamma,
            d,
            stats[r, STAT_MAX],
            np.int64(stats[r, STAT_NHALF]),
            stats[r, STAT_SHALF],
        )
    return lo, hi


@jit
def rma_rows_tasks(i0, i1, x, stats, rows, problem, band, counts, out):
    """Rows ``i0 <= i < i1`` of :func:`rankseg.cpu.launchers.rma_cuts`: solve each row's band."""
    metric, gamma, lo, hi = problem
    start, nforce, sforce, mforce = counts
    nch = (start.shape[0] - 1) // rows.shape[0]
    tau, t, jcut, score, ktie = out
    d = x.shape[1]
    for i in range(i0, i1):
        mu = stats[rows[i], 0]
        nf = nforce[i]
        sf = sforce[i]
        mf = mforce[i]
        res = solve_band(
            band[start[i * nch] : start[(i + 1) * nch]],
            lo[i],
            hi[i],
            (nf, sf, mf),
            mu,
            metric,
            gamma,
        )
        tau[i], t[i], score[i], k_in, full = res
        if tau[i] == 0:
            t[i] = np.inf
            jcut[i] = -1
        elif full:
            jcut[i] = d
        else:
            jcut[i] = -2  # a tie straddles the cut: resolved below
            ktie[i] = k_in
