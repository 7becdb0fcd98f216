"""GPU multiclass resolution (twin of ``rankseg/kernels/assign.py``, SPEC §4).

Three kernels: pass A (grid-stride over pixels) labels every pixel selected by
exactly one class and marks the others in a status byte; :func:`safe_sums_kernel`
(one block per row) sums each class's safe set; pass B resolves the marked
pixels by the increment scores (device twin of the CPU ``increment``).

Per-row inputs are packed in ``rowf`` (R, 5) float64 with the ``ROW_*`` columns.
"""

from __future__ import annotations

import math

from numba import cuda, float64

from rankseg.cuda._config import MAX_THREADS, device_twin
from rankseg.cuda._dtype import as_f64
from rankseg.cuda.masks import is_selected
from rankseg.cuda.select import block_sum
from rankseg.kernels import assign as _cpu

__all__ = [
    "ROW_ACTIVE",
    "ROW_M",
    "ROW_MU",
    "ROW_N",
    "ROW_T",
    "argmax_kernel",
    "increment",
    "pass_a_kernel",
    "pass_b_kernel",
    "safe_sums_kernel",
]

ROW_T = 0
ROW_MU = 1
ROW_M = 2
ROW_N = 3
ROW_ACTIVE = 4
NROW = 5

#: the SPEC §4 closed forms, same code as the CPU
increment = device_twin(_cpu.increment)


@cuda.jit
def pass_a_kernel(x, ncls, rowf, jcut, out, status):
    """Label pixels selected by exactly one active class; status 0 done, 1 none, 2 several."""
    nb, d = out.shape
    for q in range(cuda.grid(1), nb * d, cuda.gridsize(1)):
        b = q // d
        j = q - b * d
        cnt = 0
        who = 0
        for c in range(ncls):
            r = b * ncls + c
            tr = rowf[r, ROW_T]
            if rowf[r, ROW_ACTIVE] == 0.0 or tr == math.inf:
                continue
            if is_selected(as_f64(x[r, j]), j, tr, jcut[r]):
                cnt += 1
                who = c
        if cnt == 1:
            out[b, j] = who
            status[b, j] = 0
        elif cnt == 0:
            status[b, j] = 1
        else:
            status[b, j] = 2


@cuda.jit
def safe_sums_kernel(x, ncls, out, status, rowf):
    """``rowf[r, ROW_M/ROW_N]``: sum and size of the safe set of row ``r`` (one block per row)."""
    buf = cuda.shared.array(MAX_THREADS, float64)
    tid = cuda.threadIdx.x
    nt = cuda.blockDim.x
    d = x.shape[1]
    for r in range(cuda.blockIdx.x, x.shape[0], cuda.gridDim.x):
        b = r // ncls
        c = r - b * ncls
        m = 0.0
        n = 0.0
        for j in range(tid, d, nt):
            if status[b, j] == 0 and out[b, j] == c:
                m += as_f64(x[r, j])
                n += 1.0
        m = block_sum(buf, m)
        n = block_sum(buf, n)
        if tid == 0:
            rowf[r, ROW_M] = m
            rowf[r, ROW_N] = n


@cuda.jit
def pass_b_kernel(x, ncls, rowf, jcut, anyact, params, out, status):
    """Resolve conflicts (status 2) and unassigned pixels (status 1) by the increments.

    ``params = (metric, gamma, void_policy, void_index)``; ``anyact[b]`` is 1 when
    sample ``b`` has an active class.
    """
    metric, gamma, void_policy, void_index = params
    nb, d = out.shape
    for q in range(cuda.grid(1), nb * d, cuda.gridsize(1)):
        b = q // d
        j = q - b * d
        st = status[b, j]
        if st == 0:
            continue
        if st == 1 and void_policy:
            out[b, j] = void_index
            continue
        best = -math.inf
        bc = 0
        for c in range(ncls):
            r = b * ncls + c
            v = as_f64(x[r, j])
            active = rowf[r, ROW_ACTIVE] != 0.0
            if st == 2:
                if not (active and is_selected(v, j, rowf[r, ROW_T], jcut[r])):
                    continue
            elif anyact[b] != 0 and not active:
                continue
            inc = increment(metric, v, rowf[r, ROW_M], rowf[r, ROW_N], rowf[r, ROW_MU], gamma)
            if inc > best:
                best = inc
                bc = c
        out[b, j] = bc


@cuda.jit
def argmax_kernel(x, ncls, out):
    """``out[b, j]`` = first class of maximal probability."""
    nb, d = out.shape
    for q in range(cuda.grid(1), nb * d, cuda.gridsize(1)):
        b = q // d
        j = q - b * d
        r0 = b * ncls
        best = as_f64(x[r0, j])
        idx = 0
        for c in range(1, ncls):
            v = as_f64(x[r0 + c, j])
            if v > best:
                best = v
                idx = c
        out[b, j] = idx
