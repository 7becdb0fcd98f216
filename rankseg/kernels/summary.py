"""The whole-row summary of the exact and RNA solvers: one streaming pass per row.

:func:`row_summary` reads a row once and fills the summary vector (layout
``SUM_*``): the number of pixels, ``mu = sum p``, the cumulants ``sum p (1 - p)`` and
``sum p (1 - p) (1 - 2 p)`` of the refined normal approximation, and the power sums
``P_k = sum p**k`` through which the exact quadrature (:mod:`rankseg.kernels.exact`)
handles every pixel outside the sorted prefix.
"""

from __future__ import annotations

import numpy as np

from rankseg._compile.jit import jit
from rankseg.kernels._dtype import as_f64

__all__ = [
    "DEFAULT_NPOW",
    "SUM_D",
    "SUM_HEAD",
    "SUM_M3",
    "SUM_MU",
    "SUM_VAR",
    "block_cumulants",
    "blocks_in_order",
    "block_summaries",
    "new_summary",
    "row_summary",
]

#: Layout of the whole-row summary vector filled by :func:`row_summary`.
SUM_D = 0  # number of pixels d
SUM_MU = 1  # mu = sum p
SUM_VAR = 2  # sum p (1 - p)
SUM_M3 = 3  # sum p (1 - p) (1 - 2 p)
SUM_HEAD = 4  # power sums P_1..P_K follow at SUM_HEAD..SUM_HEAD + K - 1
#: Default number of power sums.
DEFAULT_NPOW = 12
#: Pixels per block of the streaming pass (partial sums keep rounding at ~block size).
BLOCK = 256


@jit
def blocks_in_order(part, out):
    """Add each row's blocks in block order: ``out[r] = part[r, 0] + part[r, 1] + ...``.

    ``part`` has shape ``(R, n_blocks, K)`` (``n_blocks >= 1``), ``out`` ``(R, K)``.
    The same additions in the same order as ``np.add.accumulate(part, axis=1)[:, -1]``
    (sequential), so the same bits, without that array of every running total: for
    the rows' ``d / BLOCK`` blocks it took 0.14-0.69 ms of a call on tumor3d.
    """
    nr, nb, k = part.shape
    for r in range(nr):
        for c in range(k):
            out[r, c] = part[r, 0, c]
        for i in range(1, nb):
            for c in range(k):
                out[r, c] += part[r, i, c]


def new_summary(npow: int = DEFAULT_NPOW) -> np.ndarray:
    """Allocate a summary vector for :func:`row_summary`.

    Parameters
    ----------
    npow : int, default DEFAULT_NPOW
        Number of power sums ``K`` to keep (0 for the moments only).

    Returns
    -------
    ndarray of float64, shape (SUM_HEAD + npow,)
        Zero-filled summary buffer.
    """
    return np.zeros(SUM_HEAD + npow, dtype=np.float64)


@jit(fastmath={"reassoc"})
def block_powers(vals, pw, m, npow, tot, off):
    """Add ``sum_i vals[i]**k`` for ``k = 1..npow`` to ``tot[off + k - 1]``.

    ``pw`` enters equal to ``vals`` and is used as scratch.  Four powers are formed
    in registers per sweep over the block, which measured 1.7x faster than one
    power per sweep (the loop is bound by loads and stores otherwise).
    """
    k = 0
    while k + 4 <= npow:
        b0 = 0.0
        b1 = 0.0
        b2 = 0.0
        b3 = 0.0
        for i in range(m):
            v = vals[i]
            t = pw[i]
            b0 += t
            t *= v
            b1 += t
            t *= v
            b2 += t
            t *= v
            b3 += t
            pw[i] = t * v
        tot[off + k] += b0
        tot[off + k + 1] += b1
        tot[off + k + 2] += b2
        tot[off + k + 3] += b3
        k += 4
    while k < npow:
        b0 = 0.0
        for i in range(m):
            b0 += pw[i]
            pw[i] *= vals[i]
        tot[off + k] += b0
        k += 1


# fastmath={"reassoc"} only (as in select.row_stats): it lets LLVM vectorize the sums;
# comparisons, NaN and signed-zero semantics are untouched.  The block structure
# fixes the summation order, so results are reproducible.
@jit(fastmath={"reassoc"})
def row_summary(row, summary):
    """One streaming pass over a row: cumulants and power sums.

    Parameters
    ----------
    row : ndarray, shape (d,)
        The row's probabilities in any order: float32, float64, or float16 passed
        as its ``uint16`` bit pattern (decoded by :func:`rankseg.kernels._dtype.as_f64`).
    summary : ndarray of float64, shape (SUM_HEAD + K,)
        Receives ``[d, mu, var, m3, P_1, ..., P_K]`` with ``mu = sum p``,
        ``var = sum p (1 - p)``, ``m3 = sum p (1 - p) (1 - 2 p)`` and
        ``P_k = sum p**k``.  ``K = len(summary) - SUM_HEAD`` may be zero.

    Returns
    -------
    ndarray of float64
        ``summary``.

    Notes
    -----
    Accumulates in float64 block by block (``_BLOCK`` pixels), so the rounding
    error grows with the block size rather than with ``d``.  Every entry is a sum
    over pixels, so the summaries of disjoint chunks of a row add up entrywise
    (``SUM_D`` included): a long row can be split across threads in fixed chunks
    (e.g. ``rankseg._config.CHUNK``) and the partial summaries added in chunk order,
    independently of the thread count.
    """
    n = row.shape[0]
    npow = summary.shape[0] - SUM_HEAD
    vals = np.empty(BLOCK, dtype=np.float64)
    pw = np.empty(BLOCK, dtype=np.float64)
    tot = np.zeros(3 + npow, dtype=np.float64)
    for start in range(0, n, BLOCK):
        m = min(BLOCK, n - start)
        blk = row[start : start + m]
        a0 = 0.0
        a1 = 0.0
        a2 = 0.0
        for i in range(m):
            p = as_f64(blk[i])
            vals[i] = p
            pw[i] = p
            v = p * (1.0 - p)
            a0 += p
            a1 += v
            a2 += v * (1.0 - 2.0 * p)
        tot[0] += a0
        tot[1] += a1
        tot[2] += a2
        block_powers(vals, pw, m, npow, tot, np.int64(3))  # not a literal: one compile
    summary[SUM_D] = n
    summary[SUM_MU] = tot[0]
    summary[SUM_VAR] = tot[1]
    summary[SUM_M3] = tot[2]
    for k in range(npow):
        summary[SUM_HEAD + k] = tot[3 + k]
    return summary


@jit(fastmath={"reassoc"})
def block_cumulants(row, out):
    """Each block's three cumulant sums, as :func:`row_summary` forms them.

    Parameters
    ----------
    row : ndarray, shape (n,)
        Pixels of a row (as for :func:`row_summary`), ``n`` a multiple of
        :data:`BLOCK` except for a row's last piece.
    out : ndarray of float64, shape (ceil(n / BLOCK), 3)
        Receives, per block of :data:`BLOCK` pixels, ``sum p``, ``sum p (1 - p)`` and
        ``sum p (1 - p) (1 - 2 p)``.

    Notes
    -----
    The block loop is :func:`row_summary`'s (the same operations, vectorized the
    same way), without the copies its power sums need.  Adding a row's blocks in
    order, starting from the first, gives :func:`row_summary`'s ``mu``, ``var`` and
    ``m3`` bit for bit (``tests/test_exact_kernels.py``), so a row's blocks can be
    formed on several threads.
    """
    n = row.shape[0]
    for b in range(out.shape[0]):
        start = b * BLOCK
        m = min(BLOCK, n - start)
        blk = row[start : start + m]
        a0 = 0.0
        a1 = 0.0
        a2 = 0.0
        for i in range(m):
            p = as_f64(blk[i])
            v = p * (1.0 - p)
            a0 += p
            a1 += v
            a2 += v * (1.0 - 2.0 * p)
        out[b, 0] = a0
        out[b, 1] = a1
        out[b, 2] = a2


@jit(fastmath={"reassoc"})
def block_summaries(row, out):
    """Each block's cumulant and power sums, as :func:`row_summary` forms them.

    Parameters
    ----------
    row : ndarray, shape (n,)
        Pixels of a row (as for :func:`row_summary`), ``n`` a multiple of
        :data:`BLOCK` except for a row's last piece.
    out : ndarray of float64, shape (ceil(n / BLOCK), 3 + K)
        Receives, per block of :data:`BLOCK` pixels, ``sum p``, ``sum p (1 - p)``,
        ``sum p (1 - p) (1 - 2 p)`` and the power sums ``P_1 .. P_K``.

    Notes
    -----
    The block loop and :func:`block_powers` are :func:`row_summary`'s, so adding a
    row's blocks in order, starting from the first, gives its summary (after
    ``d``) bit for bit (``tests/test_exact_kernels.py``), and a long row's blocks
    can be formed on several threads.
    """
    n = row.shape[0]
    npow = out.shape[1] - 3
    vals = np.empty(BLOCK, dtype=np.float64)
    pw = np.empty(BLOCK, dtype=np.float64)
    for b in range(out.shape[0]):
        start = b * BLOCK
        m = min(BLOCK, n - start)
        blk = row[start : start + m]
        a0 = 0.0
        a1 = 0.0
        a2 = 0.0
        for i in range(m):
            p = as_f64(blk[i])
            vals[i] = p
            pw[i] = p
            v = p * (1.0 - p)
            a0 += p
            a1 += v
            a2 += v * (1.0 - 2.0 * p)
        tot = out[b]
        tot[0] = a0
        tot[1] = a1
        tot[2] = a2
        for k in range(npow):
            tot[3 + k] = 0.0
        block_powers(vals, pw, m, npow, tot, np.int64(3))
