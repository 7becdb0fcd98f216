"""Host launchers of the CPU kernels: one function per pass over the rows.

Each launcher allocates the pass's outputs, cuts the work into fixed items (a
``chunk`` of one row, or one row) and runs the serial ``nogil`` kernel of
:mod:`rankseg.kernels` over them with :func:`rankseg.cpu.tasks.run_tasks`.  The
kernels themselves (the ``*_tasks`` bodies, the solvers) stay in
:mod:`rankseg.kernels`, which holds compiled code only; the driver
(:mod:`rankseg.cpu.driver`) strings these launchers together for one call, and the
GPU driver (:mod:`rankseg.cuda.driver`) reuses :func:`solve_packed` and
:func:`solve_candidates` for the rows it solves on the host.

Conventions shared by the launchers: ``x`` is the ``(R, d)`` view of the rows
(float32/float64, or float16 as its uint16 bits), ``xb`` the same buffer as
unsigned integers of the same width, and a cut is ``(tau, t, jcut, score)`` as
described in :mod:`rankseg.kernels.rma_passes`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from rankseg import _threads
from rankseg._compile import aot as _aot
from rankseg._config import (
    BAND_SLOTS,
    CONFLICT_MIN,
    CONFLICT_SHARE,
    CONFLICT_SLOTS,
    CONFLICT_VALUES,
    SOLVE_WEIGHT,
    SUB_BLOCK,
)
from rankseg._policies import EXACT, one_bits
from rankseg.cpu.tasks import run_tasks
from rankseg.kernels.assign import argmax_tasks, conflict_tasks, exclusive_tasks
from rankseg.kernels.exact import DEFAULT_NPOW, SUM_D, SUM_HEAD, SUM_MU
from rankseg.kernels.masks import threshold_tasks, write_masks_tasks
from rankseg.kernels.rma_passes import (
    NSTAT,
    count_gather_tasks,
    place_band_tasks,
    rma_bounds_rows,
    rma_rows_tasks,
    row_stats_tasks,
    ties_tasks,
)
from rankseg.kernels.solver_passes import (
    ba_rows_tasks,
    candidate_bounds,
    cumulant_tasks,
    cut_of,
    empty_exact_tasks,
    empty_rna_tasks,
    exact_rows_tasks,
    next_theta,
    packed_tasks,
    prefix_above,
    rna_bands,
    search_end,
    solve_row,
    summary_tasks,
    trna_rows_tasks,
)
from rankseg.kernels.sort import sort_descending
from rankseg.kernels.summary import BLOCK as SUM_BLOCK
from rankseg.kernels.summary import blocks_in_order

__all__ = [
    "argmax_labels",
    "assign_labels",
    "band_values",
    "chunk_maxima",
    "conflict_log",
    "conflict_slots",
    "empty_scores",
    "locate_ties",
    "rma_cuts",
    "row_stats",
    "row_summaries",
    "selection_counters",
    "solve_candidates",
    "solve_packed",
    "solver_cuts",
    "sub_blocks",
    "write_masks",
    "write_threshold_masks",
]


# -- row statistics and the RMA cut (kernels/rma_passes.py) ------------------------------
def row_stats(
    x: np.ndarray, xb: np.ndarray, chunk: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
    chunkbits : ndarray of uint64, shape (R, n_chunks)
        The largest bit pattern of each work item (the later passes skip the work
        items whose maximum cannot reach a row's bound: :func:`chunk_maxima`).
    """
    nrow, d = x.shape
    nch = (d + chunk - 1) // chunk
    part = np.empty((nrow * nch, NSTAT))
    pbits = np.empty(nrow * nch, dtype=np.uint64)
    run_tasks(row_stats_tasks, nrow * nch, x, xb, np.int64(chunk), part, pbits, work=x.size)
    # the chunks of a row added in order, left to right (np.add.accumulate is
    # sequential), as one loop would: the same sums for any thread count
    part = part.reshape(nrow, nch, NSTAT)
    out = np.add.accumulate(part, axis=1)[:, -1].copy() if nch else np.zeros((nrow, NSTAT))
    chunkbits = pbits.reshape(nrow, nch)
    maxbits = chunkbits.max(axis=1) if nch else np.zeros(nrow, np.uint64)
    return out, maxbits, chunkbits


def sub_blocks(chunk: int, d: int) -> int:
    """Sub-blocks of ``SUB_BLOCK`` pixels in a work item of ``chunk`` pixels of a row of ``d``.

    Parameters
    ----------
    chunk : int
        Pixels per work item.
    d : int
        Pixels per row.

    Returns
    -------
    int
        ``ceil(min(chunk, d) / SUB_BLOCK)``: the sub-blocks of the largest item.
    """
    return (min(chunk, d) + SUB_BLOCK - 1) // SUB_BLOCK


def chunk_maxima(chunkbits: np.ndarray, x: np.ndarray, xb: np.ndarray) -> np.ndarray:
    """Decode the largest value of each work item from its largest bit pattern.

    Parameters
    ----------
    chunkbits : ndarray of uint64, shape (R, n_chunks) or (R, n_chunks, n_sub)
        From :func:`row_stats` (or the sub-blocks' patterns of :func:`band_values`).
    x, xb : ndarray
        The rows in their own float dtype and as unsigned integers of that width.

    Returns
    -------
    ndarray of float64, the shape of ``chunkbits``
        The maxima; ``inf`` where the pattern lies above 1.0's (NaN, an infinity, a
        value outside [0, 1], or only -0.0, whose maximum the pattern does not give):
        a pass never skips such a work item.
    """
    cmax = chunkbits.astype(xb.dtype).view(x.dtype).astype(np.float64)
    cmax[chunkbits > one_bits(x.dtype)] = np.inf
    return cmax


def band_values(
    x: np.ndarray,
    xb: np.ndarray,
    rows: np.ndarray,
    bounds: tuple,
    chunk: int,
    cmax: np.ndarray,
    sbits: np.ndarray | None = None,
) -> tuple[tuple, np.ndarray, np.ndarray]:
    """Count and gather the band ``lo < p < hi`` of each row in one read of the rows.

    Each work item is read once, in blocks of ``COUNT_BLOCK`` values: a block's
    band is counted and its forced set summed (vectorized), and its band values are
    copied into the item's own ``BAND_SLOTS`` slots while the block is in the cache
    and the item's band still fits them; the slots are then placed, in order, into
    one exactly sized buffer (an item whose band did not fit is gathered from the
    input there).  Items whose maxima keep them off the band and the forced set are
    not read; what the two passes read is their ``work`` (:func:`run_tasks`).

    Parameters
    ----------
    x : ndarray, shape (R, d)
        Probabilities (float32/float64, or float16 as uint16 bits).
    xb : ndarray, shape (R, d)
        The same buffer as unsigned integers of the same width.
    rows : ndarray of int64
        The rows to read.
    bounds : tuple of (lo, hi)
        Per-row bounds (arrays of ``len(rows)``).
    chunk : int
        Pixels per work item.
    cmax : ndarray of float64, shape (R, n_chunks)
        The largest value of each work item (:func:`chunk_maxima`): an item whose
        maximum is at most ``lo`` (and below ``hi``) is not read.
    sbits : ndarray of uint64, shape (R, n_chunks, n_sub), optional
        Filled in for the rows read: the largest bit pattern of each sub-block of
        ``SUB_BLOCK`` pixels of each of their work items (:func:`sub_blocks`; an
        item not read: 0, its values being at most ``lo``), decoded by
        :func:`chunk_maxima`.  Other rows are left as they are.

    Returns
    -------
    counts : tuple of (nband, nforce, sforce, fbits)
        Per work item (``len(rows) * n_chunks``): band size, forced count and
        sum, smallest forced bit pattern.
    values : ndarray of float64
        Row ``i``'s band in ``values[start[i * nch] : start[(i + 1) * nch]]``,
        in pixel order, ``-0.0`` stored as ``+0.0``.
    start : ndarray of int64
        Offsets of each work item in ``values``.
    """
    ntask = rows.shape[0] * ((x.shape[1] + chunk - 1) // chunk)
    counts = (
        np.empty(ntask, dtype=np.int64),
        np.empty(ntask, dtype=np.int64),
        np.empty(ntask),
        np.empty(ntask, dtype=xb.dtype),
    )
    slots = np.empty((ntask, BAND_SLOTS))
    chunk64 = np.int64(chunk)
    # the items read: those whose maximum reaches the band or the forced set
    lo, hi = bounds
    m = cmax[rows]
    work = int(np.count_nonzero((m > lo[:, None]) | (m >= hi[:, None]))) * chunk
    if sbits is None:
        sbits = np.empty((x.shape[0], cmax.shape[1], sub_blocks(chunk, x.shape[1])), np.uint64)
    count_args = (x, xb, rows, bounds, chunk64, counts, (slots, cmax, sbits))
    run_tasks(count_gather_tasks, ntask, *count_args, work=work)
    start = np.zeros(ntask + 1, dtype=np.int64)
    np.cumsum(counts[0], out=start[1:])
    values = np.empty(int(start[ntask]))
    # the values copied, and the items gathered again because they overflowed
    work = values.size + int(np.count_nonzero(counts[0] > BAND_SLOTS)) * chunk
    place_args = (x, rows, bounds, chunk64, start, slots, values)
    run_tasks(place_band_tasks, ntask, *place_args, work=work)
    return counts, values, start


def _forced_sets(counts: tuple, na: int, d: int, chunk: int) -> tuple:
    """Each row's forced set from :func:`band_values`' counts: count, sum, smallest value.

    The chunks' sums are added in order, as one loop would (``np.add.accumulate`` is
    sequential); the smallest value comes from the smallest bit pattern (``inf``
    for an empty set).
    """
    _, nforce, sforce, fbits = counts
    nch = (d + chunk - 1) // chunk
    nforce = nforce.reshape(na, nch).sum(axis=1)
    sforce = np.add.accumulate(sforce.reshape(na, nch), axis=1)[:, -1].copy()
    mforce = fbits.reshape(na, nch).min(axis=1).view(f"f{fbits.itemsize}")  # float16: bits
    mforce = np.where(nforce > 0, mforce.astype(np.float64), np.inf)
    return nforce, sforce, mforce


def locate_ties(
    x: np.ndarray, rows: np.ndarray, t: np.ndarray, jcut: np.ndarray, ktie: np.ndarray
) -> None:
    """Resolve rows whose cut splits a run of equal values (``jcut == -2``).

    Sets ``jcut[i]`` to the flat index of the ``ktie[i]``-th pixel equal to ``t[i]``
    in row ``rows[i]``: the stable order selects ties by increasing index.
    """
    partial = np.flatnonzero(jcut == -2)
    if partial.size:
        work = partial.size * x.shape[1]
        run_tasks(ties_tasks, partial.size, x, rows, partial, t, jcut, ktie, work=work)


def rma_cuts(
    x: np.ndarray,
    xb: np.ndarray,
    stats: np.ndarray,
    rows: np.ndarray,
    metric: int,
    gamma: float,
    chunk: int,
    cmax: np.ndarray,
    sbits: np.ndarray | None = None,
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
    cmax : ndarray of float64, shape (R, n_chunks)
        The largest value of each work item (:func:`chunk_maxima`).
    sbits : ndarray of uint64, shape (R, n_chunks, n_sub), optional
        Filled in for the solved rows by :func:`band_values`.

    Returns
    -------
    tau, t, jcut, score : ndarrays of shape (len(rows),)
        The cut of each requested row (see the module docstring).
    """
    na = rows.shape[0]
    metric64 = np.int64(metric)
    gamma = float(gamma)
    lo, hi = _aot.call(rma_bounds_rows, stats, rows, metric64, gamma, np.int64(x.shape[1]))
    # pass 2: count the band, sum the forced set and gather the band (one read)
    counts, band, start = band_values(x, xb, rows, (lo, hi), chunk, cmax, sbits)
    nforce, sforce, mforce = _forced_sets(counts, na, x.shape[1], chunk)
    out = (
        np.empty(na, dtype=np.int64),
        np.empty(na),
        np.empty(na, dtype=np.int64),
        np.empty(na),
        np.zeros(na, dtype=np.int64),
    )
    if na:
        run_tasks(
            rma_rows_tasks,
            na,
            x,
            stats,
            rows,
            (metric64, gamma, lo, hi),
            band,
            (start, nforce, sforce, mforce),
            out,
            work=band.size * SOLVE_WEIGHT,
        )
    tau, t, jcut, score, ktie = out
    locate_ties(x, rows, t, jcut, ktie)
    return tau, t, jcut, score


# -- the other solvers (kernels/solver_passes.py) -----------------------------------------
def solver_cuts(
    x: np.ndarray,
    xb: np.ndarray,
    stats: np.ndarray,
    rows: np.ndarray,
    params: tuple,
    chunk: int,
    cmax: np.ndarray,
    sbits: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Cuts of the stable descending order for each active row under a non-RMA solver.

    Parameters
    ----------
    x : ndarray, shape (R, d)
        Probabilities (float32/float64, or float16 as uint16 bits).
    xb : ndarray, shape (R, d)
        The same buffer as unsigned integers of the same width.
    stats : ndarray, shape (R, 4)
        Row statistics with maxima (see :func:`row_stats`).
    rows : ndarray of int64
        The rows to solve.
    params : tuple of (solver, metric, gamma, eps)
        ``EXACT``/``BA``/``TRNA``/``BA_TRNA``, ``DICE``/``IOU``, smoothing, RNA window
        tail mass.
    chunk : int
        Pixels per work item.
    cmax : ndarray of float64, shape (R, n_chunks)
        The largest value of each work item (:func:`chunk_maxima`).
    sbits : ndarray of uint64, shape (R, n_chunks, n_sub), optional
        Filled in for the solved rows by :func:`band_values`.

    Returns
    -------
    tau, t, jcut, score : ndarrays of shape (len(rows),)
        As :func:`rma_cuts`.
    """
    solver, metric, gamma, eps = params
    solver, metric, gamma, eps = np.int64(solver), np.int64(metric), float(gamma), float(eps)
    na = rows.shape[0]
    d = x.shape[1]
    lo = _aot.call(candidate_bounds, stats, rows, metric, gamma, np.int64(d))
    hi = np.full(na, np.inf)
    if solver != EXACT:
        # the summaries first: BA's and TRNA's bands need the row's window
        summaries = row_summaries(x, rows, chunk)
        info = np.finfo(np.float16 if x.dtype == np.uint16 else x.dtype)
        exact_sum = (np.int64(info.nmant), np.int64(np.log2(info.smallest_subnormal)))
        problem = (solver, gamma, eps)
        lo, hi, ba = _aot.call(rna_bands, summaries, stats, rows, problem, lo, exact_sum)
    counts, cand, start = band_values(x, xb, rows, (lo, hi), chunk, cmax, sbits)
    out = (
        np.zeros(na, dtype=np.int64),
        np.full(na, np.inf),
        np.full(na, -1, dtype=np.int64),
        np.zeros(na),
        np.zeros(na, dtype=np.int64),
    )
    if na and solver == EXACT:
        # fewer rows than threads: their summaries from blocks on every thread (else
        # each row's task forms its own)
        few = na < _threads.pass_threads(na * d)
        whole = row_summaries(x, rows, chunk, DEFAULT_NPOW) if few else np.zeros((0, 1))
        run_tasks(exact_rows_tasks, na, x, rows, (metric, gamma, lo), cand, start, whole, out)
    elif na:
        forced = (start, *_forced_sets(counts, na, d, chunk))
        # each row to BA's kernel or TRNA's: a first call compiles the objectives its
        # rows use, and ba+trna shares the kernels of ba and trna
        args = (x, rows, (solver, gamma, eps), cand, forced, summaries, out)
        for kernel, sel in (
            (ba_rows_tasks, np.flatnonzero(ba)),
            (trna_rows_tasks, np.flatnonzero(~ba)),
        ):
            if sel.size:
                run_tasks(kernel, sel.size, sel, *args)
    tau, t, jcut, score, ktie = out
    locate_ties(x, rows, t, jcut, ktie)
    return tau, t, jcut, score


def row_summaries(x: np.ndarray, rows: np.ndarray, chunk: int, npow: int = 0) -> np.ndarray:
    """Whole-row summaries of the rows, formed on every thread.

    Parameters
    ----------
    x : ndarray, shape (R, d)
        Probabilities (float32/float64, or float16 as uint16 bits).
    rows : ndarray of int64
        The rows.
    chunk : int
        Pixels per work item.
    npow : int, default 0
        Power sums to form (0: ``d, mu, var, m3`` only).

    Returns
    -------
    ndarray of float64, shape (len(rows), SUM_HEAD + npow)
        What :func:`rankseg.kernels.summary.row_summary` gives each row, bit for
        bit: the work items form each block's sums, which are then added in block
        order, as its one loop adds them.
    """
    na, d = rows.shape[0], x.shape[1]
    summaries = np.zeros((na, SUM_HEAD + npow))
    part = np.empty((na, (d + SUM_BLOCK - 1) // SUM_BLOCK, 3 + npow))
    ntask = na * ((d + chunk - 1) // chunk)
    kernel = summary_tasks if npow else cumulant_tasks
    run_tasks(kernel, ntask, x, rows, np.int64(chunk), part, work=na * d)
    summaries[:, SUM_D] = d
    if part.shape[1]:
        totals = np.empty((na, part.shape[2]))
        _aot.call(blocks_in_order, part, totals)  # in block order, as np.add.accumulate
        summaries[:, SUM_MU:] = totals
    return summaries


def empty_scores(x: np.ndarray, rows: np.ndarray, params: tuple) -> np.ndarray:
    """Return the solver's objective of the empty mask, ``π(0)``, per row (``γ > 0``).

    Parameters
    ----------
    x : ndarray, shape (R, d)
        Probabilities (float32/float64, or float16 as uint16 bits).
    rows : ndarray of int64
        The rows (typically the pruned ones).
    params : tuple of (solver, metric, gamma, eps)
        As for :func:`solver_cuts`; ``gamma > 0``.

    Returns
    -------
    ndarray of float64
        ``γ E[1/(γ+Γ)]`` for ``EXACT`` (Dice and IoU agree at τ = 0), the RNA
        version for ``BA``/``TRNA``/``BA_TRNA``.
    """
    solver, _, gamma, eps = params
    out = np.empty(rows.shape[0])
    if solver == EXACT:
        run_tasks(empty_exact_tasks, rows.shape[0], x, rows, float(gamma), out)
    else:
        run_tasks(empty_rna_tasks, rows.shape[0], x, rows, float(gamma), float(eps), out)
    return out


def solve_packed(
    cand: np.ndarray, first: np.ndarray, summaries: np.ndarray, params: tuple
) -> tuple[np.ndarray, ...]:
    """Solve many rows from their packed candidates in parallel (host side of the GPU path).

    Parameters
    ----------
    cand : ndarray of float64
        Row ``i``'s candidates (``p > θ``, :func:`rankseg.kernels.solver_passes.candidate_bound`) in
        ``cand[first[i]:first[i + 1]]``, any order (sorted here, in place).
    first : ndarray of int64, shape (n + 1,)
        Offsets of the rows in ``cand``.
    summaries : ndarray of float64, shape (n, SUM_HEAD + DEFAULT_NPOW)
        Whole-row summaries.
    params : tuple of (solver, metric, gamma, eps)
        As for :func:`solver_cuts`.

    Returns
    -------
    tau, t, score, k_in, full, need : ndarrays of shape (n,)
        As :func:`solve_candidates`; ``need[i]`` is True when the exact solver asks
        for more than the candidates (solve that row with :func:`solve_candidates`).
    """
    solver, metric, gamma, eps = params
    params = (np.int64(solver), np.int64(metric), float(gamma), float(eps))
    n = first.shape[0] - 1
    out = (
        np.zeros(n, dtype=np.int64),
        np.full(n, np.inf),
        np.zeros(n),
        np.zeros(n, dtype=np.int64),
        np.ones(n, dtype=np.bool_),
        np.zeros(n, dtype=np.bool_),
    )
    run_tasks(packed_tasks, n, cand, first, summaries, params, out)
    return out


def solve_candidates(
    q: np.ndarray,
    summary: np.ndarray,
    params: tuple,
    theta: float,
    whole_row: Callable[[], np.ndarray],
) -> tuple[int, float, float, int, bool]:
    """Solve one row from its candidates, as :func:`solver_cuts` does.

    For a backend that gathers the candidates elsewhere (the GPU): the same sort,
    search range, solver and prefix extension as the CPU path.

    Parameters
    ----------
    q : ndarray of float64
        The row's candidates ``p > θ`` in any order (sorted here, in place).
    summary : ndarray of float64, shape (SUM_HEAD + DEFAULT_NPOW,)
        The row's whole-row summary (see :func:`rankseg.kernels.exact.row_summary`).
    params : tuple of (solver, metric, gamma, eps)
        As for :func:`solver_cuts`.
    theta : float
        The candidate bound ``θ`` of :func:`rankseg.kernels.solver_passes.candidate_bound`.
    whole_row : callable
        Returns the whole row (as :func:`solver_cuts` reads
        it); called only when the exact solver asks for a longer prefix.

    Returns
    -------
    tau, t, score, k_in, full : int, float, float, int, bool
        The first maximizer ``τ*``, the cut value (``inf`` for ``τ* = 0``), the
        objective at ``τ*``, the selected values equal to ``t`` and whether every
        value equal to ``t`` is selected.
    """
    solver, metric, gamma, eps = params
    d = int(summary[SUM_D])
    sort_descending(q)
    tau_hi = search_end(solver, q, d, gamma)
    best, val, p_need = solve_row(solver, metric, q, summary, (gamma, eps), tau_hi)
    tries = 0
    row = None
    while p_need > 0.0 and tries < 5:
        tries += 1
        theta = next_theta(theta, p_need, tries)
        row = whole_row() if row is None else row
        q = prefix_above(row, theta)
        best, val, p_need = solve_row(solver, metric, q, summary, (gamma, eps), tau_hi)
    if best == 0:
        return 0, np.inf, float(val), 0, True
    t, k_in, full = cut_of(q, best)
    return int(best), float(t), float(val), int(k_in), bool(full)


# -- writers (kernels/masks.py, kernels/assign.py) ---------------------------------
def write_masks(
    x: np.ndarray,
    t: np.ndarray,
    jcut: np.ndarray,
    out: np.ndarray,
    chunk: int,
    smax: np.ndarray | None = None,
) -> None:
    """Write ``out[r, j] = is_selected(x[r, j], j, t[r], jcut[r])`` for every row.

    Parameters
    ----------
    x : ndarray, shape (R, d)
        Probabilities (float32/float64, or float16 as uint16 bits).
    t, jcut : ndarray, shape (R,)
        The cut of each row; ``t = inf`` writes an all-False row without reading ``x``.
    out : ndarray of bool, shape (R, d)
        Destination.
    chunk : int
        Pixels per work item.
    smax : ndarray of float64, shape (R, n_chunks, n_sub), optional
        The largest value of each sub-block of each work item, for the rows with a
        finite ``t`` (:func:`band_values`, :func:`chunk_maxima`): a sub-block whose
        maximum lies below its row's ``t`` is written all-False without being read.
    """
    nrow, d = x.shape
    nch = (d + chunk - 1) // chunk
    if smax is None:
        smax = np.full((nrow, nch, sub_blocks(chunk, d)), np.inf)
    # the sub-blocks read (the others are only written), a written byte as a quarter value
    read = int(np.count_nonzero(smax >= t[:, None, None])) * min(chunk, d, SUB_BLOCK)
    args = (x, (t, jcut, smax), out, np.int64(chunk))
    run_tasks(write_masks_tasks, nrow * nch, *args, work=read + out.size // 4)


def write_threshold_masks(x: np.ndarray, out: np.ndarray, chunk: int) -> None:
    """Write ``out = x > 0.5`` (the accuracy rule ``tr`` for multilabel output).

    Parameters
    ----------
    x : ndarray, shape (R, d)
        Probabilities (float32/float64, or float16 as uint16 bits).
    out : ndarray of bool, shape (R, d)
        Destination.
    chunk : int
        Pixels per work item.
    """
    nrow, d = x.shape
    ntask = nrow * ((d + chunk - 1) // chunk)
    run_tasks(threshold_tasks, ntask, x, out, np.int64(chunk))


def assign_labels(
    x: np.ndarray,
    ncls: int,
    cut: tuple,
    mu: np.ndarray,
    params: tuple,
    out: np.ndarray,
    chunk: int,
    smax: np.ndarray,
) -> None:
    """Resolve per-class cuts into a label map.

    Parameters
    ----------
    x : ndarray, shape (B*C, d)
        Probabilities (float32/float64, or float16 as uint16 bits).
    ncls : int
        Number of classes C.
    cut : tuple of (t, jcut, active)
        Per row (length B*C): smallest selected value (``inf`` if empty), tie
        cut index, and whether the class is active (not pruned).
    mu : ndarray, shape (B*C,)
        Sum of probabilities of each row.
    params : tuple of (metric, gamma, void_policy, void_index)
        ``void_policy`` true writes ``void_index`` where no class selects a pixel.
    out : ndarray of int, shape (B, d)
        Destination label map.
    chunk : int
        Pixels per work item.
    smax : ndarray of float64, shape (B*C, n_chunks, n_sub)
        The largest value of each sub-block of each work item, for the active rows
        with a finite ``t`` (:func:`band_values`, :func:`chunk_maxima`): a class
        whose maximum over a sub-block lies below its ``t`` is not read there.
    """
    t, jcut, active = cut
    metric, gamma, void_policy, void_index = params
    params = (np.int64(metric), float(gamma), bool(void_policy), np.int64(void_index))
    nrow, d = x.shape
    nb = nrow // ncls
    nch = (d + chunk - 1) // chunk
    ncls64 = np.int64(ncls)
    rcut = (t, jcut, active, np.int64(chunk))
    sums = (np.empty((nb * nch, ncls64)), np.empty((nb * nch, ncls64)))
    status = np.empty((nb, d), dtype=np.uint8)
    # pass A: exclusive pixels are final; conflicts are marked and logged for pass B
    cuts = (rcut, smax, selection_counters(ncls))
    log = conflict_log(nb * nch, ncls, min(chunk, d))
    run_tasks(exclusive_tasks, nb * nch, x, ncls64, cuts, out, status, sums, log, work=x.size)
    # per sample: safe sums and counts, the work items added in order (as one loop
    # would: np.add.accumulate is sequential), and whether any class is active
    m, n = (np.add.accumulate(a.reshape(nb, nch, ncls64), axis=1)[:, -1].copy() for a in sums)
    safe = (m, n, active.reshape(nb, ncls64).any(axis=1))
    # pass B: conflicts and unassigned pixels by the largest increment
    # the logged pixels' bids (each class's, at a solved value's weight), and the
    # items that scan their chunk again because their log overflowed
    seen = log[2]
    cap = log[0].shape[1]
    logged = int(np.minimum(seen, cap).sum())
    work = (logged * SOLVE_WEIGHT + int(np.count_nonzero(seen > cap)) * chunk) * ncls
    args = (x, ncls64, rcut, mu, params, status, safe, out, log)
    run_tasks(conflict_tasks, nb * nch, *args, work=work)


def selection_counters(ncls: int) -> tuple[np.ndarray, np.ndarray, np.integer]:
    """Scratch counters of the multiclass resolution's first pass, and their zero.

    Bytes while the classes fit in one (four times the SIMD lanes of int32; numba
    compiles only the variant a call needs), else int32.

    Parameters
    ----------
    ncls : int
        Number of classes C.

    Returns
    -------
    tuple of (ndarray, ndarray, integer)
        Two arrays of ``SUB_BLOCK`` counters (how many classes select a pixel, and
        the last that does) and the zero of their dtype.
    """
    dtype = np.uint8 if ncls <= 255 else np.int32
    return np.empty(SUB_BLOCK, dtype), np.empty(SUB_BLOCK, dtype), dtype(0)


def conflict_slots(ncls: int, item: int) -> int:
    """Pixels per work item that pass A logs for pass B (:func:`conflict_log`).

    ``min(CONFLICT_SLOTS, CONFLICT_VALUES // ncls)`` (:mod:`rankseg._config`), and
    for items of few pixels at most ``max(CONFLICT_MIN, item // CONFLICT_SHARE)``;
    at least one: pass B logs the pixels it scans batch by batch into the same
    slots, so any count gives the same labels.

    Parameters
    ----------
    ncls : int
        Number of classes C.
    item : int
        Pixels of a work item: ``min(chunk, d)``.

    Returns
    -------
    int
    """
    share = max(CONFLICT_MIN, item // CONFLICT_SHARE)
    return max(1, min(CONFLICT_SLOTS, CONFLICT_VALUES // max(ncls, 1), share))


def conflict_log(nitems: int, ncls: int, item: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Allocate the slots in which pass A logs each work item's unsettled pixels.

    :func:`conflict_slots` pixels per work item.  The arrays are not initialised:
    a work item writes only the slots it uses.

    Parameters
    ----------
    nitems : int
        Number of work items.
    ncls : int
        Number of classes C.
    item : int
        Pixels of a work item: ``min(chunk, d)``.

    Returns
    -------
    tuple of (ndarray, ndarray, ndarray)
        ``idx`` (int64, shape (nitems, cap)): the logged pixels' indices in the row;
        ``vals`` (float64, shape (nitems, cap, C)): their values; ``seen`` (int64,
        shape (nitems,)): how many pixels each item had to log, also those that did
        not fit.
    """
    cap = conflict_slots(ncls, item)
    return (
        np.empty((nitems, cap), dtype=np.int64),
        np.empty((nitems, cap, ncls)),
        np.empty(nitems, dtype=np.int64),
    )


def argmax_labels(x: np.ndarray, ncls: int, out: np.ndarray, chunk: int) -> None:
    """Write the argmax over classes (first maximum wins) into ``out``.

    Parameters
    ----------
    x : ndarray, shape (B*C, d)
        Probabilities (float32/float64, or float16 as uint16 bits).
    ncls : int
        Number of classes C.
    out : ndarray of int, shape (B, d)
        Destination label map.
    chunk : int
        Pixels per work item.
    """
    nrow, d = x.shape
    ntask = (nrow // ncls) * ((d + chunk - 1) // chunk)
    run_tasks(argmax_tasks, ntask, x, np.int64(ncls), out, np.int64(chunk))
