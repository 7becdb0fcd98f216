"""Multiclass resolution (SPEC §4): per-class masks to one label map.

A pixel selected by exactly one class gets that class.  Otherwise the pixel goes
to the class with the largest *increment score* ``F_c(safe_c ∪ {j}) − F_c(safe_c)``,
where ``safe_c`` are the pixels selected by class ``c`` alone and ``F_c`` is the RMA
objective: among the selecting classes when several select it; when none does,
among the sample's active classes (all classes when none is active) or the void
label.  Ties go to the lowest class index.
"""

from __future__ import annotations

import numpy as np

from rankseg._compile.jit import jit
from rankseg._config import SUB_BLOCK
from rankseg._policies import DICE
from rankseg.kernels._dtype import as_f64, as_native
from rankseg.kernels._tasks import work_item
from rankseg.kernels.masks import is_selected, native_cut

__all__ = ["bid", "increment", "triage"]


@jit(inline="always")
def increment(metric: int, p: float, m: float, n: float, mu: float, gamma: float) -> float:
    """RMA increment of adding a pixel of probability ``p`` to a class's safe set.

    Parameters
    ----------
    metric : int
        ``DICE`` or ``IOU``.
    p : float
        The pixel's probability for the class.
    m : float
        Sum of probabilities over the class's safe set.
    n : float
        Size of the safe set.
    mu : float
        Sum of the class's probabilities over all pixels.
    gamma : float
        Smoothing ``γ``.

    Returns
    -------
    float
        The SPEC §4 closed form of ``F(safe ∪ {j}) − F(safe)``.
    """
    if metric == DICE:
        if gamma == 0.0:
            dd = n + mu + 1.0
            return 2.0 * (p - m / dd) / (dd + 1.0)
        dd = n + mu + 1.0 + gamma
        return 2.0 * (p * dd - m) / (dd * (dd + 1.0)) - gamma / (dd * (dd - 1.0))
    a = m + gamma
    b = n + mu - m + gamma
    ratio = a / b if b != 0.0 else 0.0
    return (p - ratio * (1.0 - p)) / (b + 1.0 - p)


@jit(inline="always")
def triage(status, b, j, void_policy, void_index, out):
    """Pass B's first look at pixel ``j`` of sample ``b``: its status if it needs bids.

    Status 0 (settled by pass A) stays; status 1 (no class selects it) gets
    ``void_index`` when ``void_policy`` is set.  Both give 0; otherwise the status
    (1: bids among the active classes, 2: among the selecting ones, :func:`bid`).
    Shared with the GPU (:func:`rankseg.cuda.assign.triage`, the same code).
    """
    st = status[b, j]
    if st == 1 and void_policy:
        out[b, j] = void_index
        return 0
    return st


@jit(inline="always")
def bid(c, v, j, several, anyact, row, objective, best):
    """Class ``c``'s bid for pixel ``j``, which its selecting classes did not settle.

    The one source of the multiclass resolution's second pass (SPEC §4) for the
    in-memory kernels, the dask blocks and the GPU (:func:`rankseg.cuda.assign.bid`,
    the same code): a pixel selected by several classes goes to the selecting class
    of largest :func:`increment`; a pixel selected by none to the active class of
    largest increment (any class when the sample has none active).  The callers fold
    the classes in ascending order, so ties go to the lowest class index.

    Parameters
    ----------
    c : int
        The class.
    v : float
        The pixel's probability for the class.
    j : int
        The pixel's flat index in the row (for the tie rule of :func:`is_selected`).
    several : bool
        Whether several classes select the pixel (else none does).
    anyact : bool
        Whether any class of the sample is active.
    row : tuple of (active, t, jcut, m, n, mu)
        The class's row: active, cut value, tie cut index, safe sum and size, sum of
        probabilities.
    objective : tuple of (metric, gamma)
        ``DICE``/``IOU`` and the smoothing.
    best : tuple of (float, int)
        The best increment so far and its class (start with ``(-inf, 0)``).

    Returns
    -------
    tuple of (float, int)
        The new best.
    """
    active, t, jcut, m, n, mu = row
    metric, gamma = objective
    if several:
        if not (active and is_selected(v, j, t, jcut)):
            return best
    elif anyact and not active:
        return best
    inc = increment(metric, v, m, n, mu, gamma)
    if inc > best[0]:
        return (inc, c)
    return best


@jit(inline="always")
def count_selections(x, b, ncls, cut, s0, n, counters, cmax):
    """Per pixel of a sub-block: how many classes select it, and the last that does.

    ``counters`` is ``(cnt, who, first)``: ``cnt`` and ``who`` of one integer
    dtype (uint8 while the classes fit in it: four times the SIMD lanes of int32)
    and ``first``, the value 0 of that dtype.  A class selects what
    :func:`rankseg.kernels.masks.is_selected` selects, compared in the input's own
    float dtype (:func:`rankseg.kernels.masks.native_cut`): ``v > t``, and
    ``v >= t`` in the pixels up to the tie cut, each one comparison.  ``cmax[r]`` is
    the largest value of class row ``r`` in the sub-block: a class whose maximum
    lies below its ``t`` selects nothing there and is not read.
    """
    t, jcut, active, _ = cut
    cnt, who, first = counters
    one = first + 1
    for j in range(n):
        cnt[j] = first
        who[j] = first
    for c in range(ncls):
        r = b * ncls + c
        tr = t[r]
        if not active[r] or tr == np.inf or cmax[r] < tr:
            continue
        jc = jcut[r] - s0
        row = x[r, s0 : s0 + n]
        cw = first + c
        ge, gt, split = native_cut(tr, jc, n, row)  # in the row's own dtype
        for part in range(2):
            a = ge if part == 0 else gt
            lo, hi = (0, split) if part == 0 else (split, n)
            # slices indexed from 0: numba drops the negative-index checks
            seg, cs, ws = row[lo:hi], cnt[lo:hi], who[lo:hi]
            for j in range(seg.shape[0]):
                sel = as_native(seg[j]) > a  # branch-free so the loop vectorizes
                cs[j] = cs[j] + one if sel else cs[j]
                ws[j] = cw if sel else ws[j]


@jit(inline="always")
def log_conflict(x, b, ncls, j, several, seen, log):
    """Keep pixel ``j``'s index and its class values in the next free slot of ``log``.

    ``log`` is ``(idx, vals, live)``: a work item's slots (shapes ``(cap,)`` and
    ``(cap, ncls)``) and which classes may select a pixel in the sub-block (active,
    with a cut their maximum there reaches).  A pixel that no class selects keeps every
    class's value (they all may bid, SPEC §4); one that several select keeps the
    values of the live classes and -1.0 for the others, a value no cut selects:
    the classes whose rows pass A did not read are not read here either.  ``seen``
    counts the pixels logged so far, also those past the last slot, which are not
    kept.  Returns ``seen + 1``.
    """
    idx, vals, live = log
    if seen < idx.shape[0]:
        idx[seen] = j
        for c in range(ncls):
            if several and not live[c]:
                vals[seen, c] = -1.0
            else:
                vals[seen, c] = as_f64(x[b * ncls + c, j])
    return seen + 1


#: float32 values of at least ``2**-m`` are multiples of ``2**-(m + 23)``: a float64
#: sum of at most ``2**(30 - m)`` of them (each at most 1) is exact, in any order
_EXACT_BITS = 30


@jit(inline="always")
def exact_sum_floor(x, chunk):
    """Return the smallest cut above which a work item's exclusive sums are exact, or ``inf``.

    A class's exclusive pixels have values of at least its cut ``t``.  For float32
    and float16 maps (float32 values), when ``t >= N * 2**-30`` with ``N`` the item's
    size rounded up to a power of two, every partial sum of those values in float64
    is exact, so they add to the same bits in any order (the pixel order's included).
    float64 maps: ``inf`` (never).
    """
    if x.itemsize == 8:
        return np.inf
    size = 1
    while size < chunk:
        size *= 2
    return size * 2.0**-_EXACT_BITS


@jit(fastmath={"reassoc"})
def class_sum(row, cnt, who, one, cw):
    """Sum and count of ``row[j]`` over the pixels that class ``cw`` alone selects.

    ``cnt[j] == one`` (one class selects pixel ``j``) and ``who[j] == cw`` (that is
    ``cw``).  Reassociated so that it vectorizes: the callers use it only where the
    sum is exact (:func:`exact_sum_floor`), so its bits are those of the pixel-order
    sum.  Not inlined: its fast-math flag is its own.
    """
    s = 0.0
    k = 0.0  # a count in float64 lanes, as wide as the sum's (exact below 2**53)
    for j in range(row.shape[0]):
        m = (cnt[j] == one) & (who[j] == cw)
        s += as_f64(row[j]) if m else 0.0
        k += 1.0 if m else 0.0
    return s, k


@jit
def class_chain(row, cnt, who, one, cw, acc):
    """``acc`` plus ``row[j]`` over the pixels that class ``cw`` alone selects, in pixel order.

    The same additions in the same order as one loop over the pixels: the sum where
    it is not exact (:func:`exact_sum_floor`).  Also returns the count.  Not inlined
    (it compiles once).
    """
    k = 0.0
    for j in range(row.shape[0]):
        if (cnt[j] == one) & (who[j] == cw):
            acc += as_f64(row[j])
            k += 1.0
    return acc, k


@jit(inline="always")
def settle(x, b, ncls, s0, n, counters, dst, st, sums, log):
    """Write a sub-block's labels and status; add its exclusive pixels to the sums.

    Every pixel gets the last class that selects it and its status (0: exactly one
    class, final; 1: none; 2: several), pass B overwriting the labels of the
    others.  Each class that may select a pixel here (``live``) adds its exclusive
    pixels' values to ``lm`` and their count to ``ln``: in vector lanes
    (:func:`class_sum`) where its cut is at least ``floor`` (:func:`exact_sum_floor`:
    every partial sum is exact, so the bits are the pixel-order sum's), else in
    pixel order (:func:`class_chain`) -- each class's own chain of additions, as one
    loop over the pixels makes it.  The other pixels are logged in pixel order
    (:func:`log_conflict`) while their class rows are still in the cache; ``log`` is
    ``(idx, vals, live, seen)``, ``sums`` ``(lm, ln, t, floor)`` with the sample's
    cuts.  Returns the new ``seen``.
    """
    cnt, who, first = counters
    lm, ln, t, floor = sums
    others = 0
    for j in range(n):
        k = cnt[j]
        dst[j] = who[j]
        st[j] = 0 if k == 1 else (1 if k == 0 else 2)
        others += k != 1
    idx, vals, live, seen = log
    one = first + 1
    cs, ws = cnt[:n], who[:n]
    for c in range(ncls):
        if live[c]:
            row = x[b * ncls + c, s0 : s0 + n]
            if t[c] >= floor:
                a, k = class_sum(row, cs, ws, one, first + c)
                lm[c] += a
            else:
                lm[c], k = class_chain(row, cs, ws, one, first + c, lm[c])
            ln[c] += k
    if others == 0:
        return seen
    # the others are few (class boundaries): the counters are read eight bytes at a
    # time (one 64-bit word: 8 byte-wide counters, or 2 int32) and a word whose
    # counters are all 1 is passed over.  The last word may hold fewer than ``per``
    # pixels (and stale counters after them): it is looked at pixel by pixel.
    words = cnt.view(np.uint64)  # the whole scratch array: C-contiguous
    per = 8 // cnt.itemsize
    ones = np.uint64(0)
    for i in range(per):
        ones |= np.uint64(1) << np.uint64(8 * cnt.itemsize * i)
    full = n // per
    for w in range((n + per - 1) // per):
        if w < full and words[w] == ones:
            continue
        for j in range(w * per, min(n, w * per + per)):  # one call site: it is inlined
            if cnt[j] != 1:
                seen = log_conflict(x, b, ncls, s0 + j, cnt[j] > 1, seen, (idx, vals, live))
    return seen


@jit
def exclusive_tasks(i0, i1, x, ncls, cuts, out, status, sums, log):
    """Pass A of :func:`rankseg.cpu.launchers.assign_labels` over work items ``i0 <= task < i1``.

    Pixels selected by exactly one class are final; the others are marked in
    ``status`` (1: no class, 2: several) for pass B.  Each work item writes the sums
    and counts of its exclusive pixels per class to its own row of ``sums``.  A work
    item is counted in sub-blocks of ``rankseg._config.SUB_BLOCK`` pixels (every class over a
    sub-block, then its pixels settled), in pixel order, so the sums add the same
    values in the same order as one pass over the item would.  ``cuts`` is
    ``(cut, smax, counters)``: the cuts, the largest value of each row in each
    sub-block of each work item (shape ``(R, n_chunks, n_sub)``,
    :func:`rankseg.cpu.launchers.row_stats`), and two scratch arrays of
    ``SUB_BLOCK`` counters with the zero of their dtype
    (:func:`rankseg.cpu.launchers.selection_counters`).  A class whose maximum over
    a sub-block lies below its cut selects nothing there and its row is not read
    (nor logged: see :func:`log_conflict`).  ``log`` is ``(idx, vals,
    seen)`` (:func:`rankseg.cpu.launchers.conflict_log`): each work item logs its
    other pixels, in pixel order, into its row of ``idx`` and ``vals`` (as many as
    fit) and their number into ``seen``, for pass B.
    """
    cut, smax, scratch = cuts
    idx, vals, seen = log
    # each range of items its own scratch (ranges run on several threads)
    counters = (np.empty_like(scratch[0]), np.empty_like(scratch[1]), scratch[2])
    chunk = cut[3]
    msum, nsum = sums
    d = x.shape[1]
    nch = (d + chunk - 1) // chunk
    lm = np.empty(ncls)
    ln = np.empty(ncls)
    live = np.empty(ncls, dtype=np.bool_)
    t, _, active, _ = cut
    floor = exact_sum_floor(x, chunk)
    for task in range(i0, i1):
        b, j0, j1 = work_item(task, nch, chunk, d)
        # task-local sums, written once: rows of neighbouring tasks share cache lines
        tb = t[b * ncls : (b + 1) * ncls]
        for c in range(ncls):
            lm[c] = 0.0
            ln[c] = 0.0
        k = 0
        for s0 in range(j0, j1, SUB_BLOCK):
            n = min(j1, s0 + SUB_BLOCK) - s0
            dst = out[b, s0 : s0 + n]
            st = status[b, s0 : s0 + n]
            kmax = smax[:, task % nch, (s0 - j0) // SUB_BLOCK]
            for c in range(ncls):
                r = b * ncls + c
                live[c] = active[r] and kmax[r] >= t[r]  # as count_selections reads rows
            count_selections(x, b, ncls, cut, s0, n, counters, kmax)
            logged = (idx[task], vals[task], live, k)
            k = settle(x, b, ncls, s0, n, counters, dst, st, (lm, ln, tb, floor), logged)
        seen[task] = k
        for c in range(ncls):
            msum[task, c] = lm[c]
            nsum[task, c] = ln[c]


@jit(inline="always")
def resolve(v, b, j, st, ncls, cut, mu, safe, objective):
    """Pass B's label for pixel ``j`` of sample ``b`` (status ``st`` 1 or 2, :func:`triage`).

    ``v`` holds the pixel's values, class by class: its row of the log (pass A's,
    or pass B's own batch of a scan).  The classes bid in ascending order
    (:func:`bid`).
    """
    t, jcut, active, _ = cut
    m, n, anyact = safe
    best = (-np.inf, np.int64(0))
    for c in range(ncls):
        r = b * ncls + c
        row = (active[r], t[r], jcut[r], m[b, c], n[b, c], mu[r])
        best = bid(c, as_f64(v[c]), j, st == 2, anyact[b], row, objective, best)
    return best[1]


@jit
def conflict_tasks(i0, i1, x, ncls, cut, mu, params, status, safe, out, log):
    """Pass B of :func:`~rankseg.cpu.launchers.assign_labels`: conflicts, unassigned pixels.

    A work item's pixels that pass A logged (``log``, see :func:`exclusive_tasks`)
    are resolved from their logged values.  When more than fit were logged, the
    rest of the item (after the last logged pixel) is scanned in the input, by
    status, and logged again batch by batch into the same slots (at least one), so
    that one loop resolves them all (each inlined copy of :func:`resolve` compiles
    anew).
    """
    chunk = cut[3]
    metric, gamma, void_policy, void_index = params
    objective = (metric, gamma)
    idx, vals, seen = log
    cap = idx.shape[1]
    if cap == 0:
        raise ValueError("the multiclass resolution needs a log slot per work item")
    d = x.shape[1]
    nch = (d + chunk - 1) // chunk
    for task in range(i0, i1):
        b, _, j1 = work_item(task, nch, chunk, d)
        k = min(seen[task], cap)
        j = idx[task, cap - 1] + 1 if seen[task] > cap else j1  # where a scan starts
        while k > 0:
            for q in range(k):
                jj = idx[task, q]
                st = triage(status, b, jj, void_policy, void_index, out)
                if st != 0:
                    out[b, jj] = resolve(vals[task, q], b, jj, st, ncls, cut, mu, safe, objective)
            k = 0
            while j < j1 and k < cap:  # the next batch of the scan, every class's value
                if status[b, j] != 0:
                    idx[task, k] = j
                    for c in range(ncls):
                        vals[task, k, c] = as_f64(x[b * ncls + c, j])
                    k += 1
                j += 1


@jit
def argmax_tasks(i0, i1, x, ncls, out, chunk):
    """Work items ``i0 <= task < i1`` of :func:`rankseg.cpu.launchers.argmax_labels`."""
    d = x.shape[1]
    nch = (d + chunk - 1) // chunk
    for task in range(i0, i1):
        b, j0, j1 = work_item(task, nch, chunk, d)
        best = np.empty(j1 - j0)
        idx = np.zeros(j1 - j0, dtype=np.int64)
        r0 = b * ncls
        row = x[r0, j0:j1]
        for j in range(row.shape[0]):
            best[j] = as_f64(row[j])
        for c in range(1, ncls):
            row = x[r0 + c, j0:j1]
            for j in range(row.shape[0]):
                v = as_f64(row[j])
                if v > best[j]:
                    best[j] = v
                    idx[j] = c
        dst = out[b, j0:j1]
        for j in range(dst.shape[0]):
            dst[j] = idx[j]
