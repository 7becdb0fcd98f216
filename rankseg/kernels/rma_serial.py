"""One compiled call for a small RMA prediction: every pass, on one thread.

A small input (fewer elements than ``rankseg._config.SERIAL_SIZE``) runs its passes
on one thread anyway, and then the passes' own work is a few microseconds: what a
call costs is the host's bookkeeping between them (about fifteen Python steps and
six launches).  :func:`rma_masks_serial` and :func:`rma_labels_serial` run the same
passes (the same ``*_tasks`` kernels of :mod:`rankseg.kernels.rma_passes`,
:mod:`rankseg.kernels.masks` and :mod:`rankseg.kernels.assign`, over every work
item, with the partial sums added in the same order as the launchers of
:mod:`rankseg.cpu.launchers` add them), so their results are those of the launchers,
bit for bit (tests/test_rma_serial.py).

They stop before writing anything when a row's largest bit pattern lies above
1.0's (NaN, an infinity, a value outside [0, 1], or only -0.0): the host then takes
the launchers' path, which tells these apart and raises.
"""

from __future__ import annotations

import numpy as np

from rankseg._compile.jit import jit
from rankseg._config import BAND_SLOTS, SUB_BLOCK
from rankseg.kernels._dtype import bits_value
from rankseg.kernels.assign import conflict_tasks, exclusive_tasks
from rankseg.kernels.masks import write_masks_tasks
from rankseg.kernels.rma_passes import (
    NSTAT,
    STAT_MAX,
    STAT_MU,
    count_gather_tasks,
    place_band_tasks,
    rma_bounds_rows,
    rma_rows_tasks,
    row_stats_tasks,
    ties_tasks,
)

__all__ = ["rma_labels_serial", "rma_masks_serial", "serial_cuts"]


@jit
def serial_cuts(x, xb, one, chunk, metric, gamma, prune):
    """Row statistics, pruning and the RMA cut of every row, on one thread.

    Parameters
    ----------
    x, xb : ndarray, shape (R, d)
        The rows (float32/float64, or float16 as uint16 bits) and their bits.
    one : unsigned integer
        The bit pattern of 1.0 in the input's width.
    chunk : int
        Pixels per work item.
    metric : int
        ``DICE`` or ``IOU``.
    gamma : float
        Smoothing.
    prune : float
        ``pruning_prob``: rows whose maximum is at most this are pruned.

    Returns
    -------
    ok : bool
        False when a row's largest bit pattern lies above ``one`` (nothing else is
        computed then).
    stats : ndarray, shape (R, 4)
        As :func:`rankseg.cpu.driver.checked_row_stats` returns them.
    tau, t, jcut, score : ndarrays, shape (R,)
        The cut of every row (pruned rows: ``0, inf, -1`` and ``γ/(μ+γ)``).
    pruned : ndarray of bool, shape (R,)
    smax : ndarray of float64, shape (R, n_chunks, n_sub)
        The largest value of each sub-block of each work item of the solved rows
        (``inf`` in the others), from the band pass: the writers skip the sub-blocks
        that cannot reach a row's cut.
    """
    nrow, d = x.shape
    nch = (d + chunk - 1) // chunk
    ntask = nrow * nch
    part = np.empty((ntask, NSTAT))
    pbits = np.empty(ntask, dtype=np.uint64)
    row_stats_tasks(0, ntask, x, xb, chunk, part, pbits)
    stats = np.empty((nrow, NSTAT))
    tau = np.zeros(nrow, dtype=np.int64)
    t = np.full(nrow, np.inf)
    jcut = np.full(nrow, -1, dtype=np.int64)
    score = np.zeros(nrow)
    pruned = np.zeros(nrow, dtype=np.bool_)
    cmax = np.empty((nrow, nch))
    nsub = (min(chunk, d) + SUB_BLOCK - 1) // SUB_BLOCK  # launchers.sub_blocks
    smax = np.full((nrow, nch, nsub), np.inf)
    sbits = np.zeros((nrow, nch, nsub), dtype=np.uint64)
    value = np.empty(1, dtype=x.dtype)
    cell = (value, value.view(xb.dtype))  # for bits_value
    for r in range(nrow):
        # the chunks of a row added in order, as np.add.accumulate does
        mb = pbits[r * nch]
        for k in range(NSTAT):
            stats[r, k] = part[r * nch, k]
        for q in range(r * nch + 1, (r + 1) * nch):
            mb = max(mb, pbits[q])
            for k in range(NSTAT):
                stats[r, k] += part[q, k]
        if mb > one:
            return False, stats, tau, t, jcut, score, pruned, smax
        for q in range(nch):
            cmax[r, q] = bits_value(pbits[r * nch + q], cell)
        stats[r, STAT_MAX] = bits_value(mb, cell)
        pruned[r] = stats[r, STAT_MAX] <= prune
        if gamma > 0:
            score[r] = gamma / (stats[r, STAT_MU] + gamma)
    rows = np.flatnonzero(~pruned).astype(np.int64)
    na = rows.shape[0]
    if na == 0:
        return True, stats, tau, t, jcut, score, pruned, smax
    lo, hi = rma_bounds_rows(stats, rows, metric, gamma, d)
    ntask = na * nch
    nband = np.empty(ntask, dtype=np.int64)
    nforce_t = np.empty(ntask, dtype=np.int64)
    sforce_t = np.empty(ntask)
    fbits = np.empty(ntask, dtype=xb.dtype)
    slots = np.empty((ntask, BAND_SLOTS))
    counts = (nband, nforce_t, sforce_t, fbits)
    count_gather_tasks(0, ntask, x, xb, rows, (lo, hi), chunk, counts, (slots, cmax, sbits))
    for i in range(na):  # decoded as launchers.chunk_maxima does
        for q in range(nch):
            for k in range(nsub):
                mb = sbits[rows[i], q, k]
                smax[rows[i], q, k] = bits_value(mb, cell) if mb <= one else np.inf
    nforce = np.zeros(na, dtype=np.int64)
    sforce = np.empty(na)
    mforce = np.empty(na)
    for i in range(na):
        q0 = i * nch
        fb = fbits[q0]
        sforce[i] = sforce_t[q0]
        nforce[i] = nforce_t[q0]
        for q in range(q0 + 1, q0 + nch):
            fb = min(fb, fbits[q])
            sforce[i] += sforce_t[q]
            nforce[i] += nforce_t[q]
        mforce[i] = bits_value(fb, cell) if nforce[i] > 0 else np.inf
    start = np.zeros(ntask + 1, dtype=np.int64)
    for q in range(ntask):
        start[q + 1] = start[q] + nband[q]
    band = np.empty(start[ntask])
    place_band_tasks(0, ntask, x, rows, (lo, hi), chunk, start, slots, band)
    tau_a = np.empty(na, dtype=np.int64)
    t_a = np.empty(na)
    jcut_a = np.empty(na, dtype=np.int64)
    score_a = np.empty(na)
    ktie = np.zeros(na, dtype=np.int64)
    out = (tau_a, t_a, jcut_a, score_a, ktie)
    rma_rows_tasks(
        0, na, x, stats, rows, (metric, gamma, lo, hi), band, (start, nforce, sforce, mforce), out
    )
    partial = np.flatnonzero(jcut_a == -2)
    ties_tasks(0, partial.shape[0], x, rows, partial, t_a, jcut_a, ktie)
    for i in range(na):
        r = rows[i]
        tau[r] = tau_a[i]
        t[r] = t_a[i]
        jcut[r] = jcut_a[i]
        score[r] = score_a[i]
    return True, stats, tau, t, jcut, score, pruned, smax


@jit
def rma_masks_serial(x, xb, one, chunk, metric, gamma, prune, out):
    """:func:`serial_cuts`, then the masks of every row into ``out`` (shape (R, d)).

    Returns what :func:`serial_cuts` returns; ``out`` is untouched when not ``ok``.
    """
    res = serial_cuts(x, xb, one, chunk, metric, gamma, prune)
    if res[0]:
        nch = (x.shape[1] + chunk - 1) // chunk
        write_masks_tasks(0, x.shape[0] * nch, x, (res[3], res[4], res[7]), out, chunk)
    return res


@jit
def rma_labels_serial(
    x, xb, one, chunk, metric, gamma, prune, ncls, void_policy, void_index, cap, out
):
    """:func:`serial_cuts`, then the multiclass resolution into ``out`` (shape (B, d)).

    The two passes of :func:`rankseg.cpu.launchers.assign_labels`, with the per-item
    sums of each sample added in order; pass A logs ``cap`` pixels per work item
    (:func:`rankseg.cpu.launchers.conflict_slots`).  Returns
    what :func:`serial_cuts` returns; ``out`` is untouched when not ``ok``.
    """
    res = serial_cuts(x, xb, one, chunk, metric, gamma, prune)
    if not res[0]:
        return res
    stats, t, jcut, pruned, smax = res[1], res[3], res[4], res[6], res[7]
    nrow, d = x.shape
    nb = nrow // ncls
    nch = (d + chunk - 1) // chunk
    active = ~pruned
    rcut = (t, jcut, active, chunk)
    msum = np.empty((nb * nch, ncls))
    nsum = np.empty((nb * nch, ncls))
    status = np.empty((nb, d), dtype=np.uint8)
    # the slots of rankseg.cpu.launchers.conflict_log
    log = (
        np.empty((nb * nch, cap), np.int64),
        np.empty((nb * nch, cap, ncls)),
        np.empty(nb * nch, np.int64),
    )
    # the counters of rankseg.cpu.launchers.selection_counters
    if ncls <= 255:
        scratch = (np.empty(SUB_BLOCK, np.uint8), np.empty(SUB_BLOCK, np.uint8), np.uint8(0))
        cuts = (rcut, smax, scratch)
        exclusive_tasks(0, nb * nch, x, ncls, cuts, out, status, (msum, nsum), log)
    else:
        wide = (np.empty(SUB_BLOCK, np.int32), np.empty(SUB_BLOCK, np.int32), np.int32(0))
        cuts = (rcut, smax, wide)
        exclusive_tasks(0, nb * nch, x, ncls, cuts, out, status, (msum, nsum), log)
    m = np.empty((nb, ncls))
    n = np.empty((nb, ncls))
    anyact = np.zeros(nb, dtype=np.bool_)
    for b in range(nb):
        for c in range(ncls):
            m[b, c] = msum[b * nch, c]
            n[b, c] = nsum[b * nch, c]
            for q in range(b * nch + 1, (b + 1) * nch):
                m[b, c] += msum[q, c]
                n[b, c] += nsum[q, c]
            anyact[b] = anyact[b] or active[b * ncls + c]
    params = (metric, gamma, void_policy, void_index)
    mu = stats[:, STAT_MU]
    conflict_tasks(0, nb * nch, x, ncls, rcut, mu, params, status, (m, n, anyact), out, log)
    return res
