"""GPU multiclass resolution (twin of ``rankseg/kernels/assign.py``, SPEC §4).

Pass A (one block per (sample, tile)) labels every pixel selected by exactly one
class, marks the others in a status byte and, for up to ``FUSED_CLASSES``
classes, sums each class's safe set on the way (else :func:`safe_sums_kernel`
does, in one more pass); pass B resolves the marked
pixels by the increment scores (device twin of the CPU ``increment``).

Per-row inputs are the device record ``rowd`` of :mod:`rankseg.cuda.stats`
(``R_T``, ``R_ACTIVE``, ``STAT_MU``), the ``jcut`` array and, for pass B, the
folded safe sums ``sums[r] = (M, N)``.  The passes take (sample, tile) work items
(no division per pixel) and read several pixels per step so that many loads are in
flight.
"""

from __future__ import annotations

import math

from numba import cuda, float64

from rankseg.cuda._block import block_sum
from rankseg.cuda._config import MAX_FUSED_CLASSES, MAX_THREADS, device_twin
from rankseg.cuda._dtype import as_f64
from rankseg.cuda.masks import is_selected
from rankseg.cuda.stats import R_ACTIVE, R_T, STAT_MU, load4, tile_of
from rankseg.kernels import assign as _cpu

__all__ = [
    "argmax_kernel",
    "bid",
    "increment",
    "pass_a_kernel",
    "pass_b_kernel",
    "safe_sums_kernel",
    "triage",
]

#: the SPEC §4 closed forms, same code as the CPU
increment = device_twin(_cpu.increment)
#: a class's bid for a pixel of pass B (the CPU's ``bid``, same code)
triage = device_twin(_cpu.triage)
bid = device_twin(_cpu.bid, increment=increment, is_selected=is_selected)


@cuda.jit(device=True)
def _settle(out, status, b, j, cnt, who, vw, fused, acc_m, acc_n):
    """Write pass A's verdict for pixel ``j`` of sample ``b``."""
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


@cuda.jit
def pass_a_kernel(x, ncls, rowd, jcut, tile, fused, out, status, part):
    """Label pixels selected by exactly one active class; status 0 done, 1 none, 2 several.

    One block per (sample, tile) work item; each thread takes four pixels per step
    (``j, j + nt, j + 2 nt, j + 3 nt``) and runs the classes over them together (four
    loads in flight).  With ``fused``, the block also sums each class's safe set (the
    pixels it labels here) into ``part[b * ncls + c, tile] = (sum, count)``:
    per-thread accumulators (at most ``MAX_FUSED_CLASSES`` classes), then one block
    reduction per class.
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
        j = j0 + tid
        while j + 3 * nt < j1:
            n0 = n1 = n2 = n3 = 0
            w0 = w1 = w2 = w3 = 0
            u0 = u1 = u2 = u3 = 0.0
            for c in range(ncls):
                r = b * ncls + c
                tr = rowd[r, R_T]
                if rowd[r, R_ACTIVE] == 0.0 or tr == math.inf:
                    continue
                jc = jcut[r]
                v0, v1, v2, v3 = load4(x, r, j, nt)
                if is_selected(v0, j, tr, jc):
                    n0 += 1
                    w0 = c
                    u0 = v0
                if is_selected(v1, j + nt, tr, jc):
                    n1 += 1
                    w1 = c
                    u1 = v1
                if is_selected(v2, j + 2 * nt, tr, jc):
                    n2 += 1
                    w2 = c
                    u2 = v2
                if is_selected(v3, j + 3 * nt, tr, jc):
                    n3 += 1
                    w3 = c
                    u3 = v3
            _settle(out, status, b, j, n0, w0, u0, fused, acc_m, acc_n)
            _settle(out, status, b, j + nt, n1, w1, u1, fused, acc_m, acc_n)
            _settle(out, status, b, j + 2 * nt, n2, w2, u2, fused, acc_m, acc_n)
            _settle(out, status, b, j + 3 * nt, n3, w3, u3, fused, acc_m, acc_n)
            j += 4 * nt
        while j < j1:
            n0 = 0
            w0 = 0
            u0 = 0.0
            for c in range(ncls):
                r = b * ncls + c
                tr = rowd[r, R_T]
                if rowd[r, R_ACTIVE] == 0.0 or tr == math.inf:
                    continue
                v0 = as_f64(x[r, j])
                if is_selected(v0, j, tr, jcut[r]):
                    n0 += 1
                    w0 = c
                    u0 = v0
            _settle(out, status, b, j, n0, w0, u0, fused, acc_m, acc_n)
            j += nt
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
def pass_b_kernel(x, ncls, rowd, jcut, sums, params, tile, out, status):
    """Resolve conflicts (status 2) and unassigned pixels (status 1) by the increments.

    ``params = (metric, gamma, void_policy, void_index)``; ``sums[r] = (M, N)`` are
    the safe sums of row ``r``.  Unassigned pixels of a sample with an active class
    go to the best active class, else to the best class.  (Sample, tile) work items.
    """
    metric, gamma, void_policy, void_index = params
    objective = (metric, gamma)
    nb, d = out.shape
    ntile = -(-d // tile)
    for w in range(cuda.blockIdx.x, nb * ntile, cuda.gridDim.x):
        b, k, j0, j1 = tile_of(w, ntile, tile, d)
        for j in range(j0 + cuda.threadIdx.x, j1, cuda.blockDim.x):
            st = triage(status, b, j, void_policy, void_index, out)
            if st == 0:
                continue
            anyact = False
            if st == 1:
                for c in range(ncls):
                    if rowd[b * ncls + c, R_ACTIVE] != 0.0:
                        anyact = True
            best = (-math.inf, 0)
            for c in range(ncls):
                r = b * ncls + c
                active = rowd[r, R_ACTIVE] != 0.0
                row = (active, rowd[r, R_T], jcut[r], sums[r, 0], sums[r, 1], rowd[r, STAT_MU])
                best = bid(c, as_f64(x[r, j]), j, st == 2, anyact, row, objective, best)
            out[b, j] = best[1]


@cuda.jit(device=True)
def _argmax_step(v, c, best, idx):
    if v > best:
        return v, c
    return best, idx


@cuda.jit
def argmax_kernel(x, ncls, tile, out):
    """``out[b, j]`` = first class of maximal probability ((sample, tile) work items)."""
    nb, d = out.shape
    nt = cuda.blockDim.x
    ntile = -(-d // tile)
    for w in range(cuda.blockIdx.x, nb * ntile, cuda.gridDim.x):
        b, k, j0, j1 = tile_of(w, ntile, tile, d)
        r0 = b * ncls
        j = j0 + cuda.threadIdx.x
        while j + 3 * nt < j1:
            b0, b1, b2, b3 = load4(x, r0, j, nt)
            i0 = i1 = i2 = i3 = 0
            for c in range(1, ncls):
                b0, i0 = _argmax_step(as_f64(x[r0 + c, j]), c, b0, i0)
                b1, i1 = _argmax_step(as_f64(x[r0 + c, j + nt]), c, b1, i1)
                b2, i2 = _argmax_step(as_f64(x[r0 + c, j + 2 * nt]), c, b2, i2)
                b3, i3 = _argmax_step(as_f64(x[r0 + c, j + 3 * nt]), c, b3, i3)
            out[b, j] = i0
            out[b, j + nt] = i1
            out[b, j + 2 * nt] = i2
            out[b, j + 3 * nt] = i3
            j += 4 * nt
        while j < j1:
            b0 = as_f64(x[r0, j])
            i0 = 0
            for c in range(1, ncls):
                b0, i0 = _argmax_step(as_f64(x[r0 + c, j]), c, b0, i0)
            out[b, j] = i0
            j += nt
