"""The cuts of :mod:`rankseg.dask`: what each row needs, pass after pass.

:func:`find_cuts` runs the histogram pass, then refinement passes until every active
row has its cut ``(tau, t, jcut, score)``: the RMA scan over the bins names the
bins to gather or split; a cut that splits a run of equal values is located by
counting ties per flat-index range.
"""

from __future__ import annotations

import math

import numpy as np

from rankseg._api import RankSEG
from rankseg.dask._passes import _Blocks, _histograms, _Layout, _refine
from rankseg.kernels.chunked import scan_nodes
from rankseg.kernels.rma import DICE, IOU, rma_bounds

#: a bin with at most this many values (16 MB of float64) is gathered; a larger one
#: is split into sub-bins of about GATHER / 16 values (2**_NSUB_BITS to
#: 2**_MAX_SUB_BITS of them)
GATHER = 1 << 21
_NSUB_BITS = 4
_MAX_SUB_BITS = 12
_TIE_BINS = 4096  # flat-index bins of a tie count


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


def find_cuts(blk: _Blocks, layout: _Layout, model: RankSEG) -> dict[str, np.ndarray]:
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
        answers = _refine(blk, layout, requests, _TIE_BINS)
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
