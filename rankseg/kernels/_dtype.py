"""Reading probabilities of any supported dtype as float64 inside kernels.

Numba on the CPU has no float16 arithmetic, so float16 input is handed to the
kernels as its ``uint16`` bit pattern (a zero-copy view) and decoded here, one
value at a time.  float32 and float64 are simply widened.
"""

from __future__ import annotations

import numpy as np

from rankseg._compile.jit import jit, on_live

__all__ = ["as_f64", "as_native", "bits_value", "narrow", "native_bounds"]

# 2**(e - 25) for the 5-bit float16 exponent e: a normal half is (1024 + m) * 2**(e - 25).
_POW2 = np.array([2.0 ** (e - 25) for e in range(32)], dtype=np.float64)
_SUBNORMAL = 2.0**-24


def as_f64(v):  # pragma: no cover - replaced by the overload inside kernels
    """Return ``v`` as a float64 (float16 arrives as its uint16 bits)."""
    return float(v)


def narrow(t, like):  # pragma: no cover - replaced by the overload inside kernels
    """Return ``t`` in the dtype that :func:`as_native` gives ``like``'s values."""
    return float(t)


def as_native(v):  # pragma: no cover - replaced by the overload inside kernels
    """Return ``v`` for comparison in its own float dtype (float16 bits: decoded)."""
    return float(v)


def _register() -> None:
    """Register the numba implementation of :func:`as_f64` (run when numba is in use)."""
    from numba import types
    from numba.extending import overload

    # LLVM inlines it; numba-level inlining warns (NumbaIRAssumptionWarning)
    @overload(as_f64)
    def _as_f64_overload(v):
        if isinstance(v, types.Integer):

            def decode_half(v):
                h = np.int64(v)
                e = (h >> 10) & 0x1F
                m = h & 0x3FF
                if e == 0:
                    out = m * _SUBNORMAL
                elif e == 31:
                    out = np.inf if m == 0 else np.nan
                else:
                    out = (m + 1024) * _POW2[e]
                if h & 0x8000:
                    out = -out
                return out

            return decode_half

        def widen(v):
            return np.float64(v)

        return widen

    # comparisons in the input's own dtype: float32 values against a float32
    # threshold take twice the SIMD lanes of float64; float16 (its bits) is decoded
    @overload(as_native)
    def _as_native_overload(v):
        if isinstance(v, types.Integer):
            return lambda v: as_f64(v)
        return lambda v: v

    @overload(narrow)
    def _narrow_overload(t, like):
        if like.dtype == types.float32:
            return lambda t, like: np.float32(t)
        return lambda t, like: np.float64(t)


on_live(_register)


@jit(inline="always")
def native_bounds(a, b, like):
    """Return bounds ``(a', b')`` in :func:`as_native`'s dtype that compare as ``(a, b)`` do.

    For every value ``v`` of ``like``: ``v > a'`` exactly when ``v > a``, and
    ``v >= b'`` exactly when ``v >= b`` (float64 ``a`` and ``b``).  A float32 row
    then compares in float32 (twice the SIMD lanes): ``a`` rounded down and ``b``
    rounded up to float32 values, as no float32 value lies strictly between a
    bound and its rounded value.  Other dtypes compare in float64.
    """
    an = narrow(a, like)
    if as_f64(an) > a:
        an = np.nextafter(an, narrow(-np.inf, like))
    bn = narrow(b, like)
    if as_f64(bn) < b:
        bn = np.nextafter(bn, narrow(np.inf, like))
    return an, bn


@jit(inline="always")
def bits_value(bits, cell):
    """Decode ``bits`` as a value of the rows' dtype, widened to float64.

    ``cell`` is ``(value, pattern)``: a one-element array of the rows' kernel dtype
    and its view as their unsigned integers, made once per call (not an allocation
    per value); float16 rows (their ``uint16`` bits) are decoded by :func:`as_f64`.
    """
    value, pattern = cell
    pattern[0] = bits
    return as_f64(value[0])
