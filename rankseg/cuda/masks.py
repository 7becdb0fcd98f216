"""GPU writers of boolean masks from per-row cuts (twin of ``rankseg/kernels/masks.py``)."""

from __future__ import annotations

from numba import cuda

from rankseg.cuda._config import device_twin
from rankseg.cuda._dtype import as_f64
from rankseg.kernels import masks as _cpu

__all__ = ["is_selected", "write_masks_kernel", "write_threshold_masks_kernel"]

#: the CPU tie rule ``v > t or (v == t and j <= jcut)``, same code
is_selected = device_twin(_cpu.is_selected)


@cuda.jit
def write_masks_kernel(x, t, jcut, out):
    """``out[r, j] = is_selected(x[r, j], j, t[r], jcut[r])`` (grid-stride over pixels)."""
    nrow, d = x.shape
    for q in range(cuda.grid(1), nrow * d, cuda.gridsize(1)):
        r = q // d
        j = q - r * d
        out[r, j] = is_selected(as_f64(x[r, j]), j, t[r], jcut[r])


@cuda.jit
def write_threshold_masks_kernel(x, out):
    """``out = x > 0.5`` (the accuracy rule ``tr``)."""
    nrow, d = x.shape
    for q in range(cuda.grid(1), nrow * d, cuda.gridsize(1)):
        r = q // d
        j = q - r * d
        out[r, j] = as_f64(x[r, j]) > 0.5
