"""In-place descending sort of a row's candidates (float64, finite, >= 0).

Used by every non-RMA solver (:mod:`rankseg.kernels.solver_passes`) and the GPU path's host
solve (:func:`rankseg.cpu.launchers.solve_packed`).
"""

from __future__ import annotations

import numpy as np

from rankseg._compile.jit import jit

__all__ = ["sort_descending"]

_RADIX_MIN = 48  # below this, insertion sort is faster
_RADIX_BITS = 11  # 2048 buckets: the counts stay in L1
_RADIX = 1 << _RADIX_BITS
_RADIX_MASK = np.uint64(_RADIX - 1)
_MASK32 = np.uint32(_RADIX - 1)
_SHIFT1 = np.uint32(_RADIX_BITS)
_SHIFT2 = np.uint32(2 * _RADIX_BITS)
_F32_MAX_N = 2**31  # int32 counters


@jit
def sort_descending(a):
    """Sort ``a`` (finite, >= 0) in place, largest first.

    Large arrays use an LSD radix sort on the IEEE bit patterns (for non-negative
    floats they order like the values), 11-bit digits, digits on which all keys agree
    skipped.  When every value is a float32 value (candidates of a float32 or float16
    map), the keys are the 32-bit patterns: three digits whose counts come from one
    pass, half the bytes moved per scatter (:func:`_sort_f32_keys`).  Otherwise the
    keys are the 64-bit patterns.  Short arrays use insertion sort.  The result is the
    same sorted array whichever path sorts it.  (numba's ``ndarray.sort`` is not used:
    its quicksort costs about 2 s of compilation in a cold first call.)
    """
    n = a.shape[0]
    fits = True
    for k in range(n):
        v = a[k] + 0.0  # -0.0 -> +0.0, whose bits order correctly
        a[k] = v
        fits &= np.float64(np.float32(v)) == v
    if n < _RADIX_MIN:
        for k in range(1, n):
            v = a[k]
            m = k
            while m > 0 and a[m - 1] < v:
                a[m] = a[m - 1]
                m -= 1
            a[m] = v
        return
    if fits and n < _F32_MAX_N:
        _sort_f32_keys(a)
        return
    keys = a.view(np.uint64)
    for k in range(n):
        keys[k] = ~keys[k]  # ascending order of ~bits is descending order of values
    tmp = np.empty(n, dtype=np.uint64)
    src = keys
    dst = tmp
    count = np.empty(_RADIX + 1, dtype=np.int64)
    for shift in range(0, 64, _RADIX_BITS):
        count[:] = 0
        for k in range(n):
            count[((src[k] >> shift) & _RADIX_MASK) + 1] += 1
        same = False
        for b in range(_RADIX + 1):
            same = same or count[b] == n
        if same:
            continue  # every key has the same digit here
        for b in range(_RADIX):
            count[b + 1] += count[b]
        for k in range(n):
            digit = (src[k] >> shift) & _RADIX_MASK
            dst[count[digit]] = src[k]
            count[digit] += 1
        src, dst = dst, src
    # an odd number of scatter passes leaves the keys in the scratch array
    for k in range(n):
        keys[k] = ~src[k]


@jit
def _sort_f32_keys(a):
    """Radix-sort ``a`` (float64 holding float32 values, >= 0, no -0.0) on 32-bit keys.

    The keys are the complemented float32 bit patterns (ascending keys, descending
    values); the counts of all three digits (11, 11 and 10 bits) are taken in the pass
    that builds the keys, in int32 counters (``len(a) < 2**31``) that stay in L1.
    """
    n = a.shape[0]
    vals = np.empty(n, dtype=np.float32)
    for k in range(n):
        vals[k] = np.float32(a[k])
    keys = vals.view(np.uint32)
    count = np.zeros((3, _RADIX + 1), dtype=np.int32)
    for k in range(n):
        key = ~keys[k]
        keys[k] = key
        count[0, (key & _MASK32) + 1] += 1
        count[1, ((key >> _SHIFT1) & _MASK32) + 1] += 1
        count[2, (key >> _SHIFT2) + 1] += 1
    tmp = np.empty(n, dtype=np.uint32)
    src = keys
    dst = tmp
    for digit_no in range(3):
        shift = digit_no * _RADIX_BITS
        c = count[digit_no]
        same = False
        for b in range(_RADIX + 1):
            same = same or c[b] == n
        if same:
            continue  # every key has the same digit here
        for b in range(_RADIX):
            c[b + 1] += c[b]
        for k in range(n):
            key = src[k]
            digit = (key >> shift) & _MASK32
            dst[c[digit]] = key
            c[digit] += 1
        src, dst = dst, src
    for k in range(n):
        src[k] = ~src[k]
    out = src.view(np.float32)
    for k in range(n):
        a[k] = out[k]
