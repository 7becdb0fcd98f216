"""The exact, BA, TRNA and BA+TRNA solvers of :mod:`rankseg.dask`: rows from gathered bands.

The in-memory path (:func:`rankseg.cpu.launchers.solver_cuts`) decides a row from
two things: its whole-row summary (moments and power sums, every entry a sum over
pixels, so the blocks' summaries add up; computed in the histogram pass) and the
band ``q`` of its values above the candidate bound ``θ``
(:func:`rankseg.kernels.solver_passes.candidate_bound`), sorted in descending order.  Here
the band is gathered from the blocks (its size is known beforehand from the
histogram's bin counts), sorted and solved in the calling process by the same jit
functions; when the exact solver asks for a longer prefix (``p_need > 0``) the values
between the new and the old bound are gathered in a further pass, as far as the
whole row.  The cut then goes through the same tie passes as RMA's.

A row is a small state machine driven by :func:`rankseg.dask._cuts.find_cuts`:
``requests()`` returns the gathers it needs next (``None`` once decided, with the
decision in ``result``) and ``answer()`` receives their values.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rankseg.dask._passes import Layout
from rankseg.kernels.ba_trna import ba_dice_objective
from rankseg.kernels.exact import exact_reciprocal_moments
from rankseg.kernels.solver_passes import (
    EXACT,
    candidate_bound,
    cut_of,
    next_theta,
    search_end,
    solve_row,
)
from rankseg.kernels.sort import sort_descending

#: bytes of memory per value of a band: the values, the radix sort's scratch, and the
#: objective and prefix sums per volume of the exact/RNA kernels (8 bytes each)
BAND_BYTES_PER_VALUE = 32

#: what a decided row reports: (tau, t, score, k_in, full, neq) as in _cuts
Result = tuple[int, float, float, int, bool, int]


class SearchContext:
    """What every row of one call shares: layout, solver parameters, band budget."""

    def __init__(self, layout: Layout, model: Any, code: int, metric: int, shape: tuple) -> None:
        self.layout = layout
        self.name = model.solver
        self.solver = code
        self.metric = metric
        self.gamma = float(model.smooth)
        self.eps = float(model.eps)
        self.nc = int(shape[1])
        self.d = int(np.prod(shape[2:]))
        self.max_bytes = 0

    def check_band(self, r: int, nvals: int, theta: float, what: str) -> None:
        """Raise ValueError when a band of ``nvals`` values exceeds the budget."""
        need = nvals * BAND_BYTES_PER_VALUE
        if need <= self.max_bytes:
            return
        b, c = divmod(r, self.nc)
        raise ValueError(
            f"solver {self.name!r} on dask input gathers {what} of sample {b}, class {c} "
            f"into the calling process: up to {nvals:,} values (p > {theta:.6g}) of the "
            f"row's {self.d:,}, about {_size(need)} at {BAND_BYTES_PER_VALUE} bytes per "
            f"value, more than max_band_bytes={self.max_bytes} ({_size(self.max_bytes)}). "
            "Raise max_band_bytes where the calling process has that much memory, or use "
            "solver='rma' (memory per task: one chunk)"
        )


def _size(nbytes: int) -> str:
    if nbytes >= 2**30:
        return f"{nbytes / 2**30:,.2f} GiB"
    if nbytes >= 2**20:
        return f"{nbytes / 2**20:,.1f} MiB"
    return f"{nbytes:,} bytes"


def _count_from(cnt: np.ndarray, layout: Layout, b0: int, b1: int) -> int:
    """Upper bound of the values of patterns ``[b0, b1)`` from the bin counts ``cnt``."""
    if b1 <= b0:
        return 0
    return int(cnt[b0 >> layout.shift : ((b1 - 1) >> layout.shift) + 1].sum())


class BandRow:
    """One active row: its band above ``θ``, solved as ``solver_cuts`` solves it."""

    def __init__(self, ctx: SearchContext, r: int, hist: np.ndarray, summary: np.ndarray) -> None:
        self.ctx = ctx
        self.r = r
        self.cnt = hist[0]
        self.summary = summary
        lay = ctx.layout
        top = int(hist[4].max())
        pmax = float(lay.value(top))
        half_bin = lay.half >> lay.shift
        n_half = int(self.cnt[half_bin:].sum())
        half_bits = np.arange(half_bin, lay.nbins, dtype=np.int64) << lay.shift
        s_half = float(np.sum(lay.bin_sums(half_bits, hist[1, half_bin:], hist[2, half_bin:])))
        self.theta = float(candidate_bound(ctx.metric, 0.0, ctx.gamma, ctx.d, pmax, n_half, s_half))
        self.q = np.empty(0)
        self.have = lay.one + 1  # q holds the values of patterns [have, one]
        self.tries = 0
        self.tau_hi = -1
        self.result: Result | None = None

    def requests(self) -> list[tuple[str, tuple, int]] | None:
        """Return the gather this row needs next, or None when it is decided."""
        while self.result is None:
            want = min(self.ctx.layout.above(self.theta), self.have)
            if want < self.have:
                new = _count_from(self.cnt, self.ctx.layout, want, self.have)
                self.ctx.check_band(self.r, self.q.size + new, self.theta, "the candidate band")
                return [("gat", (want, self.have), new)]
            self._solve()  # a lower bound with no new value (below the smallest pattern)
        return None

    def answer(self, kind: str, args: tuple, vals: np.ndarray) -> None:
        """Merge the gathered values ``p > θ`` into the band and solve again."""
        q = np.concatenate([self.q, vals])
        sort_descending(q)
        self.q = q
        self.have = args[0]
        self._solve()

    def _solve(self) -> None:
        ctx = self.ctx
        q = self.q
        if self.tau_hi < 0:  # from the first band, as solver_cuts
            self.tau_hi = int(search_end(ctx.solver, q, ctx.d, ctx.gamma))
        best, val, p_need = solve_row(
            ctx.solver, ctx.metric, q, self.summary, (ctx.gamma, ctx.eps), self.tau_hi
        )
        if p_need > 0.0 and self.tries < 5:  # the whole row (4th try) never needs more
            self.tries += 1
            self.theta = float(next_theta(self.theta, p_need, self.tries))
            return
        if best == 0:
            self.result = (0, np.inf, float(val), 0, True, 0)
            return
        t, k_in, full = cut_of(q, best)
        neq = 0 if full else int(np.count_nonzero(q == t))  # q holds every p >= t
        self.result = (int(best), float(t), float(val), int(k_in), bool(full), neq)


class EmptyRow:
    """A pruned row with ``γ > 0``: the solver's ``π(0)``, as ``empty_scores`` computes it."""

    def __init__(self, ctx: SearchContext, r: int, hist: np.ndarray, summary: np.ndarray) -> None:
        self.ctx = ctx
        self.r = r
        self.summary = summary
        top = int(hist[4].max())
        self.pmax = float(ctx.layout.value(top)) if top >= 0 else 0.0
        self.cnt = hist[0]
        self.theta = 0.5
        self.it = 0  # iterations of empty_scores' loop done; 4 then the whole row
        self.result: Result | None = None
        if ctx.solver != EXACT:
            val = np.empty(1)
            zero = np.int64(0)
            ba_dice_objective(np.empty(0), summary, ctx.gamma, ctx.eps, zero, zero, val)
            self._done(val[0])  # the RNA objective at 0 is the score itself

    def _done(self, score: float) -> None:
        self.result = (0, np.inf, float(score), 0, True, 0)

    def requests(self) -> list[tuple[str, tuple, int]] | None:
        """Return the gather of the values above the current bound, or None when decided."""
        while self.result is None:
            if self.it < 4 and self.pmax <= self.theta:  # no value above: halve the bound
                self.theta *= 0.5
                self.it += 1
                continue
            theta = self.theta if self.it < 4 else -1.0
            lay = self.ctx.layout
            want = lay.above(theta)
            new = _count_from(self.cnt, lay, want, lay.one + 1)
            self.ctx.check_band(self.r, new, theta, "the values for the empty mask's score")
            return [("gat", (want, lay.one + 1), new)]
        return None

    def answer(self, kind: str, args: tuple, vals: np.ndarray) -> None:
        """Evaluate ``E[1/(γ + Γ)]`` with the gathered prefix."""
        q = vals.copy()
        sort_descending(q)
        val = np.empty(1)
        p_need = exact_reciprocal_moments(q, self.summary, self.ctx.gamma, 1, val)
        if self.it >= 4 or p_need == 0.0:
            self._done(self.ctx.gamma * val[0])
            return
        self.theta = 0.5 * p_need
        self.it += 1
