"""Host driver of the GPU backend: the one place that allocates, transfers and launches.

:func:`predict` runs one validated call of :meth:`rankseg.RankSEG.predict` on the
GPU: the input stays where it is (a CUDA array) or is copied once to the device
(host input), the per-row results (a few numbers per (sample, class)) come back to
the host to choose the active rows and size the band buffer, and the output is
written on the device: returned as a numba device array for CUDA input, copied to
the host for host input.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from rankseg import _validation as v
from rankseg.cuda import _config, load
from rankseg.cuda.assign import (
    NROW,
    ROW_ACTIVE,
    ROW_MU,
    ROW_T,
    argmax_kernel,
    pass_a_kernel,
    pass_b_kernel,
    safe_sums_kernel,
)
from rankseg.cuda.masks import write_masks_kernel, write_threshold_masks_kernel
from rankseg.cuda.rma import DICE, IOU
from rankseg.cuda.select import (
    BAND_N,
    NBAND,
    NSTAT,
    STAT_BAD,
    STAT_MAX,
    STAT_MU,
    band_kernel,
    cut_kernel,
    gather_kernel,
    row_stats_kernel,
)

__all__ = ["CUDA_SOLVERS", "predict", "to_device", "to_host"]

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


def _rows_launch(kernel: Any, nrows: int) -> Any:
    return kernel[_config.launch(nrows)]


def _pixels_launch(kernel: Any, npix: int) -> Any:
    return kernel[_config.launch(npix, _config.THREADS_PER_BLOCK)]


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
        warnings.filterwarnings("ignore", message=r"Grid size \d+ will likely result")
        return _predict(model, arr, target, return_info)


def _predict(model: Any, arr: Any, target: tuple, return_info: bool) -> Any:
    from rankseg._api import PredictInfo

    cuda = load()
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

    stats_d = cuda.device_array((nrow, NSTAT))
    _rows_launch(row_stats_kernel, nrow)(x, stats_d)
    stats = stats_d.copy_to_host()
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
        tau[rows], t[rows], jcut[rows], score[rows] = _cuts(cuda, x, stats_d, rows, metric, gamma)
    jcut_d = cuda.to_device(jcut)
    if multiclass:
        rowf = np.zeros((nrow, NROW))
        rowf[:, ROW_T] = t
        rowf[:, ROW_MU] = mu
        rowf[:, ROW_ACTIVE] = ~pruned
        rowf_d = cuda.to_device(rowf)
        anyact = cuda.to_device((~pruned).reshape(nb, nc).any(axis=1).astype(np.uint8))
        status = cuda.device_array((nb, d), dtype=np.uint8)
        void = model.unassigned_policy == "void"
        params = (metric, gamma, np.bool_(void), np.int64(model.void_index))
        _pixels_launch(pass_a_kernel, nb * d)(x, nc, rowf_d, jcut_d, flat, status)
        _rows_launch(safe_sums_kernel, nrow)(x, nc, flat, status, rowf_d)
        _pixels_launch(pass_b_kernel, nb * d)(x, nc, rowf_d, jcut_d, anyact, params, flat, status)
    else:
        _pixels_launch(write_masks_kernel, nrow * d)(x, cuda.to_device(t), jcut_d, flat)
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


def _cuts(cuda: Any, x: Any, stats_d: Any, rows: np.ndarray, metric: Any, gamma: Any) -> tuple:
    """``(tau, t, jcut, score)`` of the active ``rows`` (host arrays)."""
    na = rows.shape[0]
    rows_d = cuda.to_device(rows)
    band_d = cuda.device_array((na, NBAND))
    _rows_launch(band_kernel, na)(x, rows_d, stats_d, (metric, gamma), band_d)
    counts = band_d.copy_to_host()[:, BAND_N].astype(np.int64)
    start = np.zeros(na + 1, dtype=np.int64)
    np.cumsum(counts, out=start[1:])
    start_d = cuda.to_device(start)
    values = cuda.device_array(max(1, int(start[-1])))
    _rows_launch(gather_kernel, na)(x, rows_d, band_d, start_d, values)
    cut_i = cuda.device_array((na, 2), dtype=np.int64)
    cut_f = cuda.device_array((na, 2))
    params = (metric, gamma, np.int64(_config.SHARED_SORT))
    _rows_launch(cut_kernel, na)(x, rows_d, band_d, start_d, values, params, cut_i, cut_f)
    ci = cut_i.copy_to_host()
    cf = cut_f.copy_to_host()
    return ci[:, 0], cf[:, 0], ci[:, 1], cf[:, 1]


def _finish(res: Any, host: bool, out: np.ndarray | None) -> Any:
    if not host:
        return res
    if out is not None:
        res.copy_to_host(out)
        return out
    return res.copy_to_host()
