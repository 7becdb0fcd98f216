"""The passes of :mod:`rankseg.dask` over the blocks of a dask array.

Each pass maps a task over the blocks (one block per task, a few hundred kilobytes
per row besides) and tree-reduces the per-row results: the histogram pass (pass 1),
the refinement pass answering gather, split and tie requests (passes 2+), the
multiclass safe sums (pass 3) and the lazy write tasks.  What to request is decided
in :mod:`rankseg.dask._cuts`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dask
import dask.array as da
import numpy as np

from rankseg._config import CHUNK
from rankseg._policies import BITS_DTYPES, bits_view, kernel_view, one_bits
from rankseg._threads import num_threads
from rankseg._validation import bad_values_error
from rankseg.cpu.launchers import argmax_labels, write_masks, write_threshold_masks
from rankseg.kernels.dask_blocks import (
    LOW_BITS,
    assign_block,
    block_gather,
    block_hist,
    block_safe_sums,
    block_subhist,
    block_tie_gather,
    block_tie_hist,
)
from rankseg.kernels.summary import DEFAULT_NPOW, SUM_HEAD, row_summary

#: per dtype width: mantissa bits, exponent bias, bin shift (32 bins per octave for
#: float16/32, 8 for float64 so a row's histogram stays ~330 kB)
_LAYOUT = {
    2: (10, 15, 5),
    4: (23, 127, 18),
    8: (52, 1023, 49),
}
_FAN_IN = 8  # blocks combined per task of the tree reductions


# -- layout of the array and its blocks ----------------------------------------------
class Layout:
    """Bit layout of a float dtype: bins of patterns, exponents, conversions."""

    def __init__(self, dtype: np.dtype) -> None:
        self.dtype = dtype
        self.udtype = BITS_DTYPES[dtype.itemsize].type
        self.mbits, self.bias, self.shift = _LAYOUT[dtype.itemsize]
        self.one = int(one_bits(dtype))
        self.half = int(np.array(0.5, dtype=dtype).view(self.udtype))
        self.sign = 1 << (8 * dtype.itemsize - 1)
        self.nbins = (self.one >> self.shift) + 1
        self.nexp = (self.one >> self.mbits) + 1

    def scalars(self) -> tuple[Any, Any]:
        return self.udtype(self.one), self.udtype(self.sign)

    def value(self, bits: np.ndarray | int) -> np.ndarray:
        """Float64 values of bit patterns."""
        return np.asarray(bits).astype(self.udtype).view(self.dtype).astype(np.float64)

    def above(self, theta: float) -> int:
        """Smallest pattern of a value ``> theta``: 0 for ``theta < 0``, ``one + 1`` if none."""
        if theta < 0.0:
            return 0
        if theta >= 1.0:
            return self.one + 1
        v = np.array(theta, dtype=np.float64).astype(self.dtype)  # the nearest value
        b = int(v.view(self.udtype))
        return b + 1 if float(v) <= theta else b

    def exponent(self, bits: np.ndarray) -> np.ndarray:
        return np.maximum(np.asarray(bits, dtype=np.int64) >> self.mbits, 1)

    def bin_sums(self, bits: np.ndarray, mhi: np.ndarray, mlo: np.ndarray) -> np.ndarray:
        """Float64 sum of each bin (one exponent per bin); deterministic rounding."""
        scale = np.exp2((self.exponent(bits) - self.bias - self.mbits).astype(np.float64))
        return (mhi.astype(np.float64) * 2.0**LOW_BITS + mlo.astype(np.float64)) * scale

    def exact_sum(self, ee: np.ndarray, mhi: np.ndarray, mlo: np.ndarray) -> float:
        """Correctly rounded sum of mantissa sums ``(mhi, mlo)`` at exponents ``ee``."""
        total = 0
        for e, h, lo in zip(ee.tolist(), mhi.tolist(), mlo.tolist(), strict=True):
            if h or lo:
                total += ((h << LOW_BITS) + lo) << e
        return total / (1 << (self.bias + self.mbits))  # int / int rounds correctly


class Blocks:
    """The blocks of a dask array ``(B, C, *spatial)`` and their positions."""

    def __init__(self, x: da.Array) -> None:
        self.x = x
        self.shape = x.shape
        self.nb, self.nc = x.shape[:2]
        self.spatial = x.shape[2:]
        self.d = int(np.prod(self.spatial))
        self.starts = [np.concatenate([[0], np.cumsum(c)]).astype(np.int64) for c in x.chunks]
        self.delayed = x.to_delayed(optimize_graph=True)
        self.index = list(np.ndindex(*self.delayed.shape))

    def box(self, idx: tuple[int, ...]) -> list[tuple[int, int]]:
        return [(int(s[i]), int(s[i + 1])) for s, i in zip(self.starts, idx, strict=True)]

    def rows(self, idx: tuple[int, ...]) -> np.ndarray:
        """Global row numbers ``b * C + c`` of the block's rows, in its local order."""
        (b0, b1), (c0, c1) = self.box(idx)[:2]
        return (np.arange(b0, b1)[:, None] * self.nc + np.arange(c0, c1)[None, :]).ravel()

    def base(self, idx: tuple[int, ...]) -> np.ndarray:
        """Flat index of the first pixel of each outer line of the block."""
        return _base_of(self.box(idx)[2:], self.spatial)

    def group(self, idx: tuple[int, ...]) -> tuple[int, int]:
        return idx[0], idx[1]


def _tree(parts: list[Any], combine: Callable[..., Any]) -> Any:
    """Tree reduction of delayed parts, ``_FAN_IN`` at a time."""
    fn = dask.delayed(combine, pure=True)
    while len(parts) > 1:
        parts = [fn(*parts[i : i + _FAN_IN]) for i in range(0, len(parts), _FAN_IN)]
    return parts[0]


def _views(block: np.ndarray, layout: Layout) -> tuple[np.ndarray, np.ndarray]:
    """View the block as rows ``(R, n)``: values for the kernels, and bit patterns."""
    arr = np.ascontiguousarray(block)
    arr = arr.reshape(arr.shape[0] * arr.shape[1], -1)
    return kernel_view(arr), bits_view(arr)


# -- pass 1: histogram -----------------------------------------------------------------
def _hist_task(block: np.ndarray, layout: Layout, where: tuple, summaries: bool) -> tuple:
    x, bits = _views(block, layout)
    one, sign = layout.scalars()
    stats, bad = block_hist(bits, one, sign, (layout.mbits, layout.shift, layout.nbins))
    for q in np.flatnonzero(bad >= 0):
        _raise_bad(block, int(q), int(bad[q]), where)
    if not summaries:
        return stats, None
    # the whole-row summary of the exact/RNA solvers: every entry is a sum over pixels,
    # so the block summaries add up (in a fixed order: the tree below)
    summ = np.zeros((x.shape[0], SUM_HEAD + DEFAULT_NPOW))
    for i in range(x.shape[0]):
        row_summary(x[i], summ[i])
    return stats, summ


def _raise_bad(block: np.ndarray, q: int, j: int, where: tuple) -> None:
    idx, rows, box, nc = where
    b, c = divmod(int(rows[q]), nc)
    row = np.ascontiguousarray(block).reshape(-1, int(np.prod(block.shape[2:])))[q]
    raise bad_values_error(row, b, c, tuple(idx), tuple(box[2:]))


def _combine_stats(*parts: tuple) -> tuple:
    cnt, mhi, mlo, bmin, bmax = (p.copy() for p in parts[0])
    for p in parts[1:]:
        cnt += p[0]
        mhi += p[1]
        mlo += p[2]
        np.minimum(bmin, p[3], out=bmin)
        np.maximum(bmax, p[4], out=bmax)
    return cnt, mhi, mlo, bmin, bmax


def _combine_hist(*parts: tuple) -> tuple:
    stats = _combine_stats(*(p[0] for p in parts))
    if parts[0][1] is None:
        return stats, None
    summ = parts[0][1].copy()
    for p in parts[1:]:
        summ += p[1]
    return stats, summ


def histograms(blk: Blocks, layout: Layout, summaries: bool) -> tuple:
    """Pass 1: the merged histogram of every row, as int64 ``(B*C, 5, nbins)``.

    With ``summaries``, also the whole-row summaries ``(B*C, SUM_HEAD + DEFAULT_NPOW)``
    (:func:`rankseg.kernels.summary.row_summary`) of the exact and RNA solvers, the
    sums of the blocks' summaries; else None.
    """
    groups: dict[tuple[int, int], list] = {}
    task = dask.delayed(_hist_task, pure=True)
    for idx in blk.index:
        where = (idx, blk.rows(idx), blk.box(idx), blk.nc)
        part = task(blk.delayed[idx], layout, where, summaries)
        groups.setdefault(blk.group(idx), []).append(part)
    keys = list(groups)
    results = dask.compute(*[_tree(groups[k], _combine_hist) for k in keys])
    nrow = blk.nb * blk.nc
    hist = np.empty((nrow, 5, layout.nbins), dtype=np.int64)
    summ = np.zeros((nrow, SUM_HEAD + DEFAULT_NPOW)) if summaries else None
    for k, (stats, part) in zip(keys, results, strict=True):
        rows = blk.rows((*k, *([0] * len(blk.spatial))))
        hist[rows] = np.stack(stats, axis=1)
        if summ is not None:
            summ[rows] = part
    return hist, summ


# -- passes 2+: refinement of bins and ties ----------------------------------------------
def _refine_task(
    block: np.ndarray, layout: Layout, base: np.ndarray, req: dict, tie_bins: int
) -> dict:
    x, bits = _views(block, layout)
    one, sign = layout.scalars()
    out: dict[str, Any] = {}
    if "sub" in req:
        rows, lo, hi, shift = req["sub"]
        nsub = int(((hi - lo) >> shift).max())
        out["sub"] = block_subhist(bits, one, sign, req["sub"], (layout.mbits, nsub))
    if "gat" in req:
        vals, start = block_gather(bits, one, sign, req["gat"], x)
        out["gat"] = [vals[start[q] : start[q + 1]] for q in range(len(start) - 1)]
    if "tieh" in req:
        out["tieh"] = block_tie_hist(x, req["tieh"], base, tie_bins)
    if "tieg" in req:
        idx, start = block_tie_gather(x, req["tieg"], base)
        out["tieg"] = [idx[start[q] : start[q + 1]] for q in range(len(start) - 1)]
    return out


def _combine_refine(*parts: dict) -> dict:
    out: dict[str, Any] = {}
    for key in parts[0]:
        if key == "sub":
            out[key] = _combine_stats(*(p[key] for p in parts))
        elif key == "tieh":
            out[key] = sum(p[key] for p in parts[1:]) + parts[0][key]
        else:
            out[key] = [np.concatenate(z) for z in zip(*(p[key] for p in parts), strict=True)]
    return out


def refine(
    blk: Blocks, layout: Layout, requests: dict[str, list], tie_bins: int
) -> dict[str, list]:
    """One pass answering refinement requests ``kind -> [(row, *args), ...]``.

    ``tie_bins`` is the number of flat-index bins of a ``tieh`` request.

    Returns, per kind, the answers in the order of the requests.
    """
    by_row: dict[int, list] = {}
    for kind, reqs in requests.items():
        for n, (row, *args) in enumerate(reqs):
            by_row.setdefault(row, []).append((kind, n, args))
    groups: dict[tuple[int, int], list] = {}
    order: dict[tuple[int, int], dict[str, list[int]]] = {}
    task = dask.delayed(_refine_task, pure=True)
    for idx in blk.index:
        rows = blk.rows(idx)
        local: dict[str, list] = {}
        numbers: dict[str, list[int]] = {}
        for q, r in enumerate(rows.tolist()):
            for kind, n, args in by_row.get(r, ()):
                local.setdefault(kind, []).append((q, *args))
                numbers.setdefault(kind, []).append(n)
        if not local:
            continue
        for kind, items in local.items():  # the kernels want rows, then ranges, ascending
            sort_keys = [(it[0], it[1]) for it in items]
            perm = sorted(range(len(items)), key=sort_keys.__getitem__)
            local[kind] = [items[i] for i in perm]
            numbers[kind] = [numbers[kind][i] for i in perm]
        req = {}
        for kind, items in local.items():
            cols = list(zip(*items, strict=True))
            dt = [np.int64, np.float64 if kind.startswith("tie") else np.int64, np.int64, np.int64]
            req[kind] = tuple(np.array(c, dtype=t) for c, t in zip(cols, dt, strict=False))
        key = blk.group(idx)
        groups.setdefault(key, []).append(
            task(blk.delayed[idx], layout, blk.base(idx), req, tie_bins)
        )
        order[key] = numbers  # the same rows, hence numbering, in every block of a group
    keys = list(groups)
    results = dask.compute(*[_tree(groups[k], _combine_refine) for k in keys])
    answers: dict[str, list] = {kind: [None] * len(reqs) for kind, reqs in requests.items()}
    for k, res in zip(keys, results, strict=True):
        for kind, nums in order[k].items():
            for pos, n in enumerate(nums):
                if kind == "sub":
                    answers[kind][n] = tuple(s[pos] for s in res[kind])
                else:
                    answers[kind][n] = res[kind][pos]
    return answers


# -- pass 3 (multiclass): safe sums ------------------------------------------------------
def _local_jcut(
    jcut: np.ndarray, t: np.ndarray, base: np.ndarray, n_line: int, d: int
) -> np.ndarray:
    """Block-local tie cut: the last local index whose flat index is ``<= jcut``."""
    out = np.empty(jcut.size, dtype=np.int64)
    n = base.size * n_line
    for q, j in enumerate(jcut.tolist()):
        if j < 0 or t[q] == np.inf:
            out[q] = -1
        elif j >= d:
            out[q] = n
        else:
            out[q] = int(np.clip(j - base + 1, 0, n_line).sum()) - 1
    return out


def _safe_task(block: np.ndarray, layout: Layout, cut: tuple) -> tuple:
    x, bits = _views(block, layout)
    return block_safe_sums(x, bits, block.shape[1], cut, (layout.mbits, layout.nexp))


def _combine_safe(*parts: tuple) -> tuple:
    return sum(p[0] for p in parts[1:]) + parts[0][0], sum(p[1] for p in parts[1:]) + parts[0][1]


def safe_sums(blk: Blocks, layout: Layout, cuts: dict) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the sum and the count of the pixels its class alone selects."""
    groups: dict[int, list] = {}
    task = dask.delayed(_safe_task, pure=True)
    active = ~cuts["pruned"]
    for idx in blk.index:
        rows = blk.rows(idx)
        base = blk.base(idx)
        n_line = blk.box(idx)[-1][1] - blk.box(idx)[-1][0]
        jl = _local_jcut(cuts["jcut"][rows], cuts["t"][rows], base, n_line, blk.d)
        cut = (cuts["t"][rows], jl, active[rows])
        groups.setdefault(idx[0], []).append(task(blk.delayed[idx], layout, cut))
    keys = list(groups)
    results = dask.compute(*[_tree(groups[k], _combine_safe) for k in keys])
    m = np.zeros(blk.nb * blk.nc)
    n = np.zeros(blk.nb * blk.nc)
    exps = np.arange(layout.nexp)
    for k, (msum, nsafe) in zip(keys, results, strict=True):
        rows = blk.rows((k, 0, *([0] * len(blk.spatial))))
        flat = msum.reshape(-1, layout.nexp, 2)
        for q, r in enumerate(rows.tolist()):
            m[r] = layout.exact_sum(exps, flat[q, :, 0], flat[q, :, 1])
        n[rows] = nsafe.reshape(-1)
    return m, n


# -- the write pass ----------------------------------------------------------------------
def write_block(block: np.ndarray, block_info: dict | None = None, **kw: Any) -> np.ndarray:
    layout: Layout = kw["layout"]
    if block_info is None:  # dask's map_blocks always passes it
        raise TypeError("_write_block needs dask's block_info (called by map_blocks)")
    loc = block_info[0]["array-location"]
    shape = kw["shape"]
    x, bits = _views(block, layout)
    nbb, ncb = block.shape[:2]
    rows = (np.arange(*loc[0])[:, None] * shape[1] + np.arange(*loc[1])[None, :]).ravel()
    spatial = block.shape[2:]
    n_line = spatial[-1]
    base = _base_of(loc[2:], shape[2:])
    cuts = kw["cuts"]
    t = cuts["t"][rows]
    jl = _local_jcut(cuts["jcut"][rows], t, base, n_line, int(np.prod(shape[2:])))
    if kw["multiclass"]:
        out = np.empty((nbb, x.shape[1]), dtype=kw["out_dtype"])
        active = ~cuts["pruned"][rows]
        anyact = active.reshape(nbb, ncb).any(axis=1)
        mn = (kw["m"][rows], kw["n"][rows], cuts["mu"][rows], anyact)
        assign_block(x, ncb, (t, jl, active), mn, kw["policy"], out)
        return out.reshape((nbb, *spatial))
    out = np.empty(x.shape, dtype=bool)
    with num_threads(1):
        write_masks(x, t, jl, out, CHUNK)
    return out.reshape(block.shape)


def _base_of(loc: list, spatial: tuple) -> np.ndarray:
    """Flat index of the first pixel of each outer line of the box ``loc`` (C order)."""
    strides = [int(np.prod(spatial[i + 1 :])) for i in range(len(spatial))]
    base = np.array(loc[-1][0], dtype=np.int64).reshape(())
    for (a, b), stride in zip(loc[:-1], strides[:-1], strict=True):
        base = base[..., None] + np.arange(a, b, dtype=np.int64) * stride
    return np.ascontiguousarray(base.reshape(-1) if base.ndim else base.reshape(1))


def acc_block(block: np.ndarray, layout: Layout, multiclass: bool, dtype: Any) -> np.ndarray:
    x, _ = _views(block, layout)
    with num_threads(1):
        if multiclass:
            out = np.empty((block.shape[0], x.shape[1]), dtype=dtype)
            argmax_labels(x, block.shape[1], out, CHUNK)
            return out.reshape((block.shape[0], *block.shape[2:]))
        out = np.empty(x.shape, dtype=bool)
        write_threshold_masks(x, out, CHUNK)
        return out.reshape(block.shape)
