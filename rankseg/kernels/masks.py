"""Writers of boolean masks from per-row cuts, without sorted index arrays."""

from __future__ import annotations

import numpy as np

from rankseg._compile.jit import jit
from rankseg.kernels._dtype import as_f64
from rankseg.kernels._tasks import work_item

__all__ = ["is_selected"]


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


@jit
def write_masks_tasks(i0, i1, x, cut, out, chunk):
    """Work items ``i0 <= task < i1`` of :func:`rankseg.cpu.launchers.write_masks`.

    ``cut`` is ``(t, jcut, cmax)``; an item whose largest value (``cmax``) lies
    below its row's ``t`` selects nothing and is written without being read.
    """
    t, jcut, cmax = cut
    d = x.shape[1]
    nch = (d + chunk - 1) // chunk
    for task in range(i0, i1):
        r, j0, j1 = work_item(task, nch, chunk, d)
        tr = t[r]
        dst = out[r, j0:j1]
        if tr == np.inf or cmax[r, task % nch] < tr:
            for j in range(dst.shape[0]):
                dst[j] = False
            continue
        # row slices starting at 0 let numba drop negative-index checks (vectorizes)
        row = x[r, j0:j1]
        if jcut[r] >= d - 1:
            for j in range(row.shape[0]):
                dst[j] = as_f64(row[j]) >= tr
        else:
            jc = jcut[r] - j0
            for j in range(row.shape[0]):
                dst[j] = is_selected(as_f64(row[j]), j, tr, jc)


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
