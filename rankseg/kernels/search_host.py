"""Host side of the GPU path of the non-RMA solvers.

Rows are solved from the candidates the device gathered, with the same sort, search
range, solver and prefix extension as :func:`rankseg.kernels.search.solver_cuts`,
whose helpers this module uses.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from rankseg._compile.jit import jit
from rankseg.kernels._tasks import run_tasks
from rankseg.kernels.exact import SUM_D
from rankseg.kernels.search import (
    _cut_of,
    _next_theta,
    _prefix_above,
    _search_end,
    _solve_row,
)
from rankseg.kernels.sort import _sort_descending

__all__ = ["solve_candidates", "solve_packed"]


@jit
def _packed_tasks(i0, i1, cand, first, summaries, params, out):
    """Rows ``i0 <= i < i1`` of :func:`solve_packed`."""
    solver, metric, gamma, eps = params
    tau, t, score, k_in, full, need = out
    for i in range(i0, i1):
        q = cand[first[i] : first[i + 1]]
        summary = summaries[i]
        _sort_descending(q)
        tau_hi = _search_end(solver, q, np.int64(summary[SUM_D]), gamma)
        best, val, p_need = _solve_row(solver, metric, q, summary, (gamma, eps), tau_hi)
        if p_need > 0.0:
            need[i] = True
            continue
        tau[i] = best
        score[i] = val
        if best > 0:
            t[i], k_in[i], full[i] = _cut_of(q, best)


def solve_packed(
    cand: np.ndarray, first: np.ndarray, summaries: np.ndarray, params: tuple
) -> tuple[np.ndarray, ...]:
    """Solve many rows from their packed candidates in parallel (host side of the GPU path).

    Parameters
    ----------
    cand : ndarray of float64
        Row ``i``'s candidates (``p > θ``, :func:`rankseg.kernels.search.candidate_bound`) in
        ``cand[first[i]:first[i + 1]]``, any order (sorted here, in place).
    first : ndarray of int64, shape (n + 1,)
        Offsets of the rows in ``cand``.
    summaries : ndarray of float64, shape (n, SUM_HEAD + DEFAULT_NPOW)
        Whole-row summaries.
    params : tuple of (solver, metric, gamma, eps)
        As for :func:`rankseg.kernels.search.solver_cuts`.

    Returns
    -------
    tau, t, score, k_in, full, need : ndarrays of shape (n,)
        As :func:`solve_candidates`; ``need[i]`` is True when the exact solver asks
        for more than the candidates (solve that row with :func:`solve_candidates`).
    """
    solver, metric, gamma, eps = params
    params = (np.int64(solver), np.int64(metric), float(gamma), float(eps))
    n = first.shape[0] - 1
    out = (
        np.zeros(n, dtype=np.int64),
        np.full(n, np.inf),
        np.zeros(n),
        np.zeros(n, dtype=np.int64),
        np.ones(n, dtype=np.bool_),
        np.zeros(n, dtype=np.bool_),
    )
    run_tasks(_packed_tasks, n, cand, first, summaries, params, out)
    return out


def solve_candidates(
    q: np.ndarray,
    summary: np.ndarray,
    params: tuple,
    theta: float,
    whole_row: Callable[[], np.ndarray],
) -> tuple[int, float, float, int, bool]:
    """Solve one row from its candidates, as :func:`~rankseg.kernels.search.solver_cuts` does.

    For a backend that gathers the candidates elsewhere (the GPU): the same sort,
    search range, solver and prefix extension as the CPU path.

    Parameters
    ----------
    q : ndarray of float64
        The row's candidates ``p > θ`` in any order (sorted here, in place).
    summary : ndarray of float64, shape (SUM_HEAD + DEFAULT_NPOW,)
        The row's whole-row summary (see :func:`rankseg.kernels.exact.row_summary`).
    params : tuple of (solver, metric, gamma, eps)
        As for :func:`rankseg.kernels.search.solver_cuts`.
    theta : float
        The candidate bound ``θ`` of :func:`rankseg.kernels.search.candidate_bound`.
    whole_row : callable
        Returns the whole row (as :func:`~rankseg.kernels.search.solver_cuts` reads
        it); called only when the exact solver asks for a longer prefix.

    Returns
    -------
    tau, t, score, k_in, full : int, float, float, int, bool
        The first maximizer ``τ*``, the cut value (``inf`` for ``τ* = 0``), the
        objective at ``τ*``, the selected values equal to ``t`` and whether every
        value equal to ``t`` is selected.
    """
    solver, metric, gamma, eps = params
    d = int(summary[SUM_D])
    _sort_descending(q)
    tau_hi = _search_end(solver, q, d, gamma)
    best, val, p_need = _solve_row(solver, metric, q, summary, (gamma, eps), tau_hi)
    tries = 0
    row = None
    while p_need > 0.0 and tries < 5:
        tries += 1
        theta = _next_theta(theta, p_need, tries)
        row = whole_row() if row is None else row
        q = _prefix_above(row, theta)
        best, val, p_need = _solve_row(solver, metric, q, summary, (gamma, eps), tau_hi)
    if best == 0:
        return 0, np.inf, float(val), 0, True
    t, k_in, full = _cut_of(q, best)
    return int(best), float(t), float(val), int(k_in), bool(full)
