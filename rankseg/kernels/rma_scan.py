"""The RMA cut scan, one source for the in-memory band and the dask bins.

Both RMA paths find the first maximizer of ``F(τ)`` (:func:`rankseg.kernels.rma.rma_objective`)
by walking down the values below the forced set, a group at a time: the in-memory
solver's value buckets (:func:`rankseg.kernels.rma_passes.solve_band`) and the dask path's
bit-pattern bins (:func:`rankseg.kernels.dask_blocks.scan_nodes`).  A group is either
crossed in one step (its values are not needed: no prefix ending in it can win, or
``F`` rises through it) or scanned one value at a time in descending order.  These
``inline`` helpers are those steps; the callers decide only *which* step a group takes
and where its values come from.

The scan's state is the tuple ``(s, tau, best, best_tau, best_t, best_kin,
best_full)``: the sum and length of the prefix walked so far, the best ``F`` and its
cut ``(τ*, t, k_in, full)`` as in :func:`rankseg.kernels.rma_passes.solve_band`.  The
objective is ``(metric, mu, gamma)``.
"""

from __future__ import annotations

import numpy as np

from rankseg._compile.jit import jit
from rankseg.kernels.rma import DICE, rma_objective

__all__ = ["PRUNE_MARGIN", "bucket_bound", "scan_bound", "scan_cross", "scan_start", "scan_values"]

#: relative margin by which a group's upper bound must stay below the best ``F`` to be
#: crossed without its values
PRUNE_MARGIN = 1e-9


@jit(inline="always")
def bucket_bound(metric, s, tau, mu, gamma, cnt, vmax):
    """Upper bound of ``F`` over the next ``cnt`` prefixes when each added value <= vmax."""
    if metric == DICE:
        d0 = mu + tau + 1.0 + gamma
        a = 2.0 * s / d0 if tau > 0 else 0.0
        b = 2.0 * (s + cnt * vmax) / (d0 + cnt)
        return max(a, b) + gamma / (mu + tau + 1.0 + gamma)
    num = s + gamma
    den = mu - s + tau + gamma
    a = num / den if den > 0.0 else 0.0
    b = (num + cnt * vmax) / (den + cnt * (1.0 - vmax))
    return max(a, b)


@jit(inline="always")
def scan_start(forced, objective):
    """Return the scan state after the forced pixels ``forced = (count, sum, smallest)``."""
    nf, sf, mf = forced
    metric, mu, gamma = objective
    n0 = np.int64(nf)
    s0 = np.float64(sf)
    best = rma_objective(metric, s0, n0, mu, gamma)
    return (s0, n0, best, n0, np.float64(mf), np.int64(0), True)


@jit(inline="always")
def scan_bound(state, cnt, vmax, objective):
    """``(bound, prunable)``: the bound of ``F`` over a group and whether it cannot win.

    ``bound`` is :func:`bucket_bound` over the next ``cnt`` prefixes (values at most
    ``vmax``); ``prunable`` says that it stays below the best ``F`` so far by the
    relative :data:`PRUNE_MARGIN`.
    """
    s, tau, best = state[0], state[1], state[2]
    metric, mu, gamma = objective
    bound = bucket_bound(metric, s, tau, mu, gamma, cnt, vmax)
    return bound, bound < best - PRUNE_MARGIN * abs(best)


@jit(inline="always")
def scan_cross(state, cnt, csum, cmin, objective):
    """Cross a group of ``cnt`` values (sum ``csum``, smallest ``cmin``) in one step.

    Only the prefix that ends after the group is evaluated: attained, it is a valid
    lower bound of the best, and the best when ``F`` rises through the group.
    """
    s, tau, best, best_tau, best_t, best_kin, best_full = state
    metric, mu, gamma = objective
    tau += cnt
    s += csum
    f = rma_objective(metric, s, tau, mu, gamma)
    if f > best:
        return (s, tau, f, tau, np.float64(cmin), np.int64(0), True)
    return (s, tau, best, best_tau, best_t, best_kin, best_full)


@jit(inline="always")
def scan_values(state, vals, off, cnt, vtop, objective):
    """Scan a group's ``cnt`` values one prefix at a time, in descending order.

    The values are ``vals[off:off + cnt]`` (sorted descending), or, when ``off < 0``
    (a group of one value), ``cnt`` copies of ``vtop``.  ``k_in`` of a new best is the
    length of the run of values equal to its cut value so far (kept as the scan goes:
    recounting it at each improvement was quadratic in the size of a run of ties,
    issue 14).
    """
    s, tau, best, best_tau, best_t, best_kin, best_full = state
    metric, mu, gamma = objective
    single = off < 0
    run = np.int64(0)
    prev = np.float64(vtop)
    for q in range(cnt):
        v = prev if single else np.float64(vals[off + q])
        run = run + 1 if q > 0 and prev == v else np.int64(1)
        prev = v
        s += v
        tau += 1
        f = rma_objective(metric, s, tau, mu, gamma)
        if f > best:
            best = f
            best_tau = tau
            best_t = v
            best_kin = run
            best_full = q == cnt - 1 or (not single and vals[off + q + 1] != v)
    return (s, tau, best, best_tau, best_t, best_kin, best_full)
