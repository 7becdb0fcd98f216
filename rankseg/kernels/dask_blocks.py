"""Kernels of the spatially chunked RMA path (:mod:`rankseg.dask`): one block at a time.

A (sample, class) row of a chunked array is spread over many blocks.  Its decision
needs global quantities only, so it is computed from per-block summaries that add up
exactly, whatever the chunking:

* **Histogram of bit patterns.**  For probabilities in ``[+0, 1]`` the IEEE bit
  patterns order like the values.  A bin holds the patterns ``[k << shift,
  (k + 1) << shift)``; with ``shift <= mantissa bits`` every value of a bin has the
  same exponent, so the bin's sum is an integer sum of mantissas times one power of
  two.  Per bin: the count, the mantissa sum split into high and low 26-bit parts
  (two int64 that cannot overflow below ~1e11 pixels), the smallest and the largest
  pattern.  Blocks combine by adding counts and sums, min/max of the patterns: the
  totals do not depend on how the row was chunked, nor on the order of combination.
* **Refinement.**  A bin that the RMA scan cannot cross (:func:`scan_nodes`) is
  either gathered (its values, sorted) or split into sub-bins
  (:func:`block_subhist`); a bin of one pattern is one value.
* **Ties.**  The stable order selects, among pixels equal to the cut value ``t``,
  the ones of lowest flat index.  The flat index of the ``k``-th tie is found by
  counting ties per flat-index range (:func:`block_tie_hist`) and gathering the
  indices of one small range (:func:`block_tie_gather`).  A block's pixel
  ``(i, l)`` (outer line ``i`` of the box, position ``l`` along the last axis) has
  flat index ``base[i] + l``.

The kernels are serial (``@jit``, ``nogil``): dask supplies the parallelism, and
serial kernels are safe under every Numba threading layer.
"""

from __future__ import annotations

import numpy as np

from rankseg._compile.jit import jit
from rankseg.kernels._dtype import as_f64
from rankseg.kernels.assign import bid
from rankseg.kernels.masks import is_selected
from rankseg.kernels.rma import rma_objective, rma_rise_threshold
from rankseg.kernels.rma_scan import scan_bound, scan_cross, scan_start, scan_values

__all__ = [
    "LOW_BITS",
    "assign_block",
    "block_gather",
    "block_hist",
    "block_safe_sums",
    "block_subhist",
    "block_tie_gather",
    "block_tie_hist",
    "scan_nodes",
]

#: the mantissa sums are split at this bit into a high and a low int64 part
LOW_BITS = 26
_LOW_MASK = (1 << LOW_BITS) - 1
_NOPAT = np.int64(1) << np.int64(62)  # larger than every pattern of a value in [0, 1]


@jit(inline="always")
def _pattern(bu, one, sign):
    """Bit pattern of a probability as int64; -0.0 reads as +0.0; -1 if invalid."""
    if bu > one:
        if bu == sign:  # -0.0
            return np.int64(0)
        return np.int64(-1)
    return np.int64(bu)


@jit(inline="always")
def _add(stats, q, k, b, mbits):
    """Add the value of pattern ``b`` to bin ``k`` of request/row ``q``."""
    cnt, mhi, mlo, bmin, bmax = stats
    e = b >> mbits
    m = b & ((np.int64(1) << mbits) - 1)
    if e > 0:
        m += np.int64(1) << mbits
    cnt[q, k] += 1
    mhi[q, k] += m >> LOW_BITS
    mlo[q, k] += m & _LOW_MASK
    bmin[q, k] = min(bmin[q, k], b)
    bmax[q, k] = max(bmax[q, k], b)


@jit
def _new_stats(nq, nbins):
    return (
        np.zeros((nq, nbins), dtype=np.int64),
        np.zeros((nq, nbins), dtype=np.int64),
        np.zeros((nq, nbins), dtype=np.int64),
        np.full((nq, nbins), _NOPAT, dtype=np.int64),
        np.full((nq, nbins), -1, dtype=np.int64),
    )


@jit
def block_hist(xb, one, sign, layout):
    """Histogram of every row of a block over the bit patterns of ``[0, 1]``.

    Parameters
    ----------
    xb : ndarray of unsigned int, shape (R, n)
        The block's rows as bit patterns (uint16/uint32/uint64 views of
        float16/float32/float64).
    one, sign : unsigned int scalars of ``xb``'s type
        The pattern of 1.0 and the sign bit (the pattern of -0.0).
    layout : tuple of (mbits, shift, nbins)
        Mantissa bits of the dtype, bin width ``2**shift`` patterns, number of bins.

    Returns
    -------
    stats : tuple of five int64 arrays of shape (R, nbins)
        Count, high and low mantissa sums, smallest and largest pattern per bin.
    bad : ndarray of int64, shape (R,)
        Position in the row of the first NaN, infinity or value outside [0, 1];
        -1 when the row is valid.
    """
    mbits, shift, nbins = layout
    nrow, n = xb.shape
    stats = _new_stats(nrow, nbins)
    bad = np.full(nrow, -1, dtype=np.int64)
    for r in range(nrow):
        row = xb[r]
        for j in range(n):
            b = _pattern(row[j], one, sign)
            if b < 0:
                if bad[r] < 0:
                    bad[r] = j
                continue
            _add(stats, r, b >> shift, b, mbits)
    return stats, bad


@jit(inline="always")
def _find(lo, hi, g0, g1, b):
    """Request among ``g0..g1-1`` (sorted, disjoint ranges) whose range holds ``b``, or -1.

    The callers test first that ``b`` lies in ``[lo[g0], hi[g1 - 1])``, in the loop
    itself: a pixel outside costs a compare, not a call (5x faster on a block).
    """
    k = g0 + np.searchsorted(lo[g0:g1], b, side="right") - 1
    if k >= g0 and b < hi[k]:
        return k
    return -1


@jit
def _row_groups(rows):
    """Start of each run of equal rows in the sorted ``rows`` (plus the end)."""
    n = rows.shape[0]
    starts = [0]
    for q in range(1, n):
        if rows[q] != rows[q - 1]:
            starts.append(q)
    starts.append(n)
    return np.array(starts, dtype=np.int64)


@jit
def block_subhist(xb, one, sign, req, layout):
    """Histogram of pattern ranges of some rows (the refinement of bins).

    Each row is read once, whatever the number of its requests.

    Parameters
    ----------
    xb : ndarray of unsigned int, shape (R, n)
        The block's rows as bit patterns.
    one, sign : unsigned int scalars
        As for :func:`block_hist`.
    req : tuple of (rows, lo, hi, shift) int64 arrays of equal length Q
        Request ``q`` histograms row ``rows[q]`` over the patterns
        ``[lo[q], hi[q])`` in bins of ``2**shift[q]`` patterns (at most ``nsub``).
        Sorted by row, then by ``lo``; the ranges of a row are disjoint.
    layout : tuple of (mbits, nsub)
        Mantissa bits, sub-bins per request.

    Returns
    -------
    tuple of five int64 arrays of shape (Q, nsub)
        As the stats of :func:`block_hist`.
    """
    rows, lo, hi, sh = req
    mbits, nsub = layout
    nq = rows.shape[0]
    stats = _new_stats(nq, nsub)
    groups = _row_groups(rows)
    for g in range(groups.shape[0] - 1):
        g0 = groups[g]
        g1 = groups[g + 1]
        row = xb[rows[g0]]
        a, z = lo[g0], hi[g1 - 1]
        for j in range(row.shape[0]):
            b = _pattern(row[j], one, sign)
            if b < a or b >= z:  # outside every range of the row: the common case
                continue
            q = _find(lo, hi, g0, g1, b)
            if q >= 0:
                _add(stats, q, (b - lo[q]) >> sh[q], b, mbits)
    return stats


@jit
def block_gather(xb, one, sign, req, x):
    """Gather the values of pattern ranges of some rows (each row read twice).

    Parameters
    ----------
    xb : ndarray of unsigned int, shape (R, n)
        The block's rows as bit patterns.
    one, sign : unsigned int scalars
        As for :func:`block_hist`.
    req : tuple of (rows, lo, hi) int64 arrays of equal length Q
        Request ``q`` gathers the values of row ``rows[q]`` whose pattern lies in
        ``[lo[q], hi[q])``.  Sorted by row, then by ``lo``; disjoint per row.
    x : ndarray, shape (R, n)
        The same block as values (float32/float64, or float16 as uint16 bits).

    Returns
    -------
    values : ndarray of float64
        Request ``q``'s values in ``values[start[q]:start[q + 1]]`` (-0.0 as +0.0),
        in the block's order.
    start : ndarray of int64, shape (Q + 1,)
        Offsets.
    """
    rows, lo, hi = req
    nq = rows.shape[0]
    groups = _row_groups(rows)
    count = np.zeros(nq, dtype=np.int64)
    for g in range(groups.shape[0] - 1):
        g0 = groups[g]
        g1 = groups[g + 1]
        row = xb[rows[g0]]
        a, z = lo[g0], hi[g1 - 1]
        for j in range(row.shape[0]):
            b = _pattern(row[j], one, sign)
            if b < a or b >= z:  # outside every range of the row: the common case
                continue
            q = _find(lo, hi, g0, g1, b)
            if q >= 0:
                count[q] += 1
    start = np.zeros(nq + 1, dtype=np.int64)
    for q in range(nq):
        start[q + 1] = start[q] + count[q]
    values = np.empty(start[nq])
    pos = start[:nq].copy()
    for g in range(groups.shape[0] - 1):
        g0 = groups[g]
        g1 = groups[g + 1]
        row = xb[rows[g0]]
        vrow = x[rows[g0]]
        a, z = lo[g0], hi[g1 - 1]
        for j in range(row.shape[0]):
            b = _pattern(row[j], one, sign)
            if b < a or b >= z:
                continue
            q = _find(lo, hi, g0, g1, b)
            if q >= 0:
                values[pos[q]] = as_f64(vrow[j]) + 0.0
                pos[q] += 1
    return values, start


@jit
def block_tie_hist(x, req, base, nsub):
    """Count the pixels equal to a value per flat-index range (ties across blocks).

    Parameters
    ----------
    x : ndarray, shape (R, n)
        The block's rows (float32/float64, or float16 as uint16 bits).
    req : tuple of (rows, t, a, w)
        Request ``q`` counts the pixels of row ``rows[q]`` equal to ``t[q]`` whose
        flat index ``f`` lies in ``[a[q], a[q] + nsub * w[q])``, in bins ``(f - a) // w``.
    base : ndarray of int64
        Flat index of the first pixel of each outer line of the block; a line holds
        ``n // len(base)`` pixels.
    nsub : int
        Bins per request.

    Returns
    -------
    ndarray of int64, shape (Q, nsub)
        The counts.
    """
    rows, t, a, w = req
    nline = base.shape[0]
    ln = x.shape[1] // nline
    nq = rows.shape[0]
    out = np.zeros((nq, nsub), dtype=np.int64)
    for q in range(nq):
        row = x[rows[q]]
        tv = t[q]
        top = a[q] + nsub * w[q]
        for i in range(nline):
            f0 = base[i]
            if f0 + ln <= a[q] or f0 >= top:
                continue
            for pos in range(ln):
                if as_f64(row[i * ln + pos]) == tv:
                    f = f0 + pos
                    if a[q] <= f < top:
                        out[q, (f - a[q]) // w[q]] += 1
    return out


@jit
def block_tie_gather(x, req, base):
    """Flat indices of the pixels equal to a value within a flat-index range.

    Parameters
    ----------
    x : ndarray, shape (R, n)
        The block's rows (float32/float64, or float16 as uint16 bits).
    req : tuple of (rows, t, a, b)
        Request ``q`` gathers the flat indices ``f`` in ``[a[q], b[q])`` of the pixels
        of row ``rows[q]`` equal to ``t[q]``.
    base : ndarray of int64
        As for :func:`block_tie_hist`.

    Returns
    -------
    index : ndarray of int64
        Request ``q``'s indices (ascending) in ``index[start[q]:start[q + 1]]``.
    start : ndarray of int64, shape (Q + 1,)
        Offsets.
    """
    rows, t, a, b = req
    nline = base.shape[0]
    ln = x.shape[1] // nline
    nq = rows.shape[0]
    start = np.zeros(nq + 1, dtype=np.int64)
    for rep in range(2):  # count, then fill
        if rep == 1:
            index = np.empty(start[nq], dtype=np.int64)
        for q in range(nq):
            row = x[rows[q]]
            tv = t[q]
            c = 0
            pos = start[q]
            for i in range(nline):
                f0 = base[i]
                if f0 + ln <= a[q] or f0 >= b[q]:
                    continue
                for p in range(ln):
                    f = f0 + p
                    if as_f64(row[i * ln + p]) == tv and a[q] <= f < b[q]:
                        if rep == 1:
                            index[pos] = f
                            pos += 1
                        c += 1
            if rep == 0:
                start[q + 1] = start[q] + c
    return index, start


@jit
def scan_nodes(nodes, vals, forced, mu, objective):
    """First maximizer of the RMA objective over the prefixes that end in the nodes.

    Parameters
    ----------
    nodes : tuple of arrays (cnt, ssum, vmin, vmax, voff)
        The row's value bins below the forced set, in **descending** value order:
        count, sum of the values, smallest and largest value, and the offset of the
        bin's values (sorted, descending) in ``vals``, or -1 when they are not known.
        A bin with ``vmin == vmax`` holds one value and needs no values.
    vals : ndarray of float64
        Gathered values of the resolved bins.
    forced : tuple of (int, float, float)
        Count, sum and smallest value of the forced pixels (all selected).
    mu : float
        Sum of the row.
    objective : tuple of (metric, gamma)
        ``DICE``/``IOU`` and the smoothing.

    Notes
    -----
    A bin of unknown order is crossed in one step when no prefix ending in it can
    beat the best by the objective's upper bound over the bin, or when ``F`` rises at
    every step through it (its smallest value is above
    :func:`rankseg.kernels.rma.rma_rise_threshold` of that bound, by a relative
    margin of ``max(1e-9, 64 d eps)``): the bins between the forced set and the cut
    need no values, only the few around the cut do.

    Returns
    -------
    need : ndarray of bool
        Bins whose values (or sub-bins) the scan needs; when any is set the other
        outputs are not final.
    result : tuple of (tau, t, score, k_in, full)
        τ*, the smallest selected value, ``F(τ*)``, how many selected pixels equal
        ``t``, and whether every pixel equal to ``t`` is selected.
    """
    cnt, ssum, vmin, vmax, voff = nodes
    metric, gamma = objective
    nf, sf, mf = forced
    n = cnt.shape[0]
    need = np.zeros(n, dtype=np.bool_)
    # relative margin of the rise test: each step of a crossed run raises F by far
    # more than the rounding of F over ~d additions
    npix = nf
    for k in range(n):
        npix += cnt[k]
    rise_margin = max(1e-9, 64.0 * npix * 2.220446049250313e-16)
    objective = (metric, mu, gamma)
    state = scan_start(forced, objective)
    for k in range(n):
        c = cnt[k]
        if c == 0:
            continue
        single = vmin[k] == vmax[k]
        bound, prunable = scan_bound(state, c, vmax[k], objective)
        if prunable or (voff[k] < 0 and not single):
            if not prunable:
                # F rises at every step through the bin when its smallest value is
                # above the rise threshold of F's largest possible value in it: the
                # best prefix of the bin is its end, whatever the order inside
                s, tau = state[0], state[1]
                fmax = max(bound, rma_objective(metric, s, tau, mu, gamma))
                rise = rma_rise_threshold(metric, fmax, tau, mu, gamma)
                if not vmin[k] > rise * (1.0 + rise_margin):
                    need[k] = True  # unknown order inside: cross it, keeping a lower bound
            # a prefix that is attained: a valid lower bound of the best
            state = scan_cross(state, c, ssum[k], vmin[k], objective)
            continue
        state = scan_values(state, vals, -1 if single else voff[k], c, vmax[k], objective)
    return need, (state[3], state[4], state[2], state[5], state[6])


@jit(inline="always")
def _selecting(x, b, j, ncls, cut):
    """How many active classes of sample ``b`` select pixel ``j``, and the last of them."""
    t, jloc, active = cut
    k = 0
    who = 0
    for c in range(ncls):
        r = b * ncls + c
        if active[r] and is_selected(as_f64(x[r, j]), j, t[r], jloc[r]):
            k += 1
            who = c
    return k, who


@jit
def block_safe_sums(x, xb, ncls, cut, layout):
    """Per-class sums over the pixels selected by that class alone (multiclass).

    Parameters
    ----------
    x : ndarray, shape (nb * ncls, n)
        The block (all classes of ``nb`` samples; float32/float64, or float16 as
        uint16 bits).
    xb : ndarray of unsigned int
        The same block as bit patterns.
    ncls : int
        Number of classes.
    cut : tuple of (t, jloc, active)
        Per row: the cut value (``inf`` if empty), the block-local tie cut index and
        whether the class is active.
    layout : tuple of (mbits, nexp)
        Mantissa bits and number of exponents of values in [0, 1].

    Returns
    -------
    msum : ndarray of int64, shape (nb, ncls, nexp, 2)
        High and low mantissa sums of the safe pixels per exponent.
    nsafe : ndarray of int64, shape (nb, ncls)
        Number of safe pixels.
    """
    mbits, nexp = layout
    nrow, n = x.shape
    nb = nrow // ncls
    msum = np.zeros((nb, ncls, nexp, 2), dtype=np.int64)
    nsafe = np.zeros((nb, ncls), dtype=np.int64)
    for b in range(nb):
        for j in range(n):
            k, who = _selecting(x, b, j, ncls, cut)
            if k == 1:
                r = b * ncls + who
                p = np.int64(xb[r, j]) & ~(np.int64(1) << np.int64(xb.itemsize * 8 - 1))
                e = p >> mbits
                m = p & ((np.int64(1) << mbits) - 1)
                if e > 0:
                    m += np.int64(1) << mbits
                ee = max(e, 1)
                msum[b, who, ee, 0] += m >> LOW_BITS
                msum[b, who, ee, 1] += m & _LOW_MASK
                nsafe[b, who] += 1
    return msum, nsafe


@jit
def assign_block(x, ncls, cut, mn, params, out):
    """Write the multiclass labels of a block from global cuts and safe sums.

    Parameters
    ----------
    x : ndarray, shape (nb * ncls, n)
        The block (float32/float64, or float16 as uint16 bits).
    ncls : int
        Number of classes.
    cut : tuple of (t, jloc, active)
        As for :func:`block_safe_sums` (rows of the block).
    mn : tuple of (m, nsafe, mu, anyact)
        Per row: safe sum, safe count and row sum; per sample: whether any class
        is active.
    params : tuple of (metric, gamma, void_policy, void_index)
        As for :func:`rankseg.cpu.launchers.assign_labels`.
    out : ndarray of int, shape (nb, n)
        Destination.
    """
    t, jloc, active = cut
    m, nsafe, mu, anyact = mn
    metric, gamma, void_policy, void_index = params
    objective = (metric, gamma)
    nrow, n = x.shape
    nb = nrow // ncls
    for b in range(nb):
        for j in range(n):
            k, who = _selecting(x, b, j, ncls, cut)
            if k == 1:
                out[b, j] = who
                continue
            if k == 0 and void_policy:
                out[b, j] = void_index
                continue
            best = (-np.inf, np.int64(0))
            for c in range(ncls):
                r = b * ncls + c
                row = (active[r], t[r], jloc[r], m[r], nsafe[r], mu[r])
                best = bid(c, as_f64(x[r, j]), j, k >= 2, anyact[b], row, objective, best)
            out[b, j] = best[1]
