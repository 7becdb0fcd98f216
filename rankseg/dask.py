"""Spatially chunked RankSEG on dask arrays: images larger than one machine.

``rankseg.dask.predict(darr)`` decides a dask array of probabilities
``(B, C, *spatial)`` **without merging its spatial chunks**: the decision of one
(sample, class) needs only global quantities of its row, so it is computed as a
few map-reduce passes over the blocks (docs/xarray.rst, "Chunked samples"):

1. *histogram*: per block and row, a histogram of the values' bit patterns with
   exact per-bin counts and sums (:mod:`rankseg.kernels.chunked`), tree-reduced.
   It gives μ, the maximum (pruning), the forced set and the order of every other
   pixel up to its bin;
2. *refinement* (usually one small pass, sometimes none): the RMA scan over the
   bins (:func:`rankseg.kernels.chunked.scan_nodes`) names the few bins it cannot
   cross; their values are gathered (or the bins split) from the blocks.  When the
   cut splits a run of equal values, the flat index of the last selected one is
   found by counting ties per flat-index range;
3. *safe sums* (multiclass only): per class, the sum and count of the pixels that
   class alone selects;
4. *write*: a lazy ``map_blocks`` writing masks or labels block by block.

Passes 1-3 run when :func:`predict` is called (each reads the input once and keeps
only per-row summaries); the returned array is lazy and is the last pass.  Every
sum is exact (integer mantissa sums), so the result does not depend on the
chunking, and the masks, labels and ``tau``/``threshold``/``pruned`` equal those
of :func:`rankseg.predict` on the computed array; ``score`` agrees to rounding (μ
is summed exactly here, in a fixed float order there).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import dask
import dask.array as da
import numpy as np

from rankseg._api import PredictInfo, RankSEG
from rankseg._config import CHUNK
from rankseg._xarray_task import _task_threads
from rankseg.kernels.assign import argmax_labels
from rankseg.kernels.chunked import (
    LOW_BITS,
    assign_block,
    block_gather,
    block_hist,
    block_safe_sums,
    block_subhist,
    block_tie_gather,
    block_tie_hist,
    scan_nodes,
)
from rankseg.kernels.masks import write_masks, write_threshold_masks
from rankseg.kernels.rma import DICE, IOU, rma_bounds

__all__ = ["predict"]

_FLOATS = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))
#: per dtype: unsigned type, mantissa bits, exponent bias, bin shift (32 bins per
#: octave for float16/32, 8 for float64 so a row's histogram stays ~330 kB)
_LAYOUT = {
    2: (np.uint16, 10, 15, 5),
    4: (np.uint32, 23, 127, 18),
    8: (np.uint64, 52, 1023, 49),
}
#: a bin with at most this many values (16 MB of float64) is gathered; a larger one
#: is split into sub-bins of about GATHER / 16 values (2**_NSUB_BITS to
#: 2**_MAX_SUB_BITS of them)
GATHER = 1 << 21
_NSUB_BITS = 4
_MAX_SUB_BITS = 12
_TIE_BINS = 4096  # flat-index bins of a tie count
_FAN_IN = 8  # blocks combined per task of the tree reductions


# -- layout of the array and its blocks ----------------------------------------------
class _Layout:
    """Bit layout of a float dtype: bins of patterns, exponents, conversions."""

    def __init__(self, dtype: np.dtype) -> None:
        self.dtype = dtype
        self.udtype, self.mbits, self.bias, self.shift = _LAYOUT[dtype.itemsize]
        self.one = int(np.array(1.0, dtype=dtype).view(self.udtype))
        self.half = int(np.array(0.5, dtype=dtype).view(self.udtype))
        self.sign = 1 << (8 * dtype.itemsize - 1)
        self.nbins = (self.one >> self.shift) + 1
        self.nexp = (self.one >> self.mbits) + 1

    def scalars(self) -> tuple[Any, Any]:
        return self.udtype(self.one), self.udtype(self.sign)

    def value(self, bits: np.ndarray) -> np.ndarray:
        """Float64 values of bit patterns."""
        return np.asarray(bits).astype(self.udtype).view(self.dtype).astype(np.float64)

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


class _Blocks:
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


def _views(block: np.ndarray, layout: _Layout) -> tuple[np.ndarray, np.ndarray]:
    """View the block as rows ``(R, n)``: values for the kernels, and bit patterns."""
    arr = np.ascontiguousarray(block)
    arr = arr.reshape(arr.shape[0] * arr.shape[1], -1)
    bits = arr.view(layout.udtype)
    return (bits if arr.dtype == np.float16 else arr), bits


# -- pass 1: histogram -----------------------------------------------------------------
def _hist_task(block: np.ndarray, layout: _Layout, where: tuple) -> tuple:
    x, bits = _views(block, layout)
    one, sign = layout.scalars()
    stats, bad = block_hist(bits, one, sign, (layout.mbits, layout.shift, layout.nbins))
    for q in np.flatnonzero(bad >= 0):
        _raise_bad(block, int(q), int(bad[q]), where)
    return stats


def _raise_bad(block: np.ndarray, q: int, j: int, where: tuple) -> None:
    idx, rows, box, nc = where
    b, c = divmod(int(rows[q]), nc)
    row = np.ascontiguousarray(block).reshape(-1, int(np.prod(block.shape[2:])))[q]
    vals = row.astype(np.float64)
    spatial = ", ".join(f"{a}:{e}" for a, e in box[2:])
    at = f"sample {b}, class {c}, in chunk {tuple(idx)} (spatial [{spatial}])"
    if np.isnan(vals).any():
        what = "contains NaN"
    elif np.isinf(vals).any():
        what = "contains inf"
    else:
        what = f"has values outside [0, 1] (min {vals.min():g}, max {vals.max():g})"
    raise ValueError(
        f"probs {what} at {at}; expected finite probabilities in [0, 1] (apply softmax or "
        "sigmoid to logits first)"
    )


def _combine_stats(*parts: tuple) -> tuple:
    cnt, mhi, mlo, bmin, bmax = (p.copy() for p in parts[0])
    for p in parts[1:]:
        cnt += p[0]
        mhi += p[1]
        mlo += p[2]
        np.minimum(bmin, p[3], out=bmin)
        np.maximum(bmax, p[4], out=bmax)
    return cnt, mhi, mlo, bmin, bmax


def _histograms(blk: _Blocks, layout: _Layout) -> np.ndarray:
    """Pass 1: the merged histogram of every row, as int64 ``(B*C, 5, nbins)``."""
    groups: dict[tuple[int, int], list] = {}
    task = dask.delayed(_hist_task, pure=True)
    for idx in blk.index:
        where = (idx, blk.rows(idx), blk.box(idx), blk.nc)
        groups.setdefault(blk.group(idx), []).append(task(blk.delayed[idx], layout, where))
    keys = list(groups)
    results = dask.compute(*[_tree(groups[k], _combine_stats) for k in keys])
    hist = np.empty((blk.nb * blk.nc, 5, layout.nbins), dtype=np.int64)
    for k, res in zip(keys, results, strict=True):
        rows = blk.rows((*k, *([0] * len(blk.spatial))))
        hist[rows] = np.stack(res, axis=1)
    return hist


# -- passes 2+: refinement of bins and ties ----------------------------------------------
def _refine_task(block: np.ndarray, layout: _Layout, base: np.ndarray, req: dict) -> dict:
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
        out["tieh"] = block_tie_hist(x, req["tieh"], base, _TIE_BINS)
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


def _refine(blk: _Blocks, layout: _Layout, requests: dict[str, list]) -> dict[str, list]:
    """One pass answering refinement requests ``kind -> [(row, *args), ...]``.

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
            perm = sorted(range(len(items)), key=lambda i, it=items: (it[i][0], it[i][1]))
            local[kind] = [items[i] for i in perm]
            numbers[kind] = [numbers[kind][i] for i in perm]
        req = {}
        for kind, items in local.items():
            cols = list(zip(*items, strict=True))
            dt = [np.int64, np.float64 if kind.startswith("tie") else np.int64, np.int64, np.int64]
            req[kind] = tuple(np.array(c, dtype=t) for c, t in zip(cols, dt, strict=False))
        key = blk.group(idx)
        groups.setdefault(key, []).append(task(blk.delayed[idx], layout, blk.base(idx), req))
        order[key] = numbers  # the same rows, hence numbering, in every block of a group
    keys = list(groups)
    results = dask.compute(*[_tree(groups[k], _combine_refine) for k in keys])
    answers: dict[str, list] = {kind: [None] * len(reqs) for kind, reqs in requests.items()}
    for k, res in zip(keys, results, strict=True):
        for kind, numbers in order[k].items():
            for pos, n in enumerate(numbers):
                if kind == "sub":
                    answers[kind][n] = tuple(s[pos] for s in res[kind])
                else:
                    answers[kind][n] = res[kind][pos]
    return answers


class _Row:
    """Refinement state of one active row: its value bins (ascending patterns)."""

    def __init__(self, hist: np.ndarray, layout: _Layout, hi: float) -> None:
        cnt = hist[0]
        keep = np.flatnonzero(cnt)
        lo_bits = keep.astype(np.int64) << layout.shift
        self.layout = layout
        forced = layout.value(lo_bits) >= hi
        f = keep[forced]
        self.nf = int(cnt[f].sum())
        fb = lo_bits[forced]
        self.sf = float(np.sum(layout.bin_sums(fb, hist[1, f], hist[2, f]))) if f.size else 0.0
        self.mf = float(layout.value(hist[3, f].min())) if f.size else np.inf
        k = keep[~forced]
        self.lo = lo_bits[~forced]
        self.width = np.full(k.size, layout.shift, dtype=np.int64)
        self.stats = hist[:, k]
        self.vals: dict[int, np.ndarray] = {}  # lo pattern -> values, descending

    def nodes(self) -> tuple:
        """Node arrays in descending order, for :func:`scan_nodes`."""
        lay = self.layout
        cnt, mhi, mlo, bmin, bmax = (s[::-1] for s in self.stats)
        lo = self.lo[::-1]
        voff = np.full(lo.size, -1, dtype=np.int64)
        chunks = []
        pos = 0
        for i, b in enumerate(lo.tolist()):
            got = self.vals.get(b)
            if got is not None:
                voff[i] = pos
                pos += got.size
                chunks.append(got)
        vals = np.concatenate(chunks) if chunks else np.empty(0)
        sums = lay.bin_sums(lo, mhi, mlo)
        nodes = (cnt.copy(), sums, lay.value(bmin), lay.value(bmax), voff)
        return nodes, vals, lo

    def split(self, lo_bits: int, width: int, sub: tuple) -> None:
        """Replace the bin starting at ``lo_bits`` by its non-empty sub-bins of ``2**width``."""
        i = int(np.searchsorted(self.lo, lo_bits))
        keep = np.flatnonzero(sub[0])
        new_lo = lo_bits + (keep.astype(np.int64) << width)
        self.lo = np.concatenate([self.lo[:i], new_lo, self.lo[i + 1 :]])
        self.width = np.concatenate(
            [self.width[:i], np.full(keep.size, width, dtype=np.int64), self.width[i + 1 :]]
        )
        self.stats = np.concatenate(
            [self.stats[:, :i], np.stack([s[keep] for s in sub]), self.stats[:, i + 1 :]], axis=1
        )


def _cuts(blk: _Blocks, layout: _Layout, model: RankSEG) -> dict[str, np.ndarray]:
    """Run passes 1-2: the cut ``(tau, t, jcut, score)`` and the statistics of every row."""
    hist = _histograms(blk, layout)
    nrow = hist.shape[0]
    ee = layout.exponent(np.arange(layout.nbins, dtype=np.int64) << layout.shift)
    # bins share exponents in runs: sum the mantissa sums per exponent (exact, int64)
    first = np.flatnonzero(np.r_[True, ee[1:] != ee[:-1]])
    exps = ee[first]
    half_bin = layout.half >> layout.shift
    metric = DICE if model.metric == "dice" else IOU
    gamma = model.smooth
    mu = np.empty(nrow)
    pmax = np.empty(nrow)
    for r in range(nrow):
        h = hist[r]
        mu[r] = layout.exact_sum(exps, np.add.reduceat(h[1], first), np.add.reduceat(h[2], first))
        top = int(h[4].max())
        pmax[r] = layout.value(top) if top >= 0 else 0.0
    pruned = pmax <= model.pruning_prob
    tau = np.zeros(nrow, dtype=np.int64)
    t = np.full(nrow, np.inf)
    jcut = np.full(nrow, -1, dtype=np.int64)
    score = gamma / (mu + gamma) if gamma > 0 else np.zeros(nrow)  # F(0), pruned rows
    state: dict[int, _Row] = {}
    for r in np.flatnonzero(~pruned).tolist():
        h = hist[r]
        n_half = int(h[0, half_bin:].sum())
        half_bits = np.arange(half_bin, layout.nbins, dtype=np.int64) << layout.shift
        s_half = float(np.sum(layout.bin_sums(half_bits, h[1, half_bin:], h[2, half_bin:])))
        _, hi = rma_bounds(metric, mu[r], gamma, blk.d, pmax[r], n_half, s_half)
        state[r] = _Row(h, layout, hi)
    ties: dict[int, list] = {}  # row -> [t, k, a, b, count]
    while state or ties:
        requests: dict[str, list] = {"sub": [], "gat": [], "tieh": [], "tieg": []}
        pending: dict[str, list] = {key: [] for key in requests}
        for r, row in list(state.items()):
            nodes, vals, lo = row.nodes()
            need, res = scan_nodes(nodes, vals, (row.nf, row.sf, row.mf), mu[r], (metric, gamma))
            if not need.any():
                tau[r], t[r], score[r], k_in, full = res
                del state[r]
                if tau[r] == 0:
                    t[r] = np.inf
                    jcut[r] = -1
                elif full:
                    jcut[r] = blk.d
                else:
                    neq = _count_equal(row, nodes, vals, lo, t[r])
                    ties[r] = [t[r], int(k_in), 0, blk.d, neq]
                continue
            for i in np.flatnonzero(need).tolist():
                b = int(lo[i])
                j = int(np.searchsorted(row.lo, b))
                width = int(row.width[j])
                if nodes[0][i] <= GATHER:
                    requests["gat"].append((r, b, b + (1 << width)))
                    pending["gat"].append((r, b))
                else:
                    child = width - _sub_bits(width, int(nodes[0][i]))
                    requests["sub"].append((r, b, b + (1 << width), child))
                    pending["sub"].append((r, b, child))
        for r, (tv, _, a, b, neq) in ties.items():
            if neq <= GATHER:
                requests["tieg"].append((r, tv, a, b))
            else:
                w = -(-(b - a) // _TIE_BINS)
                requests["tieh"].append((r, tv, a, w))
            pending["tieg" if neq <= GATHER else "tieh"].append(r)
        requests = {k: val for k, val in requests.items() if val}
        if not requests:
            break
        answers = _refine(blk, layout, requests)
        for (r, b), vals in zip(pending["gat"], answers.get("gat", ()), strict=True):
            state[r].vals[b] = np.sort(vals)[::-1].copy()
        for (r, b, child), sub in zip(pending["sub"], answers.get("sub", ()), strict=True):
            state[r].split(b, child, sub)
        for r, idx in zip(pending["tieg"], answers.get("tieg", ()), strict=True):
            jcut[r] = np.sort(idx)[ties[r][1] - 1]
            del ties[r]
        for r, counts in zip(pending["tieh"], answers.get("tieh", ()), strict=True):
            tv, k, a, b, _ = ties[r]
            w = -(-(b - a) // _TIE_BINS)
            cum = np.cumsum(counts)
            i = int(np.searchsorted(cum, k))  # first bin whose cumulative count reaches k
            before = int(cum[i - 1]) if i else 0
            ties[r] = [tv, k - before, a + i * w, min(b, a + (i + 1) * w), int(counts[i])]
    return {"tau": tau, "t": t, "jcut": jcut, "score": score, "mu": mu, "pruned": pruned}


def _sub_bits(width: int, count: int) -> int:
    """log2 of the number of sub-bins of a split bin of ``2**width`` patterns."""
    want = max(0, math.ceil(math.log2(max(count, 1) / GATHER))) + 4
    return min(width, max(_NSUB_BITS, min(_MAX_SUB_BITS, want)))


def _count_equal(row: _Row, nodes: tuple, vals: np.ndarray, lo: np.ndarray, tv: float) -> int:
    """How many pixels of the row equal ``tv`` (a value of a scanned bin)."""
    lay = row.layout
    bits = int(np.array(tv, dtype=np.float64).astype(lay.dtype).view(lay.udtype))
    i = int(np.searchsorted(-lo, -bits, side="left"))  # lo descends: the bin holding bits
    cnt, _, vmin, vmax, voff = nodes
    if vmin[i] == vmax[i]:
        return int(cnt[i])
    seg = vals[voff[i] : voff[i] + cnt[i]]
    return int(np.count_nonzero(seg == tv))


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


def _safe_task(block: np.ndarray, layout: _Layout, cut: tuple) -> tuple:
    x, bits = _views(block, layout)
    return block_safe_sums(x, bits, block.shape[1], cut, (layout.mbits, layout.nexp))


def _combine_safe(*parts: tuple) -> tuple:
    return sum(p[0] for p in parts[1:]) + parts[0][0], sum(p[1] for p in parts[1:]) + parts[0][1]


def _safe_sums(blk: _Blocks, layout: _Layout, cuts: dict) -> tuple[np.ndarray, np.ndarray]:
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
def _write_block(block: np.ndarray, block_info: dict | None = None, **kw: Any) -> np.ndarray:
    layout: _Layout = kw["layout"]
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
    with _task_threads(1):
        write_masks(x, t, jl, out, CHUNK)
    return out.reshape(block.shape)


def _base_of(loc: list, spatial: tuple) -> np.ndarray:
    """Flat index of the first pixel of each outer line of the box ``loc`` (C order)."""
    strides = [int(np.prod(spatial[i + 1 :])) for i in range(len(spatial))]
    base = np.array(loc[-1][0], dtype=np.int64).reshape(())
    for (a, b), stride in zip(loc[:-1], strides[:-1], strict=True):
        base = base[..., None] + np.arange(a, b, dtype=np.int64) * stride
    return np.ascontiguousarray(base.reshape(-1) if base.ndim else base.reshape(1))


def _acc_block(block: np.ndarray, layout: _Layout, multiclass: bool, dtype: Any) -> np.ndarray:
    x, _ = _views(block, layout)
    with _task_threads(1):
        if multiclass:
            out = np.empty((block.shape[0], x.shape[1]), dtype=dtype)
            argmax_labels(x, block.shape[1], out, CHUNK)
            return out.reshape((block.shape[0], *block.shape[2:]))
        out = np.empty(x.shape, dtype=bool)
        write_threshold_masks(x, out, CHUNK)
        return out.reshape(block.shape)


# -- public API ------------------------------------------------------------------------------
def _check_dask(probs: Any) -> da.Array:
    if not isinstance(probs, da.Array):
        raise TypeError(
            "rankseg.dask.predict needs a dask array of shape (B, C, *spatial); got "
            f"{type(probs).__name__} (use rankseg.predict for NumPy arrays, "
            "rankseg.xarray.predict for DataArrays)"
        )
    if probs.dtype.newbyteorder("=") not in _FLOATS:
        raise TypeError(f"probs must have dtype float16, float32 or float64; got {probs.dtype}")
    if not probs.dtype.isnative:
        probs = probs.astype(probs.dtype.newbyteorder("="))
    if probs.ndim < 3:
        raise ValueError(
            "probs must have shape (B, C, *spatial) with at least one spatial axis; "
            f"got shape {probs.shape} ({probs.ndim} dimensions)"
        )
    if any(np.isnan(c) for chunks in probs.chunks for c in chunks):
        raise ValueError("probs has unknown chunk sizes; call probs.compute_chunk_sizes() first")
    if probs.shape[1] == 0:
        raise ValueError(f"probs has zero classes (shape {probs.shape}); expected C >= 1 on axis 1")
    if any(s == 0 for s in probs.shape[2:]):
        raise ValueError(
            f"probs has an empty spatial axis (shape {probs.shape}); every spatial size must "
            "be >= 1"
        )
    return probs


def predict(
    probs: da.Array,
    metric: str = "dice",
    smooth: float = 0.0,
    output_mode: str = "multiclass",
    solver: str | None = None,
    pruning_prob: float = 0.5,
    *,
    return_info: bool = False,
    dtype: Any = None,
    max_sample_bytes: int = 2 << 30,
    **solver_params: Any,
) -> da.Array | tuple[da.Array, PredictInfo]:
    """RankSEG on a dask array whose spatial dims may be chunked (images larger than RAM).

    Parameters
    ----------
    probs : dask.array.Array, shape (B, C, *spatial)
        float16/float32/float64 probabilities in [0, 1], chunked along any axis.
        Spatial chunks are kept; for multiclass output the class axis is merged
        into one chunk (the labels of a pixel read every class).
    metric, smooth, output_mode, solver, pruning_prob, **solver_params
        As for :func:`rankseg.predict`.  The chunked path runs the RMA solver and
        the accuracy rules; ``'exact'``, ``'ba'``, ``'trna'`` and ``'ba+trna'``
        decide each sample in one task (see Notes).
    return_info : bool
        Also return a :class:`rankseg.PredictInfo` (NumPy arrays; Dice/IoU only).
    dtype : integer dtype, optional
        Label dtype (multiclass only); default int64.
    max_sample_bytes : int
        Solvers other than RMA only: the largest sample (``C x prod(spatial) x
        itemsize`` bytes) one task may hold; default 2 GiB.

    Returns
    -------
    dask.array.Array, or (dask.array.Array, PredictInfo)
        Lazy labels ``(B, *spatial)`` or masks ``(B, C, *spatial)`` with the input's
        spatial chunks, and the info when requested.

    Raises
    ------
    TypeError
        For input that is not a dask array of a float dtype, and every type error of
        :func:`rankseg.predict`.
    ValueError
        For a bad shape and every parameter error of :func:`rankseg.predict`; for a
        NaN, an infinity or a value outside [0, 1], naming the sample, the class and
        the chunk (raised while the statistics are computed, inside ``predict``).

    Notes
    -----
    For Dice/IoU with the RMA solver, ``predict`` computes the cuts at once, in two to
    four passes over the input (a histogram of every row, usually one small pass
    gathering the values of the bins around the cut, a pass for the per-class safe
    sums of multiclass output), each holding one block plus a few hundred kilobytes
    per row in a task; the returned array is lazy and writes the output block by
    block.  Masks, labels, ``tau``, ``threshold`` and ``pruned`` are identical to those
    of :func:`rankseg.predict` on the computed array; ``score`` agrees to rounding.

    The other Dice/IoU solvers need a sorted candidate band of each row; this
    version decides each sample in one task (the class and spatial chunks of a
    sample are merged), and raises ValueError when one sample does not fit in
    ``max_sample_bytes``.  With ``return_info`` their info is computed by a second
    run of the solver.

    Examples
    --------
    >>> import dask.array as da, numpy as np
    >>> import rankseg.dask
    >>> p = np.array([[[[0.9, 0.6, 0.2, 0.7]], [[0.1, 0.4, 0.8, 0.3]]]])
    >>> labels = rankseg.dask.predict(da.from_array(p, chunks=(1, 2, 1, 2)))
    >>> labels.compute()
    array([[[0, 0, 1, 0]]])
    """
    model = RankSEG(metric, smooth, output_mode, solver, pruning_prob, **solver_params)
    x = _check_dask(probs)
    # every remaining check (return_info, dtype, void_index against C, C = 1 with
    # multiclass) by the NumPy API on an empty batch of the same shape
    empty = np.empty((0, *x.shape[1:]), dtype=x.dtype)
    res = model.predict(empty, return_info=return_info, dtype=dtype)
    out_dtype = (res[0] if return_info else res).dtype
    multiclass = model.output_mode == "multiclass"
    layout = _Layout(x.dtype)
    nb, nc = x.shape[:2]
    if multiclass and len(x.chunks[1]) > 1:
        x = x.rechunk({1: -1})
    if nb == 0:
        out = da.from_array(res[0] if return_info else res)
        return (out, res[1]) if return_info else out
    if model.metric == "acc":
        drop = (1,) if multiclass else ()
        meta = np.empty((0,) * (x.ndim - len(drop)), out_dtype)
        return x.map_blocks(
            _acc_block, layout, multiclass, out_dtype, dtype=out_dtype, drop_axis=drop, meta=meta
        )
    if model.solver != "rma":
        return _predict_samples(x, model, return_info, dtype, out_dtype, int(max_sample_bytes))
    blk = _Blocks(x)
    cuts = _cuts(blk, layout, model)
    kw: dict[str, Any] = {
        "layout": layout,
        "shape": x.shape,
        "cuts": cuts,
        "multiclass": multiclass,
        "out_dtype": out_dtype,
    }
    if multiclass:
        kw["m"], kw["n"] = _safe_sums(blk, layout, cuts)
        metric = DICE if model.metric == "dice" else IOU
        void = model.unassigned_policy == "void"
        kw["policy"] = (metric, model.smooth, void, np.int64(model.void_index if void else 0))
        meta = np.empty((0,) * (x.ndim - 1), out_dtype)
        out = x.map_blocks(_write_block, dtype=out_dtype, drop_axis=1, meta=meta, **kw)
    else:
        out = x.map_blocks(_write_block, dtype=bool, meta=np.empty((0,) * x.ndim, bool), **kw)
    if not return_info:
        return out
    tau = cuts["tau"]
    info = PredictInfo(
        tau=tau.reshape(nb, nc),
        threshold=np.where(tau > 0, cuts["t"], np.nan).reshape(nb, nc),
        score=cuts["score"].reshape(nb, nc),
        pruned=cuts["pruned"].reshape(nb, nc),
    )
    return out, info


def _sample_task(block: np.ndarray, params: dict, dtype: Any) -> np.ndarray:
    with _task_threads(1):
        return RankSEG(**params).predict(block, dtype=dtype)


def _sample_info(block: np.ndarray, params: dict) -> np.ndarray:
    with _task_threads(1):
        _, info = RankSEG(**params).predict(block, return_info=True)
    return np.stack([info.tau, info.threshold, info.score, info.pruned], axis=-1)


def _predict_samples(
    x: da.Array, model: RankSEG, return_info: bool, dtype: Any, out_dtype: np.dtype, max_sample: int
) -> Any:
    """Non-RMA solvers: each sample decided in one task by the NumPy API."""
    per_sample = int(np.prod(x.shape[1:])) * x.dtype.itemsize
    if per_sample > max_sample:
        raise ValueError(
            f"solver {model.solver!r} on dask input decides each sample in one task: a sample "
            f"of shape {x.shape[1:]} needs {per_sample / 2**30:.2f} GiB of input plus its output, "
            f"more than max_sample_bytes={max_sample} ({max_sample / 2**30:.2f} GiB). Use "
            "solver='rma' (chunked, bounded memory) or raise max_sample_bytes on workers "
            "that hold that much"
        )
    x = x.rechunk({0: 1, **{a: -1 for a in range(1, x.ndim)}})
    params = {
        "metric": model.metric,
        "smooth": model.smooth,
        "output_mode": model.output_mode,
        "solver": model.solver,
        "pruning_prob": model.pruning_prob,
        **model._given,
    }
    multiclass = model.output_mode == "multiclass"
    drop = (1,) if multiclass else ()
    out = x.map_blocks(
        _sample_task,
        params,
        dtype,
        dtype=out_dtype,
        drop_axis=drop,
        meta=np.empty((0,) * (x.ndim - len(drop)), out_dtype),
    )
    if not return_info:
        return out
    nb, nc = x.shape[:2]
    rows = dask.compute(*[dask.delayed(_sample_info)(b, params) for b in x.to_delayed().ravel()])
    stacked = np.concatenate(rows)
    info = PredictInfo(
        tau=stacked[..., 0].astype(np.int64),
        threshold=stacked[..., 1],
        score=stacked[..., 2],
        pruned=stacked[..., 3].astype(bool),
    )
    return out, info
