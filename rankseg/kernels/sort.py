"""In-place descending sort of a row's candidates (float64, finite, >= 0).

:func:`sort_candidates` sorts the candidate rows of every non-RMA solver
(:mod:`rankseg.kernels.solver_passes`), with the sort its map's dtype allows;
:func:`sort_descending` the rows of the GPU path's host solve and of the dask search
and the short buckets of RMA's band (:mod:`rankseg.kernels.rma_passes`).
"""

from __future__ import annotations

import numpy as np

from rankseg._compile.jit import jit, on_live

__all__ = ["sort_candidates", "sort_descending", "sort_f32_values"]

_RADIX_MIN = 48  # below this, insertion sort is faster
_RADIX_BITS = 11  # 2048 buckets: the counts stay in L1
_RADIX = 1 << _RADIX_BITS
_RADIX_MASK = np.uint64(_RADIX - 1)
_MASK32 = np.uint32(_RADIX - 1)
_SHIFT1 = np.uint32(_RADIX_BITS)
_SHIFT2 = np.uint32(2 * _RADIX_BITS)


@jit
def sort_descending(a):
    """Sort ``a`` (finite, >= 0) in place, largest first.

    Large arrays use an LSD radix sort on the IEEE bit patterns (for non-negative
    floats they order like the values): 11-bit digits, digits on which all keys
    agree skipped (float32-origin values leave the low 29 mantissa bits zero), one
    scratch array of ``len(a)`` keys.  Measured 3x faster than quicksort on 0.9 M
    candidates.  Short arrays use insertion sort.  (numba's ``ndarray.sort`` is not
    used: its quicksort costs about 2 s of compilation in a cold first call.)
    """
    n = a.shape[0]
    for k in range(n):
        a[k] += 0.0  # -0.0 -> +0.0, whose bits order correctly
    if n < _RADIX_MIN:
        _insertion_sort(a)
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
        if _scatter(src, dst, count, shift, _RADIX_MASK):
            src, dst = dst, src
    # an odd number of scatter passes leaves the keys in the scratch array
    for k in range(n):
        keys[k] = ~src[k]


def sort_candidates(a, like):
    """Sort the candidates ``a`` of a row of ``like`` in place, largest first.

    Which sort runs follows ``like``'s dtype: float32 and float16 maps (float16
    arrives as its ``uint16`` bits) have float32 values only, so their candidates sort
    on 32-bit keys (:func:`sort_f32_values`); float64 maps on the 64-bit patterns
    (:func:`sort_descending`).  Inside kernels a numba overload makes the choice when
    the kernel is compiled, so it holds one sort; this Python body makes the same
    choice where no kernel is compiled (``NUMBA_DISABLE_JIT``, e.g. the wheel build's
    discovery of the kernels' signatures).  The result is the same sorted array
    either way.
    """
    if like.dtype == np.float64:
        sort_descending(a)
    else:
        sort_f32_values(a, like)


def _register() -> None:
    """Register the numba implementation of :func:`sort_candidates`."""
    from numba import types
    from numba.extending import overload

    # not inline="always": inlined into exact_rows_tasks, a one-pixel row got tau 0
    # instead of 1 (numba 0.68; tests/test_solvers.py::test_exact_is_optimal_over_all_masks)
    @overload(sort_candidates)
    def _sort_candidates_overload(a, like):
        if like.dtype == types.float64:
            return lambda a, like: sort_descending(a)
        return sort_f32_values  # the algorithm itself: no wrapper to compile


on_live(_register)


def sort_f32_values(a, like):
    """Sort ``a`` (float64 holding float32 values, finite, >= 0) in place, largest first.

    The float32 branch of :func:`sort_candidates` (compiled as its overload; ``like``
    is the map's row, unused here).

    LSD radix sort on 32-bit keys, the complemented float32 bit patterns (ascending
    keys, descending values): three digits (11, 11 and 10 bits) whose counts are all
    taken in the pass that builds the keys, in int32 counters that stay in L1
    (``len(a) < 2**31``), and half the bytes of 64-bit keys moved per scatter; a
    digit on which all keys agree is skipped.  0.9 M background
    candidates of a CT map: 10.5 ms with :func:`sort_descending`, 5.4 ms here.  Short
    arrays use insertion sort.
    """
    n = a.shape[0]
    if n < _RADIX_MIN:
        for k in range(n):
            a[k] += 0.0  # -0.0 -> +0.0
        _insertion_sort(a)
        return
    # the keys and the scratch of the scatter both live in ``a``'s own bytes (2 n
    # words): no allocation, so no fresh pages to fault in on every call.  Word ``k``
    # is written after ``a[k]`` (words 2k, 2k+1) is read, and no later value is
    # overwritten (2k' > k for k' > k).
    words = a.view(np.uint32)
    fv = a.view(np.float32)
    count = np.zeros((3, _RADIX + 1), dtype=np.int32)
    for k in range(n):
        fv[k] = np.float32(a[k] + 0.0)  # -0.0 -> +0.0, whose bits order correctly
        key = ~words[k]
        words[k] = key
        count[0, (key & _MASK32) + 1] += 1
        count[1, ((key >> _SHIFT1) & _MASK32) + 1] += 1
        count[2, (key >> _SHIFT2) + 1] += 1
    src = words[:n]
    dst = words[n:]
    low = True  # the keys are in the first half
    for digit_no in range(3):
        if _scatter(src, dst, count[digit_no], digit_no * _RADIX_BITS, _MASK32):
            src, dst = dst, src
            low = not low
    # back to float64 values in place: from the top down when the keys are in the
    # first half (a[k] covers words 2k, 2k+1 >= k: keys already read), from the
    # bottom up when they are in the second (words 2k + 1 < n + k + 1)
    if low:
        for k in range(n - 1, -1, -1):
            words[k] = ~words[k]
            a[k] = fv[k]
    else:
        for k in range(n):
            words[n + k] = ~words[n + k]
            a[k] = fv[n + k]


@jit(inline="always")
def _insertion_sort(a):
    """Sort a short ``a`` (no -0.0) in place, largest first: both sorts' small case."""
    for k in range(1, a.shape[0]):
        v = a[k]
        m = k
        while m > 0 and a[m - 1] < v:
            a[m] = a[m - 1]
            m -= 1
        a[m] = v


@jit(inline="always")
def _scatter(src, dst, count, shift, mask):
    """One stable pass of an LSD radix sort on the digit ``(key >> shift) & mask``.

    ``count[b + 1]`` holds the keys with digit ``b``.  Returns False, having moved
    nothing, when every key has the same digit (the pass would change nothing).
    """
    n = src.shape[0]
    same = False
    for b in range(_RADIX + 1):
        same = same or count[b] == n
    if same:
        return False
    for b in range(_RADIX):
        count[b + 1] += count[b]
    for k in range(n):
        key = src[k]
        digit = (key >> shift) & mask
        dst[count[digit]] = key
        count[digit] += 1
    return True
