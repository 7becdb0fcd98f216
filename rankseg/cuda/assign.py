"""GPU multiclass resolution (twin of ``rankseg/kernels/assign.py``, SPEC §4).

Pass A (one block per (sample, tile)) labels every pixel selected by exactly one
class, marks the others in a status byte and, for up to ``FUSED_CLASSES``
classes, sums each class's safe set on the way (else :func:`safe_sums_kernel`
does, in one more pass); pass B (grid-stride over pixels) resolves the marked
pixels by the increment scores (device twin of the CPU ``increment``).

Per-row inputs are packed in ``rowf`` (R, 5) float64 with the ``ROW_*`` columns.
"""

from __future__ import annotations

import math

from numba import cuda, float64

from rankseg.cuda._config import MAX_FUSED_CLASSES, MAX_THREADS, device_twin
from rankseg.cuda._dtype import as_f64
from rankseg.cuda.masks import is_selected
from rankseg.cuda.select import block_sum, tile_of
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
def pass_a_kernel(x, ncls, rowf, jcut, tile, fused, out, status, part):
    """Label pixels selected by exactly one active class; status 0 done, 1 none, 2 several.

    One block per (sample, tile) work item.  With ``fused``, the block also sums
    each class's safe set (the pixels it labels here) into ``part[b * ncls + c,
    tile] = (sum, count)``: per-thread accumulators (at most ``MAX_FUSED_CLASSES``
    classes), then one block reduction per class.
    """
    acc_m = cuda.local.array(MAX_FUSED_CLASSES, float64)
    acc_n = cuda.local.array(MAX_FUSED_CLASSES, float64)
    buf = cuda.shared.array(MAX_THREADS, float64)
    tid = cuda.threadIdx.x
    nt = cuda.blockDim.x
    nb, d = out.shape
    ntile = part.shape[1]
    for w in range(cuda.blockIdx.x, nb * ntile, cuda.gridDim.x):
        b, k, j0, j1 = tile_of(w, ntile, tile, d)
        if fused:
            for c in range(ncls):
                acc_m[c] = 0.0
                acc_n[c] = 0.0
        for j in range(j0 + tid, j1, nt):
            cnt = 0
            who = 0
            vw = 0.0
            for c in range(ncls):
                r = b * ncls + c
                tr = rowf[r, ROW_T]
                if rowf[r, ROW_ACTIVE] == 0.0 or tr == math.inf:
                    continue
                v = as_f64(x[r, j])
                if is_selected(v, j, tr, jcut[r]):
                    cnt += 1
                    who = c
                    vw = v
            if cnt == 1:
                out[b, j] = who
                status[b, j] = 0
                if fused:
                    acc_m[who] += vw
                    acc_n[who] += 1.0
            elif cnt == 0:
                status[b, j] = 1
            else:
                status[b, j] = 2
        if fused:
            for c in range(ncls):
                m = block_sum(buf, acc_m[c])
                n = block_sum(buf, acc_n[c])
                if tid == 0:
                    part[b * ncls + c, k, 0] = m
                    part[b * ncls + c, k, 1] = n


@cuda.jit
def safe_sums_kernel(x, ncls, tile, out, status, part):
    """``part[r, k] = (sum, count)`` of the safe set of row ``r`` in tile ``k``.

    The unfused path of pass A (more classes than ``FUSED_CLASSES``): one block per
    (row, tile) work item.
    """
    buf = cuda.shared.array(MAX_THREADS, float64)
    tid = cuda.threadIdx.x
    nt = cuda.blockDim.x
    nrow, d = x.shape
    ntile = part.shape[1]
    for w in range(cuda.blockIdx.x, nrow * ntile, cuda.gridDim.x):
        r, k, j0, j1 = tile_of(w, ntile, tile, d)
        b = r // ncls
        c = r - b * ncls
        m = 0.0
        n = 0.0
        for j in range(j0 + tid, j1, nt):
            if status[b, j] == 0 and out[b, j] == c:
                m += as_f64(x[r, j])
                n += 1.0
        m = block_sum(buf, m)
        n = block_sum(buf, n)
        if tid == 0:
            part[r, k, 0] = m
            part[r, k, 1] = n


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
