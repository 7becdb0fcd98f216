"""GPU rank search of the solvers other than RMA: twin of ``rankseg/kernels/solver_passes.py``.

The GPU runs the passes over the input of the non-RMA solvers (exact, BA, TRNA,
BA+TRNA): the row statistics, the candidate bound (:data:`candidate_bound`, in
:func:`rankseg.cuda.stats.row_setup_kernel`), the candidate gather
(:func:`rankseg.cuda.rma_passes.band_kernel` with no forced set) and the whole-row
summary (:mod:`rankseg.cuda.exact`).  For the exact solver the rest runs on the GPU
as well:

* :func:`sort_rows_kernel`: one block per row sorts the row's candidates in
  descending order (LSD radix sort of the IEEE bit patterns, 4-bit digits, stable,
  digits on which every key agrees skipped; the CPU's ``_sort_descending`` does the
  same with 11-bit digits);
* :func:`certified_range_kernel`: one block per row finds the CPU's certified range
  ``[a, b]`` (``_certified_range``: the maximum of the RMA objective over the
  prefixes is a lower bound of the optimum; every ``τ`` whose upper bound
  ``_exact_upper`` falls below it is skipped);
* the quadrature over that range: :func:`rankseg.cuda.exact.quadrature_kernel`.

BA, TRNA and BA+TRNA are solved on the host from the candidates (see
:mod:`rankseg.cuda.driver`).
"""

from __future__ import annotations

import math
import types
from typing import Any

from numba import cuda, float64, int32, int64, uint64

from rankseg.cuda._block import block_max, block_scan
from rankseg.cuda._config import MAX_SORT_THREADS, device_twin
from rankseg.cuda.rma import rma_objective
from rankseg.kernels import solver_passes as _cpu
from rankseg.kernels.summary import SUM_MU, SUM_VAR

__all__ = ["RADIX_DIGITS", "candidate_bound", "certified_range_kernel", "sort_rows_kernel"]

#: ``θ`` of :func:`rankseg.kernels.solver_passes.candidate_bound`, same code
candidate_bound = device_twin(_cpu.candidate_bound)

# ``np.sqrt`` / ``np.exp`` of the CPU code on scalars, as the CUDA target knows them
_np_scalar: Any = types.ModuleType("_np_scalar")
_np_scalar.sqrt = math.sqrt
_np_scalar.exp = math.exp
_inv_bound = device_twin(_cpu.inv_bound, np=_np_scalar)
#: upper bound of the exact objective (:func:`rankseg.kernels.solver_passes._exact_upper`)
exact_upper = device_twin(_cpu.exact_upper, inv_bound=_inv_bound)

#: bits per radix digit and digits per pass of :func:`sort_rows_kernel`
RADIX_BITS = 4
RADIX_DIGITS = 1 << RADIX_BITS
_DIGIT_MASK = RADIX_DIGITS - 1
_COUNTS = RADIX_DIGITS * MAX_SORT_THREADS  # per-thread digit counts of a block


@cuda.jit(device=True)
def _segment(n):
    """Return the calling thread's contiguous share ``[k0, k1)`` of ``n`` items."""
    nt = cuda.blockDim.x
    per = (n + nt - 1) // nt
    k0 = min(n, cuda.threadIdx.x * per)
    return k0, min(n, k0 + per)


@cuda.jit(device=True)
def _digit(key, shift):
    """Digit of ``~key`` at ``shift``: ascending order of ``~bits`` is descending order."""
    return int32(((~uint64(key)) >> uint64(shift)) & uint64(_DIGIT_MASK))


@cuda.jit
def sort_rows_kernel(keys, tmp, first, nbits):
    """Sort each row's candidates ``keys[first[i]:first[i + 1]]`` in descending order.

    ``keys`` is the candidate buffer viewed as unsigned integers of its width
    (``nbits`` = 32 or 64; for values ``>= 0`` the bit patterns order like the
    values; ``-0.0`` is made ``+0.0`` first), ``tmp`` scratch of the same size and
    type.  Each thread owns a contiguous share of the row; a pass counts the digits
    per thread, turns the counts into offsets by one block prefix sum in (digit,
    thread) order, and scatters each share in order, so every pass is stable.
    """
    cnt = cuda.shared.array(_COUNTS, int32)
    buf = cuda.shared.array(MAX_SORT_THREADS, float64)
    tid = cuda.threadIdx.x
    nt = cuda.blockDim.x
    sign = uint64(1) << uint64(nbits - 1)
    for i in range(cuda.blockIdx.x, first.shape[0] - 1, cuda.gridDim.x):
        a = first[i]
        n = first[i + 1] - a
        if n < 2:  # the same for the whole block
            continue
        k0, k1 = _segment(n)
        for k in range(a + k0, a + k1):
            if uint64(keys[k]) & sign:
                keys[k] = 0
        flipped = False
        for shift in range(0, nbits, RADIX_BITS):
            src = tmp if flipped else keys
            dst = keys if flipped else tmp
            for dg in range(RADIX_DIGITS):
                cnt[dg * nt + tid] = 0
            for k in range(a + k0, a + k1):
                dg = _digit(src[k], shift)
                cnt[dg * nt + tid] += 1
            cuda.syncthreads()
            # exclusive prefix sum in (digit, thread) order: thread t owns entries
            # [t D, (t + 1) D) of the flat array
            own = 0
            for f in range(tid * RADIX_DIGITS, (tid + 1) * RADIX_DIGITS):
                own += cnt[f]
            incl, _ = block_scan(buf, float64(own))
            acc = int32(incl) - own
            for f in range(tid * RADIX_DIGITS, (tid + 1) * RADIX_DIGITS):
                c = cnt[f]
                cnt[f] = acc
                acc += c
            cuda.syncthreads()
            skip = False  # one digit holds every key: the pass would change nothing
            for dg in range(RADIX_DIGITS):
                end = cnt[(dg + 1) * nt] if dg < RADIX_DIGITS - 1 else n
                if end - cnt[dg * nt] == n:
                    skip = True
            cuda.syncthreads()  # every thread has decided before thread 0's offsets move
            if not skip:
                for k in range(a + k0, a + k1):
                    v = src[k]
                    dg = _digit(v, shift)
                    dst[a + cnt[dg * nt + tid]] = v
                    cnt[dg * nt + tid] += 1
                flipped = not flipped
            cuda.syncthreads()
        if flipped:
            for k in range(a + k0, a + k1):
                keys[k] = tmp[k]
        cuda.syncthreads()


@cuda.jit
def certified_range_kernel(q, first, rows, summaries, params, rng):
    """Certified range ``rng[i] = (a, b)`` of row ``rows[i]`` (``a > b``: empty).

    ``q[first[i]:first[i + 1]]`` holds the row's candidates sorted in descending
    order (the exact solver searches ``τ`` up to their number ``m``);
    ``summaries[r]`` its whole-row summary; ``params = (metric, gamma)``.  Twin of
    :func:`rankseg.kernels.solver_passes._certified_range`: every thread walks a
    contiguous share of the prefixes, after one block prefix sum of the shares.
    """
    buf = cuda.shared.array(MAX_SORT_THREADS, float64)
    metric, gamma = params
    for i in range(cuda.blockIdx.x, rows.shape[0], cuda.gridDim.x):
        a = first[i]
        m = first[i + 1] - a
        mu = summaries[rows[i], SUM_MU]
        var = summaries[rows[i], SUM_VAR]
        k0, k1 = _segment(m)
        own = 0.0
        for k in range(a + k0, a + k1):
            own += q[k]
        incl, _ = block_scan(buf, own)
        best = 0.0
        s = incl - own
        for k in range(k0, k1):
            s += q[a + k]
            best = max(best, rma_objective(metric, s, k + 1, mu, gamma))
        best = block_max(buf, best)
        lo = m + 1
        hi = int64(0)
        s = incl - own
        for k in range(k0, k1):
            s += q[a + k]
            if exact_upper(metric, s, k + 1, mu, var, gamma) >= best * (1.0 - 1e-9):
                lo = min(lo, k + 1)
                hi = k + 1
        lo = -block_max(buf, -float64(lo))
        hi = block_max(buf, float64(hi))
        if cuda.threadIdx.x == 0:
            rng[i, 0] = int64(lo)
            rng[i, 1] = int64(hi)
