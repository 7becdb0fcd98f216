"""GPU writers of boolean masks from per-row cuts (twin of ``rankseg/kernels/masks.py``)."""

from __future__ import annotations

from numba import cuda

from rankseg.cuda._config import device_twin
from rankseg.cuda._dtype import as_f64
from rankseg.cuda.stats import R_T, load4, tile_of
from rankseg.kernels import masks as _cpu

__all__ = ["is_selected", "write_masks_kernel", "write_threshold_masks_kernel"]

#: the CPU tie rule ``v > t or (v == t and j <= jcut)``, same code
is_selected = device_twin(_cpu.is_selected)


@cuda.jit
def write_masks_kernel(x, rowd, jcut, tile, out):
    """``out[r, j] = is_selected(x[r, j], j, t_r, jcut[r])`` with ``t_r = rowd[r, R_T]``.

    (Row, tile) work items; four pixels per thread and step.
    """
    nrow, d = x.shape
    nt = cuda.blockDim.x
    ntile = -(-d // tile)
    for w in range(cuda.blockIdx.x, nrow * ntile, cuda.gridDim.x):
        r, k, j0, j1 = tile_of(w, ntile, tile, d)
        t = rowd[r, R_T]
        jc = jcut[r]
        j = j0 + cuda.threadIdx.x
        while j + 3 * nt < j1:
            v0, v1, v2, v3 = load4(x, r, j, nt)
            out[r, j] = is_selected(v0, j, t, jc)
            out[r, j + nt] = is_selected(v1, j + nt, t, jc)
            out[r, j + 2 * nt] = is_selected(v2, j + 2 * nt, t, jc)
            out[r, j + 3 * nt] = is_selected(v3, j + 3 * nt, t, jc)
            j += 4 * nt
        while j < j1:
            out[r, j] = is_selected(as_f64(x[r, j]), j, t, jc)
            j += nt


@cuda.jit
def write_threshold_masks_kernel(x, tile, out):
    """``out = x > 0.5`` (the accuracy rule ``tr``); (row, tile) work items."""
    nrow, d = x.shape
    ntile = -(-d // tile)
    for w in range(cuda.blockIdx.x, nrow * ntile, cuda.gridDim.x):
        r, k, j0, j1 = tile_of(w, ntile, tile, d)
        for j in range(j0 + cuda.threadIdx.x, j1, cuda.blockDim.x):
            out[r, j] = as_f64(x[r, j]) > 0.5
