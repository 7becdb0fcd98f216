"""The cuts of :mod:`rankseg.dask`: what each row needs, pass after pass.

:func:`find_cuts` runs the histogram pass, then refinement passes until every active
row has its cut ``(tau, t, jcut, score)``: the RMA scan over the bins names the
bins to gather or split; a cut that splits a run of equal values is located by
counting ties per flat-index range.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from rankseg._api import RankSEG
from rankseg._policies import SOLVER_CODE, metric_code
from rankseg.dask._passes import Blocks, Layout, histograms, refine
from rankseg.dask._search import BAND_BYTES_PER_VALUE, BandRow, EmptyRow, SearchContext
from rankseg.kernels.dask_blocks import scan_nodes
from rankseg.kernels.rma import rma_bounds

#: a bin with at most this many values (16 MB of float64) is gathered; a larger one
#: is split into sub-bins of about GATHER / 16 values (2**_NSUB_BITS to
#: 2**_MAX_SUB_BITS of them)
GATHER = 1 << 21
_NSUB_BITS = 4
_MAX_SUB_BITS = 12
_TIE_BINS = 4096  # flat-index bins of a tie count


class _Row:
    """RMA refinement state of one active row: its value bins (ascending patterns)."""

    def __init__(
        self, hist: np.ndarray, layout: Layout, hi: float, mu: float, objective: tuple
    ) -> None:
        self.mu = mu
        self.objective = objective  # (metric, gamma)
        self.result: tuple | None = None
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

    def requests(self) -> list[tuple[str, tuple, int]] | None:
        """Return the bins to gather or split before the scan can decide; None once decided."""
        nodes, vals, lo = self.nodes()
        forced = (self.nf, self.sf, self.mf)
        need, res = scan_nodes(nodes, vals, forced, self.mu, self.objective)
        if not need.any():
            tau, t, score, k_in, full = res
            neq = _count_equal(self, nodes, vals, lo, t) if tau > 0 and not full else 0
            self.result = (int(tau), float(t), float(score), int(k_in), bool(full), neq)
            return None
        out: list[tuple[str, tuple, int]] = []
        for i in np.flatnonzero(need).tolist():
            b = int(lo[i])
            width = int(self.width[int(np.searchsorted(self.lo, b))])
            count = int(nodes[0][i])
            if count <= GATHER:
                out.append(("gat", (b, b + (1 << width)), count))
            else:
                out.append(("sub", (b, b + (1 << width), width - _sub_bits(width, count)), 0))
        return out

    def answer(self, kind: str, args: tuple, value: Any) -> None:
        """Keep a gathered bin's values (descending), or split a bin by its sub-histogram."""
        if kind == "gat":
            self.vals[args[0]] = np.sort(value)[::-1].copy()
        else:
            self.split(args[0], args[2], value)


def find_cuts(
    blk: Blocks, layout: Layout, model: RankSEG, max_band_bytes: int
) -> dict[str, np.ndarray]:
    """Run passes 1-2: the cut ``(tau, t, jcut, score)`` and the statistics of every row.

    ``max_band_bytes`` bounds the values gathered per pass and, for the exact/RNA
    solvers, the band of one row (:class:`rankseg.dask._search.SearchContext`).
    """
    search = model.solver != "rma"
    hist, summ = histograms(blk, layout, search)
    nrow = hist.shape[0]
    ee = layout.exponent(np.arange(layout.nbins, dtype=np.int64) << layout.shift)
    # bins share exponents in runs: sum the mantissa sums per exponent (exact, int64)
    first = np.flatnonzero(np.r_[True, ee[1:] != ee[:-1]])
    exps = ee[first]
    metric = metric_code(model.metric)
    gamma = model.smooth
    mu = np.empty(nrow)
    pmax = np.empty(nrow)
    for r in range(nrow):
        h = hist[r]
        mu[r] = layout.exact_sum(exps, np.add.reduceat(h[1], first), np.add.reduceat(h[2], first))
        top = int(h[4].max())
        pmax[r] = layout.value(top) if top >= 0 else 0.0
    pruned = pmax <= model.pruning_prob
    cuts = {
        "tau": np.zeros(nrow, dtype=np.int64),
        "t": np.full(nrow, np.inf),
        "jcut": np.full(nrow, -1, dtype=np.int64),
        "score": gamma / (mu + gamma) if gamma > 0 else np.zeros(nrow),  # F(0), pruned rows
        "mu": mu,
        "pruned": pruned,
    }
    rows: dict[int, Any] = {}
    if search:
        ctx = SearchContext(layout, model, SOLVER_CODE[model.solver], metric, blk.shape)
        ctx.max_bytes = int(max_band_bytes)
        for r in range(nrow):
            if not pruned[r]:
                rows[r] = BandRow(ctx, r, hist[r], summ[r])
            elif gamma > 0:  # the solver's score of the empty mask
                rows[r] = EmptyRow(ctx, r, hist[r], summ[r])
    else:
        half_bin = layout.half >> layout.shift
        half_bits = np.arange(half_bin, layout.nbins, dtype=np.int64) << layout.shift
        for r in np.flatnonzero(~pruned).tolist():
            h = hist[r]
            n_half = int(h[0, half_bin:].sum())
            s_half = float(np.sum(layout.bin_sums(half_bits, h[1, half_bin:], h[2, half_bin:])))
            _, hi = rma_bounds(metric, mu[r], gamma, blk.d, pmax[r], n_half, s_half)
            rows[r] = _Row(h, layout, hi, mu[r], (metric, gamma))
    _drive(blk, layout, rows, cuts, max(1, int(max_band_bytes) // BAND_BYTES_PER_VALUE))
    return cuts


def _drive(blk: Blocks, layout: Layout, rows: dict[int, Any], cuts: dict, budget: int) -> None:
    """Refinement passes until every row has its cut (written into ``cuts``).

    A row state answers ``requests()`` with the gathers/splits it needs next, each
    with the number of values it brings back (None once decided: its ``result`` is
    ``(tau, t, score, k_in, full, neq)``), and takes their answers in ``answer()``.
    A pass gathers at most ``budget`` values (at least one row's requests); the
    other rows wait for the next pass.  Cuts that split a run of ties join the
    same passes.
    """
    tau, t, jcut, score = (cuts[k] for k in ("tau", "t", "jcut", "score"))
    ties: dict[int, list] = {}  # row -> [t, k, a, b, count]
    while rows or ties:
        requests: dict[str, list] = {"sub": [], "gat": [], "tieh": [], "tieg": []}
        pending: dict[str, list] = {key: [] for key in requests}
        used = 0
        for r, row in list(rows.items()):
            reqs = row.requests()
            if reqs is None:
                del rows[r]
                tau[r], t[r], score[r], k_in, full, neq = row.result
                if tau[r] == 0:
                    t[r] = np.inf
                    jcut[r] = -1
                elif full:
                    jcut[r] = blk.d
                else:
                    ties[r] = [t[r], int(k_in), 0, blk.d, neq]
                continue
            size = sum(n for _, _, n in reqs)
            if used and used + size > budget:
                continue  # the next pass
            used += size
            for kind, args, _ in reqs:
                requests[kind].append((r, *args))
                pending[kind].append((r, args))
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
        answers = refine(blk, layout, requests, _TIE_BINS)
        for kind in ("gat", "sub"):
            for (r, args), val in zip(pending[kind], answers.get(kind, ()), strict=True):
                rows[r].answer(kind, args, val)
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
