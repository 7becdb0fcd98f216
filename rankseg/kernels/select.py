"""Rank-search plumbing shared by every Dice/IoU solver.

One call of :func:`row_stats` streams every row once (sum, max, validity count,
count and sum of ``p >= 1/2``).  :func:`rma_cuts` then decides, per active row,
the cut of the stable descending order: it gathers only the band of undecided
pixels ``lo < p < hi``, sorts that band, scans the objective and returns

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

from rankseg._compile import aot as _aot
from rankseg._compile.jit import jit
from rankseg.kernels._dtype import as_f64
from rankseg.kernels._tasks import run_tasks, work_item
from rankseg.kernels.rma import rma_bounds
from rankseg.kernels.rma_scan import scan_bound, scan_cross, scan_start, scan_values
from rankseg.kernels.sort import _sort_descending

__all__ = [
    "STAT_MAX",
    "STAT_MU",
    "STAT_NHALF",
    "STAT_SHALF",
    "gather_between",
    "locate_ties",
    "rma_cuts",
    "row_stats",
    "solve_band",
]

STAT_MU = 0
STAT_MAX = 1
STAT_NHALF = 2
STAT_SHALF = 3
_NSTAT = 4
#: bucketing of large bands: at most this many buckets, about this many values each
_MAX_BUCKETS = 4096
_PER_BUCKET = 16


# fastmath={"reassoc"} only: it lets LLVM vectorize the sums (7x faster measured on
# float32 rows); comparisons, NaN and signed-zero semantics are untouched.  The
# summation order is fixed by the compiled code and the fixed work items, so the
# result does not depend on the number of threads.
@jit(fastmath={"reassoc"})
def _row_stats_tasks(i0, i1, x, xb, chunk, part, pbits):
    """Work items ``i0 <= task < i1`` of :func:`row_stats` (one chunk of a row each)."""
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


def row_stats(x: np.ndarray, xb: np.ndarray, chunk: int) -> tuple[np.ndarray, np.ndarray]:
    """One streaming pass over every row.

    Parameters
    ----------
    x : ndarray, shape (R, d)
        Probabilities (float32/float64, or float16 as uint16 bits).
    xb : ndarray, shape (R, d)
        The same buffer viewed as unsigned integers of the same width.  For
        values in [+0, 1] the bit patterns are ordered like the values, and every
        NaN, infinity, negative number (even -0.0) or value above 1 has a larger
        pattern than 1.0: the maximum pattern both validates the row and gives its
        maximum.
    chunk : int
        Pixels per work item.

    Returns
    -------
    stats : ndarray, shape (R, 4)
        Per row: ``μ``, 0 (the API fills in the maximum), count of ``p >= 1/2``
        and their sum (columns ``STAT_*``).
    maxbits : ndarray of uint64, shape (R,)
        The largest bit pattern of each row.
    """
    nrow, d = x.shape
    nch = (d + chunk - 1) // chunk
    part = np.empty((nrow * nch, _NSTAT))
    pbits = np.empty(nrow * nch, dtype=np.uint64)
    run_tasks(_row_stats_tasks, nrow * nch, x, xb, np.int64(chunk), part, pbits)
    # the chunks of a row added in order, left to right (np.add.accumulate is
    # sequential), as one loop would: the same sums for any thread count
    part = part.reshape(nrow, nch, _NSTAT)
    out = np.add.accumulate(part, axis=1)[:, -1].copy() if nch else np.zeros((nrow, _NSTAT))
    maxbits = pbits.reshape(nrow, nch).max(axis=1) if nch else np.zeros(nrow, np.uint64)
    return out, maxbits


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
        _sort_descending(sorted_vals[off[k] : off[k + 1]])  # this bucket's values: scratch
        state = scan_values(state, sorted_vals, off[k], c, bmax[k], objective)
    return state[3], state[4], state[2], state[5], state[6]


@jit(fastmath={"reassoc"})
def _band_counts_tasks(i0, i1, x, xb, rows, bounds, chunk, out):
    """Work items ``i0 <= task < i1`` of :func:`_band_counts`.

    Branch-free and vectorized (reassociated sums; the minimum is taken over bit
    patterns, which order like the values for probabilities in [0, 1]).
    """
    lo, hi = bounds
    nband, nforce, sforce, fbits = out
    d = x.shape[1]
    nch = (d + chunk - 1) // chunk
    top = np.iinfo(xb.dtype).max
    for task in range(i0, i1):
        i, j0, j1 = work_item(task, nch, chunk, d)
        row = x[rows[i], j0:j1]
        rowb = xb[rows[i], j0:j1]
        a = lo[i]
        b = hi[i]
        nb = 0
        nf = 0
        sf = 0.0
        mb = top
        for j in range(row.shape[0]):
            v = as_f64(row[j])
            forced = v >= b
            nb += (v > a) & (not forced)
            nf += forced
            sf += v if forced else 0.0
            fb = rowb[j] if forced else top
            mb = fb if fb < mb else mb
        nband[task] = nb
        nforce[task] = nf
        sforce[task] = sf
        fbits[task] = mb


def _band_counts(
    x: np.ndarray, xb: np.ndarray, rows: np.ndarray, bounds: tuple, chunk: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per work item: band size, forced count and sum, smallest forced bit pattern."""
    ntask = rows.shape[0] * ((x.shape[1] + chunk - 1) // chunk)
    out = (
        np.empty(ntask, dtype=np.int64),
        np.empty(ntask, dtype=np.int64),
        np.empty(ntask),
        np.empty(ntask, dtype=xb.dtype),
    )
    run_tasks(_band_counts_tasks, ntask, x, xb, rows, bounds, np.int64(chunk), out)
    return out


@jit
def _gather_tasks(i0, i1, x, rows, bounds, chunk, start, values):
    """Work items ``i0 <= task < i1`` of :func:`gather_between`."""
    lo, hi = bounds
    d = x.shape[1]
    nch = (d + chunk - 1) // chunk
    for task in range(i0, i1):
        if start[task + 1] == start[task]:
            continue
        i, j0, j1 = work_item(task, nch, chunk, d)
        row = x[rows[i], j0:j1]
        a = lo[i]
        b = hi[i]
        pos = start[task]
        for j in range(row.shape[0]):
            v = as_f64(row[j])
            if v > a and v < b:
                values[pos] = v + 0.0
                pos += 1


def gather_between(
    x: np.ndarray, rows: np.ndarray, bounds: tuple, counts: np.ndarray, chunk: int
) -> tuple[np.ndarray, np.ndarray]:
    """Gather the values ``lo < p < hi`` of each row into one exactly sized buffer.

    Parameters
    ----------
    x : ndarray, shape (R, d)
        Probabilities (float32/float64, or float16 as uint16 bits).
    rows : ndarray of int64
        The rows to gather from.
    bounds : tuple of (lo, hi)
        Per-row bounds (arrays of ``len(rows)``).
    counts : ndarray of int64
        Values to gather per work item (``len(rows) * n_chunks``), from
        :func:`_band_counts`; work items with none are not read.
    chunk : int
        Pixels per work item.

    Returns
    -------
    values : ndarray of float64
        Row ``i``'s values in ``values[start[i * nch] : start[(i + 1) * nch]]``,
        ``-0.0`` stored as ``+0.0``.
    start : ndarray of int64
        Offsets of each work item.
    """
    ntask = counts.shape[0]
    start = np.zeros(ntask + 1, dtype=np.int64)
    np.cumsum(counts, out=start[1:])
    values = np.empty(int(start[ntask]))
    run_tasks(_gather_tasks, ntask, x, rows, bounds, np.int64(chunk), start, values)
    return values, start


@jit
def _ties_tasks(i0, i1, x, rows, partial, t, jcut, ktie):
    """Rows ``partial[i0:i1]`` of :func:`locate_ties`."""
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


def locate_ties(
    x: np.ndarray, rows: np.ndarray, t: np.ndarray, jcut: np.ndarray, ktie: np.ndarray
) -> None:
    """Resolve rows whose cut splits a run of equal values (``jcut == -2``).

    Sets ``jcut[i]`` to the flat index of the ``ktie[i]``-th pixel equal to ``t[i]``
    in row ``rows[i]``: the stable order selects ties by increasing index.
    """
    partial = np.flatnonzero(jcut == -2)
    if partial.size:
        run_tasks(_ties_tasks, partial.size, x, rows, partial, t, jcut, ktie)


@jit
def _rma_bounds_rows(stats, rows, metric, gamma, d):
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
def _rma_rows_tasks(i0, i1, x, stats, rows, problem, band, counts, out):
    """Rows ``i0 <= i < i1`` of :func:`rma_cuts`: solve each row's band."""
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


def rma_cuts(
    x: np.ndarray,
    xb: np.ndarray,
    stats: np.ndarray,
    rows: np.ndarray,
    metric: int,
    gamma: float,
    chunk: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Cut of the stable descending order for each active row under RMA.

    Parameters
    ----------
    x : ndarray, shape (R, d)
        Probabilities (float32/float64, or float16 as uint16 bits).
    xb : ndarray, shape (R, d)
        The same buffer as unsigned integers of the same width.
    stats : ndarray, shape (R, 4)
        Output of :func:`row_stats` with the row maxima filled in.
    rows : ndarray of int64
        The rows to solve (the others are left untouched in the outputs).
    metric : int
        ``DICE`` or ``IOU``.
    gamma : float
        Smoothing ``γ``.
    chunk : int
        Pixels per work item.

    Returns
    -------
    tau, t, jcut, score : ndarrays of shape (len(rows),)
        The cut of each requested row (see the module docstring).
    """
    na = rows.shape[0]
    metric64 = np.int64(metric)
    gamma = float(gamma)
    lo, hi = _aot.call(_rma_bounds_rows, stats, rows, metric64, gamma, np.int64(x.shape[1]))
    # pass 2a: count the band, sum the forced set (vectorized, see _band_counts)
    nband, nforce, sforce, fbits = _band_counts(x, xb, rows, (lo, hi), chunk)
    # the forced set of each row: count, sum (chunks added in order, as one loop
    # would: np.add.accumulate is sequential) and smallest value (from its bits)
    nch = (x.shape[1] + chunk - 1) // chunk
    nforce = nforce.reshape(na, nch).sum(axis=1)
    sforce = np.add.accumulate(sforce.reshape(na, nch), axis=1)[:, -1].copy()
    mforce = fbits.reshape(na, nch).min(axis=1).view(f"f{fbits.itemsize}")  # float16: bits
    mforce = np.where(nforce > 0, mforce.astype(np.float64), np.inf)
    # pass 2b: gather the band (exactly sized: O(candidates) memory)
    band, start = gather_between(x, rows, (lo, hi), nband, chunk)
    out = (
        np.empty(na, dtype=np.int64),
        np.empty(na),
        np.empty(na, dtype=np.int64),
        np.empty(na),
        np.zeros(na, dtype=np.int64),
    )
    if na:
        run_tasks(
            _rma_rows_tasks,
            na,
            x,
            stats,
            rows,
            (metric64, gamma, lo, hi),
            band,
            (start, nforce, sforce, mforce),
            out,
        )
    tau, t, jcut, score, ktie = out
    locate_ties(x, rows, t, jcut, ktie)
    return tau, t, jcut, score
