"""Host driver of the CPU backend: the twin of :mod:`rankseg.cuda.driver`.

:func:`predict` runs one validated call of :meth:`rankseg.RankSEG.predict` on the
host, with the same signature as the GPU driver's.  The input is read in place as
``(B*C, d)`` rows (float16 as its uint16 bits); each pass is a launcher of
:mod:`rankseg.cpu.launchers` over the compiled kernels of :mod:`rankseg.kernels`:

1. :func:`~rankseg.cpu.launchers.row_stats`: one streaming pass over every row
   (sums, maxima, validity; invalid values raise here);
2. pruning (``pruning_prob``) or the presence rule, then the cut of each active row
   (:func:`~rankseg.cpu.launchers.rma_cuts`, or
   :func:`~rankseg.cpu.launchers.solver_cuts` for the other solvers);
3. the mask writer, or the multiclass resolution
   (:func:`~rankseg.cpu.launchers.assign_labels`).

The thread count of the call is decided here (:func:`rankseg._threads.call_threads`:
one thread for small inputs, no more than the idle cores), and whether an RMA call
runs instead as one compiled call per range of units (multiclass samples,
multilabel rows), each on one thread, with no host step between its passes
(:func:`rankseg._threads.serial_threads`: a call of one thread, with at least as
many units as threads, or a mid-sized sample on two threads;
:mod:`rankseg.kernels.rma_serial`), or forms a multiclass call's cuts so
(:func:`rankseg._threads.cut_threads`).  Every path gives the same bits.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rankseg import _validation as v
from rankseg._compile import aot as _aot
from rankseg._config import CHUNK
from rankseg._policies import (
    SOLVER_CODE,
    bits_view,
    kernel_view,
    metric_code,
    one_bits,
    void_label,
)
from rankseg._presence import presence_features
from rankseg._records import PredictInfo, empty_info
from rankseg._threads import call_threads, cut_threads, num_threads, serial_threads
from rankseg.cpu.launchers import (
    argmax_labels,
    assign_labels,
    chunk_maxima,
    conflict_slots,
    empty_scores,
    rma_cuts,
    row_stats,
    solver_cuts,
    sub_blocks,
    write_masks,
    write_threshold_masks,
)
from rankseg.cpu.tasks import run_tasks
from rankseg.kernels.rma_passes import STAT_MAX, STAT_MU
from rankseg.kernels.rma_serial import rma_labels_serial, rma_masks_serial, serial_cuts

#: Ranges per thread on the one-compiled-call paths with several threads
#: (:func:`_predict_serial`, :func:`_predict_cut_ranges`): a few, so that a thread
#: the OS pauses holds up little
_RANGES_PER_THREAD = 4

#: When a small RMA call runs as one compiled call (:func:`_predict_serial`):
#: ``"ready"`` (the default) when that needs no compile -- the kernels compiled
#: ahead of time have it, or numba has it compiled or in its disk cache -- so a
#: fresh source install's first call compiles no more than the launchers' kernels;
#: ``"always"`` (``rankseg warmup``, the tests) compiles it when needed; ``"never"``
#: runs the launchers (the ahead-of-time build's second discovery round, the tests'
#: comparison).  Results are the same bit for bit.
SERIAL_CALL = "ready"

__all__ = ["checked_row_stats", "predict"]


def predict(model: Any, arr: np.ndarray, target: tuple, return_info: bool) -> Any:
    """Run a validated prediction on the host.

    Parameters
    ----------
    model : RankSEG
        The (validated) parameters.
    arr : ndarray, shape (B, C, *spatial)
        Validated probabilities (float16/float32/float64, native byte order).
    target : tuple of (shape, dtype, out)
        Output shape and dtype (:meth:`rankseg.RankSEG.plan`), and the checked
        ``out`` array (or None: a new array is allocated).
    return_info : bool
        Also return a :class:`rankseg.PredictInfo`.

    Returns
    -------
    ndarray, or a tuple with the info
        The label map or masks (``out`` itself when given).
    """
    out_shape, out_dtype, out = target
    result = np.empty(out_shape, dtype=out_dtype) if out is None else out
    nb, nc = arr.shape[:2]
    if nb == 0:
        return (result, empty_info(nc)) if return_info else result
    # one thread for small inputs, and no more threads than there are idle cores
    # (call_threads; docs/performance.rst)
    nthreads = call_threads(arr.size)  # also checks RANKSEG_NUM_THREADS
    # the units decided on their own: samples (multiclass) or rows (multilabel)
    multiclass = model.output_mode == "multiclass"
    units = nb if multiclass else nb * nc
    split = serial_threads(arr.size, units, nthreads) if _serial_rma(model) else 0
    if SERIAL_CALL != "never" and split:
        done = _predict_serial(model, arr, result, return_info, (split, out is None))
        if done is not None:
            return done
    elif SERIAL_CALL != "never" and multiclass and _serial_rma(model):
        cuts = cut_threads(nb * nc, nthreads)  # the cuts by ranges of rows, then labels
        done = _predict_cut_ranges(model, arr, result, return_info, cuts) if cuts else None
        if done is not None:
            return done
    with num_threads(nthreads):
        return _predict(model, arr, result, return_info)


def _serial_rma(model: Any) -> bool:
    """Whether a small call of ``model`` runs as one compiled call (:func:`_predict_serial`)."""
    return model.solver == "rma" and model.metric != "acc" and model.presence is None


def _predict_serial(
    model: Any, arr: np.ndarray, result: np.ndarray, return_info: bool, split: tuple[int, bool]
) -> Any:
    """Run an RMA call as one compiled call per range of units (``kernels/rma_serial``).

    A unit is what is decided on its own: a sample (multiclass: its classes share
    the label map) or a row (multilabel: each (sample, class) mask).  The same passes
    as :func:`_predict`, on one thread per range, without the host's steps between
    them.  ``split`` is ``(threads, fresh)``: the threads that take the ranges
    (:func:`rankseg._threads.serial_threads`; 1: the whole call as one compiled
    call) and whether ``result`` is a new array.  Returns None when a kernel would
    need a compile first (:data:`SERIAL_CALL`) or when a row holds a value outside
    [0, 1] (or -0.0): :func:`_predict` then tells which and raises (or decides).
    Nothing is written to a caller's ``out`` then: with several ranges (each stops
    before writing only its own units) they write into a new array, copied into
    ``out`` when every range is done.
    """
    nthreads, fresh = split
    nb, nc = arr.shape[:2]
    d = arr.size // (nb * nc)
    x = arr.reshape(nb * nc, d)
    per = nc if model.output_mode == "multiclass" else 1  # rows per unit
    units = nb * nc // per
    nranges = 1 if nthreads <= 1 else min(units, _RANGES_PER_THREAD * nthreads)
    target = result if nranges == 1 or fresh else np.empty_like(result)
    if nranges == 1:  # the whole call: one compiled call (a small call's fixed cost)
        call = _serial_call(model, x, 0, x.shape[0], target)
        if call is None:
            return None
        res = call[0](*call[1])
        if not res[0]:
            return None
        stats, tau, t, score, pruned = res[1], res[2], res[3], res[5], res[6]
    else:
        edges = [units * k // nranges * per for k in range(nranges + 1)]
        calls = [_serial_call(model, x, edges[k], edges[k + 1], target) for k in range(nranges)]
        parts = _run_calls(calls, nthreads)
        if parts is None:
            return None
        stats, tau, t, _, score, pruned = parts[:6]
    if model.output_mode == "multiclass":  # the layout check of _predict
        v.check_class_sums(stats[:, STAT_MU].reshape(nb, nc), d)
    if target is not result:
        np.copyto(result, target)
    if not return_info:
        return result
    return result, _info(nb, nc, tau, t, score, pruned)


def _run_calls(calls: list[Any], nthreads: int) -> list[np.ndarray] | None:
    """Run one-call kernels over ranges side by side; their results, range after range.

    ``calls`` holds ``(function, arguments)`` per range (None: it would need a
    compile first), run on ``nthreads`` threads by :func:`run_tasks`.  Returns the
    fields of the results after ``ok`` (those of ``serial_cuts``: ``stats, tau, t,
    jcut, score, pruned, smax``), each concatenated over the ranges in order, or
    None when a call would need a compile or a range found a bad value.
    """
    if any(call is None for call in calls):
        return None
    parts: list[Any] = [None] * len(calls)

    def ranges(k0: int, k1: int) -> None:
        for k in range(k0, k1):
            run, args = calls[k]
            parts[k] = run(*args)

    with num_threads(nthreads):
        run_tasks(ranges, len(calls))
    if not all(part[0] for part in parts):
        return None
    return [np.concatenate([part[i] for part in parts]) for i in range(1, len(parts[0]))]


def _row_problem(model: Any, x: np.ndarray, r0: int, r1: int) -> tuple:
    """Return the arguments of ``rma_serial.serial_cuts`` for rows ``r0 <= r < r1``.

    The rows in the kernels' view and as bits, 1.0's bit pattern, the work item
    size, the metric, the smoothing and ``pruning_prob``: what every one-call kernel
    takes first.
    """
    rows = x[r0:r1] if r1 - r0 < x.shape[0] else x
    return (
        kernel_view(rows),
        bits_view(rows),
        one_bits(x.dtype),
        np.int64(CHUNK),
        metric_code(model.metric),
        float(model.smooth),
        float(model.pruning_prob),
    )


def _serial_call(model: Any, x: np.ndarray, r0: int, r1: int, target: np.ndarray) -> Any:
    """Return the one compiled call ``(function, arguments)`` for rows ``r0 <= r < r1``.

    ``x`` holds every row (``(B*C, d)``), ``target`` the output of every sample;
    multiclass ranges hold whole samples.  None when the call would need a compile
    first (:func:`_serial_kernel`).
    """
    nb = target.shape[0]
    nc = x.shape[0] // nb
    d = x.shape[1]
    problem = _row_problem(model, x, r0, r1)
    args: tuple
    if model.output_mode == "multiclass":
        void = (void_label(model) is not None, np.int64(model.void_index))
        kernel = rma_labels_serial
        cap = conflict_slots(nc, min(CHUNK, d))
        out = target.reshape(nb, d)[r0 // nc : r1 // nc]
        args = (*problem, np.int64(nc), *void, cap, out)
    else:
        kernel = rma_masks_serial
        args = (*problem, target.reshape(x.shape[0], d)[r0:r1])
    run = _serial_kernel(kernel, args)
    return None if run is None else (run, args)


def _predict_cut_ranges(
    model: Any, arr: np.ndarray, result: np.ndarray, return_info: bool, nthreads: int
) -> Any:
    """Form a multiclass RMA call's cuts by ranges of rows, then resolve the labels.

    Each range of rows is one compiled call of
    :func:`rankseg.kernels.rma_serial.serial_cuts` (statistics, band, rank search:
    every row's own), on ``nthreads`` threads (:func:`rankseg._threads.cut_threads`);
    the labels are then resolved by :func:`~rankseg.cpu.launchers.assign_labels`,
    as :func:`_predict` resolves them: the same bits.  Returns None, having written
    nothing, when a kernel would need a compile first (:data:`SERIAL_CALL`) or a
    row holds a value outside [0, 1] (or -0.0): :func:`_predict` then takes the
    call.
    """
    nb, nc = arr.shape[:2]
    d = arr.size // (nb * nc)
    x = arr.reshape(nb * nc, d)
    nranges = min(nb * nc, _RANGES_PER_THREAD * nthreads)
    edges = [nb * nc * k // nranges for k in range(nranges + 1)]
    calls = []
    for k in range(nranges):
        args = _row_problem(model, x, edges[k], edges[k + 1])
        run = _serial_kernel(serial_cuts, args)
        calls.append(None if run is None else (run, args))
    parts = _run_calls(calls, nthreads)
    if parts is None:
        return None
    stats, tau, t, jcut, score, pruned, smax = parts
    v.check_class_sums(stats[:, STAT_MU].reshape(nb, nc), d)  # the layout check
    void = void_label(model) is not None
    policy = (metric_code(model.metric), model.smooth, void, np.int64(model.void_index))
    with num_threads(nthreads):
        cut = (t, jcut, ~pruned)
        xk = kernel_view(x)
        assign_labels(xk, nc, cut, stats[:, STAT_MU], policy, result.reshape(nb, d), CHUNK, smax)
    if not return_info:
        return result
    return result, _info(nb, nc, tau, t, score, pruned)


#: The function that runs a one-call kernel, by what decides its argument types: the
#: kernel and the types of the input's rows and of the output (every other argument
#: has a fixed type; the rows may be C- or F-ordered, as the input allows).  Kept
#: once found compiled (:func:`rankseg._compile.aot.find`, a function for exactly
#: those types, or :func:`rankseg._compile.aot.ready`).
_serial_ready: dict[tuple, Any] = {}


def _serial_kernel(kernel: Any, args: tuple) -> Any:
    """Return what runs ``kernel(*args)`` under :data:`SERIAL_CALL`, or None (compile first).

    Kept per kernel and the types of the rows (``args[0]``) and the output (the
    last argument of both serial kernels): the only arguments whose types vary.
    """
    key = (kernel, _aot.signature_key((args[0], args[-1])))
    run = _serial_ready.get(key)
    if run is None:
        run = _aot.find(kernel, args)
        if run is kernel and SERIAL_CALL == "ready" and not _aot.ready(kernel, args):
            return None
        _serial_ready[key] = run
    return run


def _info(
    nb: int, nc: int, tau: np.ndarray, t: np.ndarray, score: np.ndarray, pruned: np.ndarray
) -> PredictInfo:
    """Build the :class:`PredictInfo` of a call from its per-row cuts (length ``B*C``)."""
    return PredictInfo(
        tau=tau.reshape(nb, nc),
        threshold=np.where(tau > 0, t, np.nan).reshape(nb, nc),
        score=score.reshape(nb, nc),
        pruned=pruned.reshape(nb, nc),
    )


def _predict(model: Any, arr: np.ndarray, result: np.ndarray, return_info: bool) -> Any:
    """Run the passes on a validated input of shape ``(B, C, *spatial)`` with ``B > 0``."""
    nb, nc = arr.shape[:2]
    multiclass = model.output_mode == "multiclass"
    d = int(np.prod(arr.shape[2:]))
    x = arr.reshape(nb * nc, d)
    stats, cmax = checked_row_stats(arr, x)
    if multiclass:  # a layout check from the row sums just computed (docs/conventions)
        v.check_class_sums(stats[:, STAT_MU].reshape(nb, nc), d)
    xb, x = bits_view(x), kernel_view(x)
    flat_out = result.reshape(nb, d) if multiclass else result.reshape(nb * nc, d)

    if model.metric == "acc":
        if multiclass:
            argmax_labels(x, nc, flat_out, CHUNK)
        else:
            write_threshold_masks(x, flat_out, CHUNK)
        return result

    metric = metric_code(model.metric)
    gamma = model.smooth
    mu = stats[:, STAT_MU]
    if model.presence is None:
        pruned = stats[:, STAT_MAX] <= model.pruning_prob
    else:
        wins = _wins(x, arr.reshape(nb * nc, d), nc, flat_out, multiclass)
        pruned = wins == 0 if model.presence == "argmax" else np.zeros(nb * nc, dtype=bool)
    rows = np.flatnonzero(~pruned).astype(np.int64)
    t = np.full(nb * nc, np.inf)
    jcut = np.full(nb * nc, -1, dtype=np.int64)
    tau = np.zeros(nb * nc, dtype=np.int64)
    score = np.zeros(nb * nc)
    if gamma > 0:
        score[:] = gamma / (mu + gamma)
    if gamma > 0 and model.solver != "rma" and pruned.any():
        empty = np.flatnonzero(pruned).astype(np.int64)
        params = (SOLVER_CODE[model.solver], metric, gamma, model.eps)
        score[empty] = empty_scores(x, empty, params)
    # each sub-block's largest bit pattern, filled in for the solved rows by their
    # band pass (the writers skip the sub-blocks below a row's cut; the other rows
    # have t = inf, and their all-ones patterns decode as inf: never skipped)
    nsub = sub_blocks(CHUNK, d)
    sbits = np.full((nb * nc, cmax.shape[1], nsub), np.iinfo(np.uint64).max, np.uint64)
    if rows.size and model.solver == "rma":
        cuts = rma_cuts(x, xb, stats, rows, metric, gamma, CHUNK, cmax, sbits)
        tau_a, t_a, jcut_a, score_a = cuts
    elif rows.size:
        params = (SOLVER_CODE[model.solver], metric, gamma, model.eps)
        cuts = solver_cuts(x, xb, stats, rows, params, CHUNK, cmax, sbits)
        tau_a, t_a, jcut_a, score_a = cuts
    smax = chunk_maxima(sbits, arr, xb)
    if rows.size:
        tau[rows], t[rows], jcut[rows], score[rows] = tau_a, t_a, jcut_a, score_a
    if model.presence is not None and not isinstance(model.presence, str):
        # the presence model: keep the empty mask when P(absent) >= P(present) * score
        rows_f = arr.reshape(nb * nc, d)
        feats = presence_features(rows_f, stats[:, STAT_MAX], mu, wins)
        present = model.presence.predict_proba(feats)
        pruned = (1.0 - present) >= present * score
        t[pruned], jcut[pruned], tau[pruned] = np.inf, -1, 0
        score = np.where(pruned, 1.0 - present, present * score)
    if multiclass:
        void = void_label(model) is not None
        policy = (metric, gamma, void, np.int64(model.void_index))
        assign_labels(x, nc, (t, jcut, ~pruned), mu, policy, flat_out, CHUNK, smax)
    else:
        write_masks(x, t, jcut, flat_out, CHUNK, smax)
    if not return_info:
        return result
    return result, _info(nb, nc, tau, t, score, pruned)


def _wins(
    x: np.ndarray, rows: np.ndarray, nc: int, flat_out: np.ndarray, multiclass: bool
) -> np.ndarray:
    """Pixels each (sample, class) row wins: argmax over classes, or ``p > 0.5``.

    ``x`` is the kernels' view of the rows (float16 as bits), ``rows`` their float view.
    Multiclass: the argmax labels are written into ``flat_out`` (the label map, later
    overwritten by the decision) and counted per sample.
    """
    if multiclass:
        argmax_labels(x, nc, flat_out, CHUNK)
        return np.stack([np.bincount(row, minlength=nc)[:nc] for row in flat_out]).reshape(-1)
    return np.array([np.count_nonzero(row > 0.5) for row in rows], dtype=np.int64)


def checked_row_stats(arr: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row statistics with the maxima filled in, raising on invalid values.

    Parameters
    ----------
    arr : ndarray, shape (B, C, *spatial)
        The input (for the error message).
    x : ndarray, shape (B*C, d)
        Its rows, in its own float dtype.

    Returns
    -------
    stats : ndarray of float64, shape (B*C, 4)
        The columns ``STAT_*`` of :mod:`rankseg.kernels.rma_passes`, maxima included.
    cmax : ndarray of float64, shape (B*C, n_chunks)
        The largest value of each work item
        (:func:`rankseg.cpu.launchers.chunk_maxima`).

    Raises
    ------
    ValueError
        If a row holds NaN, an infinity or a value outside [0, 1]
        (:func:`rankseg._validation.raise_bad_values`).
    """
    bits = bits_view(x)
    stats, maxbits, chunkbits = row_stats(kernel_view(x), bits, CHUNK)
    one = one_bits(x.dtype)
    stats[:, STAT_MAX] = maxbits.astype(bits.dtype).view(x.dtype)
    for r in np.flatnonzero(maxbits > one):
        # a pattern above 1.0's: NaN, inf, a value outside [0, 1] -- or only -0.0
        row = x[r].astype(np.float64)
        if np.isnan(row).any() or (row < 0).any() or (row > 1).any():
            v.raise_bad_values(arr, int(r))
        stats[r, STAT_MAX] = row.max()
    return stats, chunk_maxima(chunkbits, x, bits)
