"""Reading probabilities of any supported dtype as float64 inside CUDA kernels.

Unlike numba on the CPU (which lacks float16 arithmetic and therefore reads float16
input as its ``uint16`` bits, see ``rankseg/kernels/_dtype.py``), the CUDA target
converts float16 to float64 directly; the conversion is exact, so both backends see
the same float64 values.
"""

from __future__ import annotations

from numba import cuda, float64

__all__ = ["as_f64"]


@cuda.jit(device=True)
def as_f64(v):
    """Return ``v`` (float16/32/64) as a float64."""
    return float64(v)
