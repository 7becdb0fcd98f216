"""Writers of boolean masks from per-row cuts, without sorted index arrays."""

from __future__ import annotations

import numpy as np

from rankseg._compile.jit import jit
from rankseg._config import SUB_BLOCK
from rankseg.kernels._dtype import as_f64, as_native, narrow, native_bounds
from rankseg.kernels._tasks import work_item

__all__ = ["is_selected", "native_cut"]


@jit(inline="always")
def is_selected(v: float, j: int, t: float, jcut: int) -> bool:
    """Whether pixel ``j`` of value ``v`` lies in the cut ``(t, jcut)``.

    Parameters
    ----------
    v : float
        The pixel's probability.
    j : int
        Its flat index in the row.
    t : float
        Smallest selected probability (``inf`` for an empty mask).
    jcut : int
        Flat index of the last selected pixel equal to ``t``.

    Returns
    -------
    bool
        ``v > t or (v == t and j <= jcut)``.
    """
    # bitwise, not short-circuit: no branch, so loops calling it vectorize
    return (v > t) | ((v == t) & (j <= jcut))


@jit(inline="always")
def native_cut(t, jc, n, row):
    """Return the cut ``(t, jc)`` over ``row[:n]`` as two thresholds in the row's own dtype.

    Returns ``(ge, gt, split)``: :func:`is_selected` of pixel ``j`` is ``v > ge`` for
    ``j < split`` and ``v > gt`` for the others, with ``v = as_native(row[j])``.
    ``gt`` is ``t`` rounded down (:func:`rankseg.kernels._dtype.native_bounds`):
    ``v > gt`` exactly when ``v > t``.  The pixels before ``split`` may be ties of the
    cut, ``v >= t``: when ``t`` is a value of the dtype, ``ge`` is the value just
    below it, as no value of the dtype lies between the two (else no value equals
    ``t`` and ``ge`` is ``gt``).  Loops split at ``split`` compare once per pixel,
    without the pixel index, branch-free, in as many SIMD lanes as the dtype allows.
    """
    gt, _ = native_bounds(t, t, row)
    tn = narrow(t, row)
    ge = np.nextafter(tn, narrow(-np.inf, row)) if as_f64(tn) == t else gt
    split = min(max(jc + 1, 0), n)
    return ge, gt, split


@jit
def write_masks_tasks(i0, i1, x, cut, out, chunk):
    """Work items ``i0 <= task < i1`` of :func:`rankseg.cpu.launchers.write_masks`.

    ``cut`` is ``(t, jcut, smax)``; a sub-block of ``SUB_BLOCK`` pixels whose largest
    value (``smax[r, item, k]``) lies below its row's ``t`` selects nothing and is
    written without being read.
    """
    t, jcut, smax = cut
    d = x.shape[1]
    nch = (d + chunk - 1) // chunk
    for task in range(i0, i1):
        r, j0, j1 = work_item(task, nch, chunk, d)
        tr = t[r]
        kmax = smax[r, task % nch]
        for s0 in range(j0, j1, SUB_BLOCK):
            n = min(j1, s0 + SUB_BLOCK) - s0
            dst = out[r, s0 : s0 + n]
            if tr == np.inf or kmax[(s0 - j0) // SUB_BLOCK] < tr:
                for j in range(n):
                    dst[j] = False
                continue
            row = x[r, s0 : s0 + n]
            ge, gt, split = native_cut(tr, jcut[r] - s0, n, row)
            for part in range(2):
                a = ge if part == 0 else gt
                lo, hi = (0, split) if part == 0 else (split, n)
                # slices indexed from 0: numba drops the negative-index checks (vectorizes)
                seg, ds = row[lo:hi], dst[lo:hi]
                for j in range(seg.shape[0]):
                    ds[j] = as_native(seg[j]) > a


@jit
def threshold_tasks(i0, i1, x, out, chunk):
    """Work items ``i0 <= task < i1`` of :func:`rankseg.cpu.launchers.write_threshold_masks`."""
    d = x.shape[1]
    nch = (d + chunk - 1) // chunk
    for task in range(i0, i1):
        r, j0, j1 = work_item(task, nch, chunk, d)
        row = x[r, j0:j1]
        dst = out[r, j0:j1]
        for j in range(row.shape[0]):
            dst[j] = as_f64(row[j]) > 0.5
