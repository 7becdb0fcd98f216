"""Host driver of the GPU backend: the one place that allocates, transfers and launches.

:func:`predict` runs one validated call of :meth:`rankseg.RankSEG.predict` on the
GPU: the input stays where it is (a CUDA array) or is copied once to the device
(host input), the per-row results (a few numbers per (sample, class)) come back to
the host to choose the active rows and size the band buffer, and the output is
written on the device: returned as a numba device array for CUDA input, copied to
the host for host input.
"""

from __future__ import annotations

import threading
import warnings
from typing import Any

import numpy as np

from rankseg import _validation as v
from rankseg.cuda import _config, load
from rankseg.cuda.assign import (
    NROW,
    ROW_ACTIVE,
    ROW_M,
    ROW_MU,
    ROW_N,
    ROW_T,
    argmax_kernel,
    pass_a_kernel,
    pass_b_kernel,
    safe_sums_kernel,
)
from rankseg.cuda.masks import write_masks_kernel, write_threshold_masks_kernel
from rankseg.cuda.rma import DICE, IOU
from rankseg.cuda.select import (
    BAND_FORCED_NEG_MIN,
    BAND_N,
    CUT_FULL,
    CUT_KIN,
    CUT_TAU,
    NBAND,
    NSTAT,
    STAT_BAD,
    STAT_MAX,
    STAT_MU,
    STAT_NHALF,
    STAT_SHALF,
    band_kernel,
    cut_kernel,
    reduce_parts_kernel,
    row_stats_kernel,
    tie_count_kernel,
)
from rankseg.kernels.rma import rma_bounds

__all__ = ["CUDA_SOLVERS", "predict", "release_buffers", "to_device", "to_host"]

# which columns of a tiled pass's partial results fold by maximum (else by sum)
_STAT_IS_MAX = tuple(int(c == STAT_MAX) for c in range(NSTAT))
_BAND_IS_MAX = tuple(int(c == BAND_FORCED_NEG_MIN) for c in range(NBAND))


class _Buffers:
    """Device work buffers kept between calls, one named buffer per use.

    Allocating and freeing device memory costs far more than the small kernels of a
    call, so the per-row arrays, the per-tile partial results and the multiclass
    status bytes are reused (grown when a call needs more).  The output and the band
    buffers are allocated per call.  Calls hold :data:`_LOCK`, so two threads never
    share a buffer; the GPU runs their kernels one after the other anyway.
    """

    def __init__(self, cuda: Any) -> None:
        self.cuda = cuda
        self.bufs: dict[str, Any] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: Any = np.float64) -> Any:
        """Return a device array of ``shape`` (uninitialized) backed by buffer ``name``."""
        n = int(np.prod(shape))
        dt = np.dtype(dtype)
        buf = self.bufs.get(name)
        if buf is None or buf.dtype != dt or buf.size < n:
            buf = self.cuda.device_array(max(1, n), dtype=dt)
            self.bufs[name] = buf
        return buf[:n].reshape(shape)

    def put(self, name: str, host: np.ndarray) -> Any:
        """Copy ``host`` into buffer ``name``; returns the device view."""
        host = np.ascontiguousarray(host)
        dev = self.get(name, host.shape, host.dtype)
        if host.size:
            dev.copy_to_device(host)
        return dev


_LOCK = threading.Lock()
_BUFFERS: dict[Any, _Buffers] = {}


def _buffers(cuda: Any) -> _Buffers:
    try:
        key = cuda.get_current_device().id
    except Exception:  # the simulator's fake device
        key = None
    if key not in _BUFFERS:
        _BUFFERS[key] = _Buffers(cuda)
    return _BUFFERS[key]


def release_buffers() -> None:
    """Free the device work buffers kept between calls (see :class:`_Buffers`)."""
    with _LOCK:
        _BUFFERS.clear()


#: solvers with a GPU implementation
CUDA_SOLVERS = ("rma", "argmax", "tr")


def to_host(arr: Any) -> np.ndarray:
    """Copy a numba device array to a new NumPy array."""
    return arr.copy_to_host()


def to_device(arr: np.ndarray) -> Any:
    """Copy a NumPy array to a new numba device array."""
    return load().to_device(np.ascontiguousarray(arr))


class _DeviceRows:
    """Just enough of an array for :func:`rankseg._validation.raise_bad_values`."""

    def __init__(self, x: Any, shape: tuple[int, ...]) -> None:
        self._x = x
        self.shape = shape

    def __getitem__(self, bc: tuple[int, int]) -> np.ndarray:
        b, c = bc
        return self._x[b * self.shape[1] + c].copy_to_host()


def _rows_launch(kernel: Any, nrows: int, threads: int | None = None) -> Any:
    return kernel[_config.launch(nrows, threads=threads)]


def _pixels_launch(kernel: Any, npix: int) -> Any:
    return kernel[_config.launch(npix, _config.THREADS_PER_BLOCK)]


def _tiled(ws: _Buffers, name: str, nrows: int, d: int, ncol: int) -> tuple[Any, Any]:
    """Launch configuration of a tiled pass and its ``part`` array (rows, tiles, ncol)."""
    cfg, ntiles = _config.launch_tiles(nrows, d)
    return cfg, ws.get(name, (nrows, ntiles, ncol))


def _fold(ws: _Buffers, part: Any, is_max: tuple[int, ...]) -> np.ndarray:
    """Per-row totals of a tiled pass: sums, or maxima where ``is_max`` (host array)."""
    out = ws.get("fold", (part.shape[0], part.shape[2]))
    flags = ws.put("fold_flags", np.array(is_max, dtype=np.uint8))
    _rows_launch(reduce_parts_kernel, part.shape[0])(part, flags, out)
    return out.copy_to_host()


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
    # A launch over few blocks (one image, few classes) makes numba warn about GPU
    # under-utilization on every call; that is the input's size, not a defect.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*Grid size \d+ will likely result")
        with _LOCK:
            return _predict(model, arr, target, return_info)


def _predict(model: Any, arr: Any, target: tuple, return_info: bool) -> Any:
    from rankseg._api import PredictInfo

    cuda = load()
    ws = _buffers(cuda)
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
        return (result, model._empty_info(nc)) if return_info else result

    xdev = cuda.to_device(np.ascontiguousarray(arr)) if host else arr
    x = xdev.reshape(nrow, d)
    res = cuda.device_array(out_shape, dtype=out_dtype)
    flat = res.reshape(nb, d) if multiclass else res.reshape(nrow, d)

    tile = np.int64(_config.TILE)
    cfg, part = _tiled(ws, "stats", nrow, d, NSTAT)
    row_stats_kernel[cfg](x, tile, part)
    stats = _fold(ws, part, _STAT_IS_MAX)
    bad = np.flatnonzero(stats[:, STAT_BAD] > 0)
    if bad.size:
        v.raise_bad_values(arr if host else _DeviceRows(x, (nb, nc)), int(bad[0]))

    if model.metric == "acc":
        if multiclass:
            _pixels_launch(argmax_kernel, nb * d)(x, nc, flat)
        else:
            _pixels_launch(write_threshold_masks_kernel, nrow * d)(x, flat)
        return _finish(res, host, out)

    metric = np.int64(DICE if model.metric == "dice" else IOU)
    gamma = np.float64(model.smooth)
    mu = stats[:, STAT_MU]
    pruned = stats[:, STAT_MAX] <= model.pruning_prob
    rows = np.flatnonzero(~pruned).astype(np.int64)
    t = np.full(nrow, np.inf)
    jcut = np.full(nrow, -1, dtype=np.int64)
    tau = np.zeros(nrow, dtype=np.int64)
    score = np.zeros(nrow)
    if gamma > 0:
        score[:] = gamma / (mu + gamma)
    if rows.size:
        tau[rows], t[rows], jcut[rows], score[rows] = _cuts(ws, x, stats, rows, metric, gamma)
    jcut_d = ws.put("jcut", jcut)
    if multiclass:
        rowf = np.zeros((nrow, NROW))
        rowf[:, ROW_T] = t
        rowf[:, ROW_MU] = mu
        rowf[:, ROW_ACTIVE] = ~pruned
        rowf_d = ws.put("rowf", rowf)
        anyact = ws.put("anyact", (~pruned).reshape(nb, nc).any(axis=1).astype(np.uint8))
        status = ws.get("status", (nb, d), np.uint8)
        void = model.unassigned_policy == "void"
        params = (metric, gamma, np.bool_(void), np.int64(model.void_index))
        fused = nc <= min(_config.FUSED_CLASSES, _config.MAX_FUSED_CLASSES)
        cfg, ntiles = _config.launch_tiles(nb, d)
        part = ws.get("safe", (nrow, ntiles, 2))  # (sum, count) of each safe set
        pass_a_kernel[cfg](x, nc, rowf_d, jcut_d, tile, np.bool_(fused), flat, status, part)
        if not fused:
            cfg, _ = _config.launch_tiles(nrow, d)
            safe_sums_kernel[cfg](x, nc, tile, flat, status, part)
        sums = _fold(ws, part, (0, 0))
        rowf[:, ROW_M] = sums[:, 0]
        rowf[:, ROW_N] = sums[:, 1]
        rowf_d = ws.put("rowf", rowf)
        _pixels_launch(pass_b_kernel, nb * d)(x, nc, rowf_d, jcut_d, anyact, params, flat, status)
    else:
        _pixels_launch(write_masks_kernel, nrow * d)(x, ws.put("t", t), jcut_d, flat)
    result = _finish(res, host, out)
    if not return_info:
        return result
    info = PredictInfo(
        tau=tau.reshape(nb, nc),
        threshold=np.where(tau > 0, t, np.nan).reshape(nb, nc),
        score=score.reshape(nb, nc),
        pruned=pruned.reshape(nb, nc),
    )
    return result, info


def _cuts(
    ws: _Buffers, x: Any, stats: np.ndarray, rows: np.ndarray, metric: Any, gamma: Any
) -> tuple:
    """``(tau, t, jcut, score)`` of the active ``rows`` (host arrays)."""
    na = rows.shape[0]
    d = x.shape[1]
    bounds = np.empty((na, 2))
    for i, r in enumerate(rows):  # the CPU's own function: same bounds as the CPU
        st = stats[r]
        bounds[i] = rma_bounds(
            metric, st[STAT_MU], gamma, d, st[STAT_MAX], int(st[STAT_NHALF]), st[STAT_SHALF]
        )
    cap = _config.band_capacity(d)
    start = np.arange(na, dtype=np.int64) * cap
    values = ws.cuda.device_array(na * cap)
    band = _band(ws, x, rows, bounds, start, np.full(na, cap, dtype=np.int64), values)
    nband = band[:, BAND_N].astype(np.int64)
    mu = stats[rows, STAT_MU]
    ci = np.empty((na, 3), dtype=np.int64)
    cf = np.empty((na, 2))
    fits = nband <= cap
    _cut(ws, values, start, band, mu, metric, gamma, fits, ci, cf)
    if not fits.all():  # bands longer than the buffer: gathered again, exactly sized
        del values
        over = ~fits
        start = np.zeros(int(over.sum()), dtype=np.int64)
        np.cumsum(nband[over][:-1], out=start[1:])
        values = ws.cuda.device_array(max(1, int(nband[over].sum())))
        _band(ws, x, rows[over], bounds[over], start, nband[over], values)
        sub_ci = np.empty((start.size, 3), dtype=np.int64)
        sub_cf = np.empty((start.size, 2))
        everything = np.ones(start.size, dtype=bool)
        _cut(ws, values, start, band[over], mu[over], metric, gamma, everything, sub_ci, sub_cf)
        ci[over] = sub_ci
        cf[over] = sub_cf
    tau = ci[:, CUT_TAU]
    t = cf[:, 0]
    jcut = np.where(tau == 0, -1, d).astype(np.int64)
    split = np.flatnonzero((tau > 0) & (ci[:, CUT_FULL] == 0))
    if split.size:
        jcut[split] = _locate_ties(ws, x, rows[split], t[split], ci[split, CUT_KIN])
    return tau, t, jcut, cf[:, 1]


def _band(
    ws: _Buffers,
    x: Any,
    rows: np.ndarray,
    bounds: np.ndarray,
    start: np.ndarray,
    cap: np.ndarray,
    values: Any,
) -> np.ndarray:
    """Gather the bands of ``rows`` into ``values``; returns the reduced ``BAND_*`` columns."""
    cfg, part = _tiled(ws, "band", rows.shape[0], x.shape[1], NBAND)
    band_kernel[cfg](
        x,
        ws.put("rows", rows),
        ws.put("bounds", bounds),
        np.int64(_config.TILE),
        ws.put("start", start),
        ws.put("cap", cap),
        ws.put("fill", np.zeros(rows.shape[0], dtype=np.int64)),
        values,
        part,
    )
    return _fold(ws, part, _BAND_IS_MAX)


def _cut(
    ws: _Buffers,
    values: Any,
    start: np.ndarray,
    band: np.ndarray,
    mu: np.ndarray,
    metric: Any,
    gamma: Any,
    which: np.ndarray,
    ci: np.ndarray,
    cf: np.ndarray,
) -> None:
    """Sort and scan the bands of the rows ``which`` (a mask); fills ``ci`` and ``cf``."""
    idx = np.flatnonzero(which)
    if not idx.size:
        return
    cut_i = ws.get("cut_i", (idx.size, 3), np.int64)
    cut_f = ws.get("cut_f", (idx.size, 2))
    params = (metric, gamma, np.int64(_config.SHARED_SORT))
    # bands too long for the shared-memory sort are sorted into a scratch buffer
    n = band[idx, BAND_N].astype(np.int64)
    n_long = np.where(n > _config.SHARED_SORT, n, 0)
    sstart = np.zeros(idx.size, dtype=np.int64)
    np.cumsum(n_long[:-1], out=sstart[1:])
    _rows_launch(cut_kernel, idx.size, _config.SORT_THREADS)(
        values,
        ws.put("start", start[idx]),
        ws.put("cut_band", band[idx]),
        ws.put("mu", mu[idx]),
        ws.cuda.device_array(max(1, int(n_long.sum()))),
        ws.put("sstart", sstart),
        params,
        cut_i,
        cut_f,
    )
    ci[idx] = cut_i.copy_to_host()
    cf[idx] = cut_f.copy_to_host()


def _locate_ties(
    ws: _Buffers, x: Any, rows: np.ndarray, t: np.ndarray, k_in: np.ndarray
) -> np.ndarray:
    """Flat index of the ``k_in``-th pixel equal to ``t`` in each row (the CPU's ``jcut``).

    Ties are counted per tile on the GPU; the one tile holding the cut is copied to
    the host and searched there.
    """
    d = x.shape[1]
    cfg, part = _tiled(ws, "ties", rows.shape[0], d, 1)
    tile = _config.TILE
    tie_count_kernel[cfg](x, ws.put("rows", rows), ws.put("t", t), np.int64(tile), part)
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
