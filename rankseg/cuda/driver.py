"""Host driver of the GPU backend: the one place that launches (memory: ``_memory.py``).

:func:`predict` runs one validated call of :meth:`rankseg.RankSEG.predict` on the
GPU.  The input stays where it is (a CUDA array) or is copied once to the device
(host input).  Every per-row decision of the common path is made on the device:

1. :func:`~rankseg.cuda.stats.row_stats_kernel` (per-tile partial statistics), then
   :func:`~rankseg.cuda.stats.row_setup_kernel` (folds them; validity, pruning and
   the screening bounds of each row, in the device record ``rowd``);
2. :func:`~rankseg.cuda.rma_passes.band_kernel` gathers each active row's band into a
   buffer of :func:`rankseg.cuda._config.band_capacity` values per row, and
   :func:`~rankseg.cuda.rma_passes.cut_kernel` sorts and scans it: the cut of each row;
3. **one** copy of ``rowd`` to the host (the only synchronization): invalid values
   raise here; the rare rows whose band did not fit are gathered again into an
   exactly sized buffer, and ties straddling a cut are located (both on the host's
   initiative);
4. the mask writers, or multiclass passes A and B, read ``rowd`` on the device.

The output is written on the device: for CUDA input it is a numba device array
whose memory comes from the input's own library when that is CuPy or PyTorch (its
memory pool; else numba allocates), for host input it is copied to the host.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from rankseg import _validation as v
from rankseg._policies import SOLVER_CODE, bits_view, kernel_view, metric_code, void_label
from rankseg._records import PredictInfo, empty_info
from rankseg.cpu.launchers import empty_scores, solve_candidates, solve_packed
from rankseg.cuda import _config, load
from rankseg.cuda._memory import (
    LOCK,
    Buffers,
    alloc_output,
    buffers,
    release_buffers,
    to_device,
    to_host,
)
from rankseg.cuda.assign import argmax_kernel, pass_a_kernel, pass_b_kernel, safe_sums_kernel
from rankseg.cuda.exact import MAX_NODES, NPOW, NSUM, TAU_CHUNK, quadrature_kernel, summary_kernel
from rankseg.cuda.masks import write_masks_kernel, write_threshold_masks_kernel
from rankseg.cuda.rma_passes import (
    band_kernel,
    cut_kernel,
    tie_count_kernel,
)
from rankseg.cuda.solver_passes import certified_range_kernel, sort_rows_kernel
from rankseg.cuda.stats import (
    BAND_FORCED_NEG_MIN,
    BAND_N,
    NBAND,
    NROWD,
    NSTAT,
    R_ACTIVE,
    R_BANDN,
    R_FULL,
    R_JCUT,
    R_KIN,
    R_LO,
    R_OVER,
    R_SCORE,
    R_T,
    R_TAU,
    STAT_BAD,
    STAT_MU,
    reduce_parts_kernel,
    row_setup_kernel,
    row_stats_kernel,
)
from rankseg.kernels.solver_passes import EXACT
from rankseg.kernels.summary import SUM_D, SUM_HEAD, SUM_MU

__all__ = ["predict", "release_buffers", "to_device", "to_host"]


class _DeviceRows:
    """Just enough of an array for :func:`rankseg._validation.raise_bad_values`."""

    def __init__(self, x: Any, shape: tuple[int, ...]) -> None:
        self._x = x
        self.shape = shape

    def __getitem__(self, bc: tuple[int, int]) -> np.ndarray:
        b, c = bc
        return self._x[b * self.shape[1] + c].copy_to_host()


def predict(model: Any, arr: Any, target: tuple, return_info: bool) -> Any:
    """Run a validated prediction on the GPU.

    Parameters
    ----------
    model : RankSEG
        The (validated) parameters.
    arr : ndarray or numba device array, shape (B, C, *spatial)
        Validated probabilities: host input is copied to the device once.
    target : tuple of (shape, dtype, out)
        Output shape and dtype, and the checked host ``out`` array (or None).
    return_info : bool
        Also return a :class:`rankseg.PredictInfo` (NumPy arrays).

    Returns
    -------
    numba device array or ndarray, or a tuple with the info
        A device array for device input, a NumPy array for host input.
    """
    with LOCK, _quiet_low_occupancy() as config:
        try:
            return _predict(model, arr, target, return_info)
        finally:
            if getattr(config, "CUDA_PER_THREAD_DEFAULT_STREAM", 0):
                # Each thread launches on its own stream: the next call (maybe from
                # another thread) reuses the work buffers this call's last kernels
                # still read, so they must finish before the lock is released.  On
                # the legacy default stream (numba's default) the launches of all
                # threads run in order and no wait is needed.
                load().synchronize()


@contextmanager
def _quiet_low_occupancy() -> Iterator[Any]:
    """Silence numba-cuda's low-occupancy warning for this call's launches.

    A launch over few blocks (one image, few classes) makes numba-cuda warn about GPU
    under-utilization on every call; that is the input's size, not a defect.  The
    switch is numba-cuda's own configuration flag (its test suite does the same),
    set while the driver's lock is held and restored after; ``warnings.catch_warnings``
    is not thread-safe and leaked filters into (or dropped them from) the
    process-wide list when two threads called at once.  Yields numba-cuda's
    configuration module.
    """
    try:
        # numba-cuda's package is reached through a redirect mypy does not follow
        from numba.cuda.core import config  # type: ignore[import-not-found]
    except ImportError:  # older numba-cuda: numba's own config module
        from numba.core import config
    if not hasattr(config, "CUDA_LOW_OCCUPANCY_WARNINGS"):
        yield config
        return
    old = config.CUDA_LOW_OCCUPANCY_WARNINGS
    config.CUDA_LOW_OCCUPANCY_WARNINGS = 0
    try:
        yield config
    finally:
        config.CUDA_LOW_OCCUPANCY_WARNINGS = old


def _predict(model: Any, arr: Any, target: tuple, return_info: bool) -> Any:
    cuda = load()
    ws = buffers(cuda)
    out_shape, out_dtype, out = target
    host = isinstance(arr, np.ndarray)
    nb, nc = arr.shape[:2]
    d = int(np.prod(arr.shape[2:]))
    nrow = nb * nc
    multiclass = model.output_mode == "multiclass"
    if nb == 0:
        result = out if out is not None else np.empty(out_shape, dtype=out_dtype)
        if not host:
            result = cuda.device_array(out_shape, dtype=out_dtype)
        return (result, empty_info(nc)) if return_info else result

    xdev = cuda.to_device(np.ascontiguousarray(arr)) if host else arr
    x = xdev.reshape(nrow, d)
    res = (
        cuda.device_array(out_shape, dtype=out_dtype)
        if host
        else alloc_output(cuda, arr, out_shape, out_dtype)
    )
    flat = res.reshape(nb, d) if multiclass else res.reshape(nrow, d)

    acc = model.metric == "acc"
    metric = np.int64(metric_code(model.metric))
    gamma = np.float64(model.smooth)
    cfg, ntiles, tile = _config.launch_tiles(nrow, d)
    part = ws.get("stats", (nrow, ntiles, NSTAT))
    row_stats_kernel[cfg](x, np.int64(tile), part)
    rowd = ws.get("rowd", (nrow, NROWD))
    fill = ws.get("fill", (nrow,), np.int64)
    jcut = ws.get("jcut", (nrow,), np.int64)
    solver = model.solver != "rma"
    params = (metric, gamma, np.float64(model.pruning_prob), np.int64(d), np.bool_(solver))
    _rows_launch(row_setup_kernel, nrow)(part, params, rowd, fill, jcut)
    if acc:
        if multiclass:
            cfg, _, tile = _config.launch_tiles(nb, d)
            argmax_kernel[cfg](x, nc, np.int64(tile), flat)
        else:
            write_threshold_masks_kernel[cfg](x, np.int64(tile), flat)
        _check_values(rowd.copy_to_host(), arr, host, x, nb, nc)
        return _finish(res, host, out)

    check = lambda rh: _check_values(rh, arr, host, x, nb, nc)  # noqa: E731
    if solver:
        rh, scores = _solver_cuts(ws, x, rowd, fill, jcut, model, check)
    else:
        rh = _rma_cuts(ws, x, rowd, fill, jcut, (metric, gamma), check)
    tau = rh[:, R_TAU].astype(np.int64)
    split = np.flatnonzero((tau > 0) & (rh[:, R_FULL] == 0))
    if solver or split.size:  # the host's cuts, ties straddling a cut (flat order)
        jc = rh[:, R_JCUT].astype(np.int64)
        if split.size:
            k_in = rh[split, R_KIN].astype(np.int64)
            jc[split] = _locate_ties(ws, x, split, rh[split, R_T], k_in)
        jcut = ws.put("jcut", jc)
    if multiclass:
        status = ws.get("status", (nb, d), np.uint8)
        fused = nc <= min(_config.FUSED_CLASSES, _config.MAX_FUSED_CLASSES)
        cfg, ntiles, tile = _config.launch_tiles(nb, d)
        part = ws.get("safe", (nrow, ntiles, 2))  # (sum, count) of each safe set
        tile64 = np.int64(tile)
        pass_a_kernel[cfg](x, nc, rowd, jcut, tile64, np.bool_(fused), flat, status, part)
        if not fused:
            ucfg, _, _ = _config.launch_tiles(nrow, d)
            safe_sums_kernel[ucfg](x, nc, tile64, flat, status, part)
        sums = ws.get("sums", (nrow, 2))
        _rows_launch(reduce_parts_kernel, nrow)(part, np.int64(0), sums)
        void = void_label(model) is not None
        pparams = (metric, gamma, np.bool_(void), np.int64(model.void_index))
        pass_b_kernel[cfg](x, nc, rowd, jcut, sums, pparams, tile64, flat, status)
    else:
        write_masks_kernel[cfg](x, rowd, jcut, np.int64(tile), flat)
    result = _finish(res, host, out)
    if not return_info:
        return result
    pruned = rh[:, R_ACTIVE] == 0
    score = rh[:, R_SCORE].copy()
    score[pruned] = gamma / (rh[pruned, STAT_MU] + gamma) if gamma > 0 else 0.0
    if solver:
        score[pruned] = scores[pruned]
    info = PredictInfo(
        tau=tau.reshape(nb, nc),
        threshold=np.where(tau > 0, rh[:, R_T], np.nan).reshape(nb, nc),
        score=score.reshape(nb, nc),
        pruned=pruned.reshape(nb, nc),
    )
    return result, info


def _rma_cuts(
    ws: Buffers, x: Any, rowd: Any, fill: Any, jcut: Any, mg: tuple, check: Any
) -> np.ndarray:
    """RMA cuts of every active row on the device; returns ``rowd`` on the host.

    ``jcut`` is final on the device except for rows whose cut splits a run of ties
    (``R_FULL == 0``, ``jcut = -2``), which the caller locates.
    """
    nrow, d = x.shape
    metric, gamma = mg
    cap = _config.band_capacity(d)
    rows, start, caps = ws.rows(nrow, cap)
    vdtype = np.float64 if x.dtype.itemsize > 4 else np.float32  # exact for the input
    values = ws.get("values", (nrow * cap,), vdtype)
    scratch = ws.get("scratch", (nrow * cap,), vdtype)
    band = _band(ws, x, rows, rowd, start, caps, fill, values)
    cut_params = (metric, gamma, np.int64(_config.SHARED_SORT), np.int64(d))
    cut_launch = _rows_launch(cut_kernel, nrow, _config.SORT_THREADS)
    cut_launch(values, rows, start, caps, band, scratch, cut_params, rowd, jcut)
    rh = rowd.copy_to_host()  # the one synchronization of the common path
    check(rh)
    over = np.flatnonzero(rh[:, R_OVER] > 0)
    if over.size:  # bands longer than the buffer: gathered again, exactly sized
        nband = rh[over, R_BANDN].astype(np.int64)
        start = np.zeros(over.size, dtype=np.int64)
        np.cumsum(nband[:-1], out=start[1:])
        size = max(1, int(nband.sum()))
        values = ws.get("long_values", (size,), vdtype)
        scratch = ws.get("long_scratch", (size,), vdtype)
        sub = (ws.put("sub_rows", over.astype(np.int64)), ws.put("sub_start", start))
        caps = ws.put("sub_cap", nband)
        sub_fill = ws.put("sub_fill", np.zeros(over.size, dtype=np.int64))
        band = _band(ws, x, sub[0], rowd, sub[1], caps, sub_fill, values)
        cut_launch = _rows_launch(cut_kernel, over.size, _config.SORT_THREADS)
        cut_launch(values, sub[0], sub[1], caps, band, scratch, cut_params, rowd, jcut)
        rh = rowd.copy_to_host()
    if ((rh[:, R_TAU] > 0) & (rh[:, R_FULL] == 0)).any():
        rh[:, R_JCUT] = jcut.copy_to_host()
    return rh


def _solver_cuts(
    ws: Buffers, x: Any, rowd: Any, fill: Any, jcut: Any, model: Any, check: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Cuts of the exact / BA / TRNA / BA+TRNA solvers.

    The GPU counts and gathers each active row's candidates (``p > θ``, the CPU's
    candidate bound) into an exactly sized buffer and sums the whole-row summary.
    The exact solver then stays on the device: each row's candidates are sorted
    (:func:`~rankseg.cuda.solver_passes.sort_rows_kernel`), its certified range found
    (:func:`~rankseg.cuda.solver_passes.certified_range_kernel`) and the objective
    evaluated by quadrature over that range
    (:func:`~rankseg.cuda.exact.quadrature_kernel`), which writes the cut to
    ``rowd``; a row it flags (``R_OVER``: the quadrature needs more of the row than
    its candidates, or too many nodes) is solved on the host.  BA, TRNA and BA+TRNA
    are solved on the host, rows in parallel
    (:func:`rankseg.cpu.launchers.solve_packed`).  Returns the host ``rowd`` with the
    cut columns and ``R_JCUT`` filled in (written back to the device), and the
    scores of the pruned rows (``π(0)``, the CPU's ``empty_scores`` on host copies of
    those rows when ``γ > 0``).
    """
    nrow, d = x.shape
    metric = metric_code(model.metric)
    gamma = float(model.smooth)
    sparams = (SOLVER_CODE[model.solver], metric, gamma, float(model.eps))
    rows, start, caps = ws.rows(nrow, 0)  # a zero buffer: count only
    vdtype = np.float64 if x.dtype.itemsize > 4 else np.float32
    band = _band(ws, x, rows, rowd, start, caps, fill, ws.get("cand", (1,), vdtype))
    counts = _fold(ws, band, 1 << BAND_FORCED_NEG_MIN)[:, BAND_N].astype(np.int64)
    rh = rowd.copy_to_host()
    check(rh)
    first = np.zeros(nrow + 1, dtype=np.int64)
    np.cumsum(counts, out=first[1:])
    cand = ws.get("cand", (max(1, int(first[-1])),), vdtype)
    fill = ws.put("sub_fill", np.zeros(nrow, dtype=np.int64))
    _band(ws, x, rows, rowd, ws.put("sub_start", first[:-1]), ws.put("sub_cap", counts), fill, cand)
    cfg, ntiles, tile = _config.launch_tiles(nrow, d)
    spart = ws.get("summary", (nrow, ntiles, NSUM))
    summary_kernel[cfg](x, np.int64(tile), spart)
    sums = _fold(ws, spart, 0)
    summary = np.empty((nrow, SUM_HEAD + NPOW))
    summary[:, SUM_D] = d
    summary[:, SUM_MU : SUM_HEAD + NPOW] = sums
    active = np.flatnonzero(rh[:, R_ACTIVE] > 0)
    packed = np.append(first[active], first[-1])  # inactive rows have no candidates
    rh[:, R_JCUT] = -1
    if active.size and sparams[0] == EXACT:
        rh = _exact_on_device(ws, cand, packed, active, summary, rowd, jcut, (metric, gamma, d))
        redo = np.flatnonzero(rh[active, R_OVER] > 0)
        if redo.size:  # the host solves what the quadrature flagged
            cand_h = cand.copy_to_host().astype(np.float64)
            for i in redo:
                _solve_on_host(
                    x, rh, active[i], cand_h[packed[i] : packed[i + 1]], summary, sparams
                )
    elif active.size:
        cand_h = cand.copy_to_host().astype(np.float64)
        out = solve_packed(cand_h, packed, summary[active], sparams)
        tau, t, score, k_in, full = out[:5]
        rh[active, R_TAU] = tau
        rh[active, R_T] = t
        rh[active, R_SCORE] = score
        rh[active, R_KIN] = k_in
        rh[active, R_FULL] = full
        for i in np.flatnonzero(out[5]):  # the exact solver asked for more of the row
            _solve_on_host(x, rh, active[i], cand_h[packed[i] : packed[i + 1]], summary, sparams)
    if active.size:
        tau = rh[active, R_TAU]
        rh[active, R_JCUT] = np.where(tau == 0, -1, np.where(rh[active, R_FULL] > 0, d, -2))
    ws.put("rowd", rh)
    scores = np.zeros(nrow)
    pruned = np.flatnonzero(rh[:, R_ACTIVE] == 0)
    if gamma > 0 and pruned.size:
        host_rows = kernel_view(np.stack([x[r].copy_to_host() for r in pruned]))
        scores[pruned] = empty_scores(host_rows, np.arange(pruned.size), sparams)
    return rh, scores


def _exact_on_device(
    ws: Buffers,
    cand: Any,
    packed: np.ndarray,
    active: np.ndarray,
    summary: np.ndarray,
    rowd: Any,
    jcut: Any,
    mgd: tuple,
) -> np.ndarray:
    """Sort, certified range and quadrature of the active rows on the GPU; host ``rowd``."""
    n = active.size
    first = ws.put("ex_first", packed)
    rows = ws.put("ex_rows", active.astype(np.int64))
    summaries = ws.put("ex_summary", summary)
    keys = bits_view(cand)
    tmp = ws.get("ex_keys", (cand.shape[0],), keys.dtype)
    nbits = np.int64(8 * cand.dtype.itemsize)
    _rows_launch(sort_rows_kernel, n, _config.SORT_THREADS)(keys, tmp, first, nbits)
    rng = ws.get("ex_range", (n, 2), np.int64)
    metric, gamma, d = mgd
    rparams = (np.int64(metric), np.float64(gamma))
    _rows_launch(certified_range_kernel, n, _config.SORT_THREADS)(
        cand, first, rows, summaries, rparams, rng
    )
    grid = max(1, min(n, _config.QUADRATURE_BLOCKS, _config.MAX_BLOCKS))  # scratch per block
    cfg = (grid, _config.launch(n, threads=_config.SORT_THREADS)[1])
    nodes = ws.get("ex_nodes", (grid, MAX_NODES, 2))
    state = ws.get("ex_state", (grid, MAX_NODES, 5))
    contrib = ws.get("ex_contrib", (grid, MAX_NODES, TAU_CHUNK))
    qparams = (np.int64(metric), np.float64(gamma), np.int64(d))
    quadrature_kernel[cfg](
        cand, first, rows, rng, summaries, qparams, nodes, state, contrib, rowd, jcut
    )
    return rowd.copy_to_host()


def _solve_on_host(
    x: Any, rh: np.ndarray, r: int, q: np.ndarray, summary: np.ndarray, sparams: tuple
) -> None:
    """Solve row ``r`` on the host from its candidates ``q`` (copying the whole row if asked)."""

    def whole_row() -> np.ndarray:
        return kernel_view(x[r].copy_to_host())

    res = solve_candidates(q.copy(), summary[r], sparams, rh[r, R_LO], whole_row)
    rh[r, R_TAU], rh[r, R_T], rh[r, R_SCORE], rh[r, R_KIN], rh[r, R_FULL] = res
    rh[r, R_OVER] = 0.0


def _fold(ws: Buffers, part: Any, max_mask: int) -> np.ndarray:
    """Per-row totals of a tiled pass on the host (maxima for the bits of ``max_mask``)."""
    out = ws.get("fold", (part.shape[0], part.shape[2]))
    _rows_launch(reduce_parts_kernel, part.shape[0])(part, np.int64(max_mask), out)
    return out.copy_to_host()


def _rows_launch(kernel: Any, nrows: int, threads: int | None = None) -> Any:
    return kernel[_config.launch(nrows, threads=threads)]


def _check_values(rh: np.ndarray, arr: Any, host: bool, x: Any, nb: int, nc: int) -> None:
    """Raise the CPU's error for the first row holding NaN, inf or values outside [0, 1]."""
    bad = np.flatnonzero(rh[:, STAT_BAD] > 0)
    if bad.size:
        v.raise_bad_values(arr if host else _DeviceRows(x, (nb, nc)), int(bad[0]))


def _band(
    ws: Buffers, x: Any, rows: Any, rowd: Any, start: Any, cap: Any, fill: Any, values: Any
) -> Any:
    """Gather the bands of ``rows`` (device arrays) into ``values``; returns the partials."""
    cfg, ntiles, tile = _config.launch_tiles(rows.shape[0], x.shape[1])
    part = ws.get("band", (rows.shape[0], ntiles, NBAND))
    band_kernel[cfg](x, rows, rowd, np.int64(tile), start, cap, fill, values, part)
    return part


def _locate_ties(
    ws: Buffers, x: Any, rows: np.ndarray, t: np.ndarray, k_in: np.ndarray
) -> np.ndarray:
    """Flat index of the ``k_in``-th pixel equal to ``t`` in each row (the CPU's ``jcut``).

    Ties are counted per tile on the GPU; the one tile holding the cut is copied to
    the host and searched there.
    """
    d = x.shape[1]
    cfg, ntiles, tile = _config.launch_tiles(rows.shape[0], d)
    part = ws.get("ties", (rows.shape[0], ntiles, 1))
    tie_count_kernel[cfg](x, ws.put("tie_rows", rows), ws.put("tie_t", t), np.int64(tile), part)
    counts = part.copy_to_host()[:, :, 0]
    jcut = np.empty(rows.shape[0], dtype=np.int64)
    for m in range(rows.shape[0]):
        cum = np.cumsum(counts[m])
        k = int(np.searchsorted(cum, k_in[m]))  # first tile reaching the k_in-th tie
        before = int(cum[k] - counts[m, k])
        j0 = k * tile
        seg = x[rows[m], j0 : min(d, j0 + tile)].copy_to_host().astype(np.float64)
        jcut[m] = j0 + np.flatnonzero(seg == t[m])[k_in[m] - before - 1]
    return jcut


def _finish(res: Any, host: bool, out: np.ndarray | None) -> Any:
    if not host:
        return res
    if out is not None:
        res.copy_to_host(out)
        return out
    return res.copy_to_host()
