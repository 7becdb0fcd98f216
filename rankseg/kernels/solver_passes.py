"""Rank search for the solvers whose objective is not RMA: exact, BA, TRNA, BA+TRNA.

Per row: a safe value bound ``θ`` such that the optimum never needs a pixel with
``p <= θ``; one vectorized pass counts the candidates ``p > θ``, a second gathers
them; each row's candidates are sorted (descending) and the solver's objective is
evaluated over ``τ ∈ [0, τ_hi]``; the first maximizer gives the same cut
``(t, jcut)`` as the RMA path, so the same mask and label writers apply.

The bounds (derivations in docs/solvers.rst):

* Dice (exact, BA, TRNA): ``θ = S_X/(|X| + γ + d)`` for any pixel set X.  A mediant
  argument shows the candidates ``M = {p > θ}`` satisfy ``S_M >= (|M|+γ+d) p_(|M|+1)``,
  so the JMLR search bound ``d0 <= |M|``.  Exact Dice never exceeds ``d0``; BA and
  TRNA search ``[0, d0]`` by definition (as upstream).
* IoU (exact): moving the next pixel ``p`` into the mask changes
  ``π = E[(S+γ)/(τ+γ+U)]`` by ``E[(pA − (1−p)(S+γ))/(A(A+1))]`` with
  ``A = τ+γ+U' <= d−1+γ``; it cannot increase once ``p/(1−p) <= (S_τ+γ)/(d−1+γ)``.
  With ``r = (S_X+γ)/(d−1+γ)`` for a set X whose pixels all exceed ``θ = r/(1+r)``,
  no pixel ``p <= θ`` is worth adding after the candidates.
"""

from __future__ import annotations

import numpy as np

from rankseg._compile.jit import jit
from rankseg._policies import BA, BA_TRNA, DICE, EXACT, TRNA
from rankseg.kernels._dtype import as_f64
from rankseg.kernels._tasks import work_item
from rankseg.kernels.ba_trna import (
    ba_band,
    ba_dice_best,
    ba_dice_objective,
    ba_trna_use_ba,
    d0_bound,
)
from rankseg.kernels.exact import (
    DEFAULT_NPOW,
    QUAD_DICE,
    QUAD_IOU,
    SUM_D,
    SUM_HEAD,
    SUM_MU,
    SUM_VAR,
    exact_reciprocal_moments,
    quadrature_objective,
    row_summary,
)
from rankseg.kernels.rma import rma_objective
from rankseg.kernels.rma_passes import (
    STAT_MAX,
    STAT_MU,
    STAT_NHALF,
    STAT_SHALF,
)
from rankseg.kernels.sort import sort_candidates, sort_descending
from rankseg.kernels.summary import BLOCK, block_cumulants, block_summaries
from rankseg.kernels.trna import trna_low, trna_scan

__all__ = [
    "BA",
    "BA_TRNA",
    "EXACT",
    "TRNA",
    "candidate_bound",
]

_SHRINK = 1.0 - 1e-12


@jit
def candidate_bound(metric, mu, gamma, d, pmax, n_half, s_half):
    """Value bound ``θ``: the solver's optimum never needs a pixel with ``p <= θ``.

    Parameters
    ----------
    metric : int
        ``DICE`` or ``IOU``.
    mu : float
        Sum of the row (unused by the bound itself; kept for symmetry with RMA).
    gamma : float
        Smoothing.
    d : int
        Pixels in the row.
    pmax : float
        Largest probability (> 0).
    n_half, s_half : int, float
        Count and sum of ``p >= 1/2``.

    Returns
    -------
    float
        ``θ``; ``-1.0`` means every pixel is a candidate.
    """
    if metric == DICE:
        theta = pmax / (1.0 + gamma + d)
        if n_half > 0:
            theta = max(theta, s_half / (n_half + gamma + d))
        return theta * _SHRINK
    den = d - 1.0 + gamma
    if den <= 0.0:
        return -1.0
    theta = -1.0
    r = (pmax + gamma) / den
    t1 = r / (1.0 + r)
    if pmax > t1:  # X = {argmax} lies above its own bound
        theta = t1
    if n_half > 0:
        r = (s_half + gamma) / den
        t2 = r / (1.0 + r)
        if t2 < 0.5:  # X = {p >= 1/2} lies above it
            theta = max(theta, t2)
    return theta * _SHRINK if theta > 0.0 else -1.0


@jit
def search_end(solver, q, d, gamma):
    """Last τ to search: all candidates (exact), or ``d0`` (BA, TRNA), which is ``<= m``."""
    m = q.shape[0]
    if solver == EXACT:
        return m
    tau_hi = d0_bound(q, d, gamma)
    if tau_hi < 0 or tau_hi > m:  # the candidate bound proves d0 <= m
        tau_hi = m
    return tau_hi


_LOG_DELTA = 37.0  # tail probability exp(-37) ~ 1e-16 in the Chernoff bound


@jit
def inv_bound(c, mean, var_proxy):
    """Upper bound of ``E[1/(c + X)]`` for a sum X of independent Bernoullis.

    ``X`` has mean ``mean`` and ``sum p <= var_proxy``.  The lower tail
    ``P(X <= mean - t) <= exp(-t**2 / (2 var_proxy))`` gives
    ``E[1/(c+X)] <= 1/(c + mean - t) + exp(-37)/c`` with ``t = sqrt(74 var_proxy)``.
    """
    t = np.sqrt(2.0 * _LOG_DELTA * var_proxy)
    if mean - t <= 0.0:
        return 1.0 / c
    return min(1.0 / c, 1.0 / (c + mean - t) + np.exp(-_LOG_DELTA) / c)


@jit
def exact_upper(metric, s, tau, mu, var, gamma):
    """Upper bound of the exact objective at ``τ >= 1`` from ``S_τ`` and row moments.

    The smaller of a second-order Taylor bound (tight for large τ; see
    :func:`rankseg.kernels.exact.exact_reciprocal_moments`) and a Chernoff bound
    (tight while τ is small against μ).
    """
    if metric == DICE:
        taylor = (
            2.0 * s / (tau + gamma + mu)
            + 2.0 * s * var / (tau + 1.0 + gamma) ** 3
            + gamma / (tau + gamma + mu)
            + (gamma * var / (tau + gamma) ** 3 if gamma > 0.0 else 0.0)
        )
        # Gamma_{-j} has mean >= mu - 1; Gamma has mean mu
        cher = 2.0 * s * inv_bound(tau + 1.0 + gamma, mu - 1.0, mu)
        if gamma > 0.0:
            cher += gamma * inv_bound(tau + gamma, mu, mu)
        return min(taylor, cher, 1.0)
    tail = max(mu - s, 0.0)  # mean of U_tau
    f = (s + gamma) / (tail + tau + gamma)
    taylor = f + (s + gamma) * var / (tau + gamma) ** 3
    cher = (s + gamma) * inv_bound(tau + gamma, tail, tail)
    return min(taylor, cher, 1.0)


#: τ per block of the certified-range scan: a block whose bound, taken at its largest
#: ``S_τ`` and smallest τ, falls short of the threshold is skipped whole
CERT_BLOCK = 256
#: relative slack on a block's bound, far above the rounding of the few operations in it
_CERT_SLACK = 1e-12


@jit
def _block_upper(metric, s_lo, s_hi, k, mu, var, gamma):
    """Upper bound of :func:`exact_upper` over ``S_τ ∈ [s_lo, s_hi]`` and ``τ >= k``.

    Dice's bound grows with ``S_τ`` and falls with τ (each term does), so its value at
    ``(s_hi, k)`` bounds the block.  IoU's Taylor term does too, but its Chernoff term
    depends on the tail mean ``T = μ − S_τ`` through ``T − sqrt(74 T)``, which is
    smallest at ``T = 18.5``: the bound takes that minimum over the block's range of T.
    """
    if metric == DICE:
        return exact_upper(metric, s_hi, k, mu, var, gamma)
    t_lo = max(mu - s_hi, 0.0)
    t_hi = max(mu - s_lo, 0.0)
    taylor = (s_hi + gamma) / (t_lo + k + gamma) + (s_hi + gamma) * var / (k + gamma) ** 3
    t_min = min(max(0.5 * _LOG_DELTA, t_lo), t_hi)  # argmin of T - sqrt(2 * 37 * T)
    cher = (s_hi + gamma) * inv_bound(k + gamma, t_min, t_min)
    return min(taylor, cher, 1.0)


@jit
def _certified_range(metric, q, summary, gamma, tau_hi):
    """Smallest τ-range ``[a, b] ⊆ [1, τ_hi]`` outside which no τ can be optimal.

    RMA's ``F`` is a lower bound of the exact objective (Jensen), so its maximum
    over the prefix is a lower bound of the optimum; every τ whose upper bound
    (:func:`exact_upper`) falls below it is skipped.

    One pass sums ``S_τ`` in order (one chain of additions, which ``F``'s divisions
    overlap), takes ``max F`` and keeps ``S_τ`` at every :data:`CERT_BLOCK`-th τ.
    The bound is then taken block by block: a block whose bound at its largest
    ``S_τ`` and smallest τ (:func:`_block_upper`, plus :data:`_CERT_SLACK`) falls
    short of the threshold is skipped whole.  The result is that of the plain scan
    over every τ (``tests/test_exact_search.py``), with ``O(b - a)`` bounds instead
    of ``O(τ_hi)``.
    """
    mu = summary[SUM_MU]
    var = summary[SUM_VAR]
    nblk = (tau_hi + CERT_BLOCK - 1) // CERT_BLOCK
    ends = np.empty(nblk + 1)  # ends[j]: S_τ at τ = j * CERT_BLOCK (block j starts after it)
    ends[0] = 0.0
    best = 0.0
    s = 0.0
    for k in range(1, tau_hi + 1):
        # F's divisions overlap the chain of additions: F at every τ costs little more
        s += q[k - 1]
        best = max(best, rma_objective(metric, s, k, mu, gamma))
        if k % CERT_BLOCK == 0 or k == tau_hi:
            ends[(k + CERT_BLOCK - 1) // CERT_BLOCK] = s
    thr = best * (1.0 - 1e-9)
    lo = tau_hi + 1
    hi = 0
    for j in range(nblk):
        k1 = j * CERT_BLOCK + 1
        k2 = min(k1 + CERT_BLOCK - 1, tau_hi)
        bound = _block_upper(metric, ends[j], ends[j + 1], k1, mu, var, gamma)
        if bound * (1.0 + _CERT_SLACK) < thr:
            continue
        s = ends[j]
        for k in range(k1, k2 + 1):
            s += q[k - 1]
            if exact_upper(metric, s, k, mu, var, gamma) >= thr:
                lo = min(lo, k)
                hi = k
    return lo, hi


@jit(inline="always")
def _uses_ba(solver, summary):
    """Whether the row is solved by BA: the ``ba`` solver, or ``ba+trna``'s rule says so."""
    return solver == BA or (solver == BA_TRNA and ba_trna_use_ba(summary))


@jit
def _solve_rna(solver, q, summary, params, tau_hi):
    """First maximizer of the BA/TRNA objective over ``τ ∈ [0, τ_hi]``: ``(τ*, π(τ*))``.

    Both scan τ in blocks and skip those their bounds rule out (:func:`ba_dice_best`,
    :func:`rankseg.kernels.trna.trna_dice_best`: TRNA still adds every pixel's pmf
    up to τ_hi).
    """
    gamma, eps = params
    if _uses_ba(solver, summary):
        d = np.int64(summary[SUM_D])
        return ba_dice_best(q, summary, gamma, eps, d, tau_hi, np.int64(0), 0.0)
    # trna_scan itself, not its wrapper trna_dice_best: one function less to compile
    w, best, val = trna_scan(q, summary, gamma, eps, np.int64(0), tau_hi, np.empty(0), False)
    return best, val


@jit
def _solve_exact(metric, q, summary, gamma, tau_hi):
    """First maximizer of the exact objective over ``τ ∈ [0, τ_hi]``.

    Returns ``(τ*, π(τ*), p_need)``; ``p_need > 0`` asks for a longer prefix.
    """
    # the quadrature kernel itself, with the metric as a run-time mode: the first
    # call compiles it once, not once per metric through exact_dice/iou_objective
    mode = np.int64(QUAD_DICE if metric == DICE else QUAD_IOU)
    # π(0) on its own, then only the certified range
    lo0 = np.int64(0)
    zero = np.empty(1)
    p_need = quadrature_objective(q, summary, gamma, lo0, lo0, mode, zero)
    a, b = _certified_range(metric, q, summary, gamma, tau_hi)
    best = 0
    val = zero[0]
    if a <= b:
        out = np.empty(b - a + 1)
        p_need = max(p_need, quadrature_objective(q, summary, gamma, a, b, mode, out))
        for k in range(b - a + 1):
            if out[k] > val:
                val = out[k]
                best = a + k
    return best, val, p_need


@jit
def solve_row(solver, metric, q, summary, params, tau_hi):
    """First maximizer over ``τ ∈ [0, τ_hi]`` given the sorted prefix ``q``, any solver.

    Returns ``(τ*, π(τ*), p_need)``; ``p_need > 0`` asks for a longer prefix.  (It
    compiles every solver's objective; the CPU path's row kernels call
    :func:`_solve_exact`, :func:`rankseg.kernels.ba_trna.ba_dice_best` or
    :func:`rankseg.kernels.trna.trna_scan` directly, so a first call compiles only
    the ones it uses.)
    """
    if solver == EXACT:
        return _solve_exact(metric, q, summary, params[0], tau_hi)
    best, val = _solve_rna(solver, q, summary, params, tau_hi)
    return best, val, 0.0


@jit
def candidate_bounds(stats, rows, metric, gamma, d):
    """:func:`candidate_bound` of each requested row."""
    lo = np.empty(rows.shape[0])
    for i in range(rows.shape[0]):
        r = rows[i]
        lo[i] = candidate_bound(
            metric,
            stats[r, STAT_MU],
            gamma,
            d,
            stats[r, STAT_MAX],
            np.int64(stats[r, STAT_NHALF]),
            stats[r, STAT_SHALF],
        )
    return lo


@jit(inline="always")
def _store_cut(i, q, best, val, d, out):
    """Write row ``i``'s cut after the ``best`` largest of the sorted ``q`` into ``out``."""
    tau, t, jcut, score, ktie = out
    tau[i] = best
    score[i] = val
    if best > 0:
        t[i], k_in, full = cut_of(q, best)
        if full:
            jcut[i] = d
        else:
            jcut[i] = -2  # a tie straddles the cut
            ktie[i] = k_in


@jit
def exact_rows_tasks(i0, i1, x, rows, problem, band, start, summaries, out):
    """Rows ``i0 <= i < i1`` of :func:`rankseg.cpu.launchers.solver_cuts` under the exact solver.

    ``summaries`` holds each row's summary when the launcher formed them (an array
    of no rows otherwise: then each row's is formed here).
    """
    metric, gamma, lo = problem
    d = x.shape[1]
    nch = (start.shape[0] - 1) // rows.shape[0]
    for i in range(i0, i1):
        r = rows[i]
        if summaries.shape[0]:
            summary = summaries[i]
        else:
            summary = np.zeros(SUM_HEAD + DEFAULT_NPOW)
            row_summary(x[r], summary)
        q = band[start[i * nch] : start[(i + 1) * nch]]
        sort_candidates(q, x[r])
        tau_hi = q.shape[0]  # exact: every candidate (the bound proves d0 <= it)
        best, val, p_need = _solve_exact(metric, q, summary, gamma, tau_hi)
        theta = lo[i]
        tries = 0
        while p_need > 0.0 and tries < 5:  # the whole row (4th try) never needs more
            tries += 1
            theta = next_theta(theta, p_need, tries)
            q = prefix_above(x[r], theta)
            best, val, p_need = _solve_exact(metric, q, summary, gamma, tau_hi)
        _store_cut(i, q, best, val, d, out)


@jit
def cumulant_tasks(i0, i1, x, rows, chunk, part):
    """Work items ``i0 <= task < i1``: the blocks' cumulant sums of row ``rows[i]``.

    ``part[i, b]`` receives those of block ``b``
    (:func:`rankseg.kernels.summary.block_cumulants`); added in block order they are
    the row's ``mu``, ``var`` and ``m3``, whatever the threads.
    """
    d = x.shape[1]
    nch = (d + chunk - 1) // chunk
    for task in range(i0, i1):
        i, j0, j1 = work_item(task, nch, chunk, d)
        block_cumulants(x[rows[i], j0:j1], part[i, j0 // BLOCK : (j1 + BLOCK - 1) // BLOCK])


@jit
def summary_tasks(i0, i1, x, rows, chunk, part):
    """Work items ``i0 <= task < i1``: as :func:`cumulant_tasks`, with the power sums.

    ``part[i, b]`` receives block ``b``'s cumulant and power sums
    (:func:`rankseg.kernels.summary.block_summaries`).
    """
    d = x.shape[1]
    nch = (d + chunk - 1) // chunk
    for task in range(i0, i1):
        i, j0, j1 = work_item(task, nch, chunk, d)
        block_summaries(x[rows[i], j0:j1], part[i, j0 // BLOCK : (j1 + BLOCK - 1) // BLOCK])


@jit
def rna_bands(summaries, stats, rows, params, lo, exact_sum):
    """Per row, the band ``lo' < p < hi`` of the pixels BA or TRNA needs sorted.

    Parameters
    ----------
    summaries : ndarray of float64, shape (len(rows), SUM_HEAD)
        Whole-row summaries (:func:`cumulant_tasks`).
    stats : ndarray, shape (R, 4)
        Row statistics with maxima.
    rows : ndarray of int64
        The rows.
    params : tuple of (solver, gamma, eps)
        ``BA``, ``TRNA`` or ``BA_TRNA``, smoothing, window tail mass.
    lo : ndarray of float64
        The candidate bounds ``θ`` (:func:`candidate_bounds`).
    exact_sum : tuple of (int, int)
        The input dtype's explicit mantissa bits and the exponent of its smallest
        subnormal (float32: ``(23, -149)``).

    Returns
    -------
    lo, hi : ndarrays of float64
        For a row that BA solves: ``max(θ, L)`` and ``H`` of
        :func:`rankseg.kernels.ba_trna.ba_band`, or ``inf`` for ``H`` where the forced
        sum is not exact in float64 in any order (every candidate above ``L`` sorted);
        for a row that TRNA solves: ``max(θ, L)`` with ``L`` of
        :func:`rankseg.kernels.trna.trna_low` (``θ`` where it does not apply) and
        ``inf``.
    ba : ndarray of bool
        Whether BA solves the row (``ba``, or the rule of ``ba+trna``).

    Notes
    -----
    BA's search then starts after the pixels ``p >= H`` with their sum
    (:func:`rankseg.kernels.ba_trna.ba_dice_best`) and ends at the band's last.
    That sum comes in chunk order, not in rank order; the two agree when every
    partial sum of the forced values is exact (the band's values are then added to
    it in rank order by both).  They are at least ``hi >= 2**e`` (``e = -1``: ``hi``
    is at least 1/2), so each is a multiple of ``u = 2**max(e - mbits, emin)``, and
    every partial sum (at most ``d``) is a multiple of ``u`` below ``2**53 u`` when
    ``d < 2**53 u``: then it is exact, whatever the order (float32 maps: rows of
    fewer than 2**29 pixels; float16: 2**42; never float64).  Otherwise the row
    sorts all its candidates above ``L``, which the result does not depend on.
    """
    solver, gamma, eps = params
    mbits, emin = exact_sum
    lo2 = lo.copy()
    hi = np.full(rows.shape[0], np.inf)
    ba = np.zeros(rows.shape[0], dtype=np.bool_)
    for i in range(rows.shape[0]):
        summary = summaries[i]
        r = rows[i]
        n_half = np.int64(stats[r, STAT_NHALF])
        ba[i] = _uses_ba(solver, summary)
        if not ba[i]:
            # TRNA: only the end of the search (no forced set: each pixel's pmf counts)
            low = trna_low(summary, gamma, eps, stats[r, STAT_MAX], n_half, stats[r, STAT_SHALF])
            lo2[i] = max(lo[i], low)
            continue
        low, high = ba_band(summary, gamma, eps, stats[r, STAT_MAX], n_half, stats[r, STAT_SHALF])
        lo2[i] = max(lo[i], low)
        e = np.floor(np.log2(high))  # the forced values are at least high >= 1/2
        if summary[SUM_D] < 2.0 ** (53.0 + max(e - mbits, emin)):
            hi[i] = high
    return lo2, hi, ba


@jit(inline="always")
def _store_rna_cut(i, q, best, val, n0, d, m0, out):
    """:func:`_store_cut` after ``n0`` forced pixels whose smallest value is ``m0``."""
    if best == n0 and n0 > 0:  # the cut after the forced set: no tie straddles it
        out[0][i] = best
        out[1][i] = m0
        out[2][i] = d
        out[3][i] = val
    else:
        _store_cut(i, q, best - n0, val, d, out)
        out[0][i] = best


@jit(inline="always")
def _sorted_band(i, x, rows, band, start):
    """Row ``i``'s candidates in ``band`` (its work items' share, from ``start``), sorted."""
    nch = (start.shape[0] - 1) // rows.shape[0]
    q = band[start[i * nch] : start[(i + 1) * nch]]
    sort_candidates(q, x[rows[i]])
    return q


@jit
def ba_rows_tasks(k0, k1, sel, x, rows, problem, band, forced, summaries, out):
    """Rows ``sel[k]``, ``k0 <= k < k1``, of ``cpu.launchers.solver_cuts`` under BA.

    ``band`` holds each row's candidates below its forced bound (all of them when it
    is ``inf``), ``forced`` is ``(start, nforce, sforce, mforce)``: the offsets of
    the work items in ``band``, and per row the count, sum and smallest value of the
    pixels at or above the bound (:func:`rna_bands`).  :func:`trna_rows_tasks` does
    the same under TRNA; ``ba+trna`` hands each its rows, so that a first call
    compiles the objectives its rows use and the solvers share their kernels.
    """
    _, gamma, eps = problem
    start, nforce, sforce, mforce = forced
    d = x.shape[1]
    for k in range(k0, k1):
        i = sel[k]
        q = _sorted_band(i, x, rows, band, start)
        n0 = nforce[i]
        # BA finds d0 in the loop that sums S_tau for its scan; BA and TRNA read d,
        # mu, var, m3 of the summary: no power sums
        best, val = ba_dice_best(q, summaries[i], gamma, eps, d, n0 + q.shape[0], n0, sforce[i])
        _store_rna_cut(i, q, best, val, n0, d, mforce[i], out)


@jit
def trna_rows_tasks(k0, k1, sel, x, rows, problem, band, forced, summaries, out):
    """:func:`ba_rows_tasks` under TRNA (its rows have no forced set)."""
    solver, gamma, eps = problem
    d = x.shape[1]
    for k in range(k0, k1):
        i = sel[k]
        q = _sorted_band(i, x, rows, band, forced[0])
        tau_hi = search_end(solver, q, d, gamma)
        n0 = np.int64(0)
        w, best, val = trna_scan(q, summaries[i], gamma, eps, n0, tau_hi, np.empty(0), False)
        _store_cut(i, q, best, val, d, out)


@jit
def next_theta(theta, p_need, tries):
    """Value bound of the ``tries``-th longer prefix asked for by the exact kernel.

    The kernel needs more of the order below the candidates: halve the bound (below
    ``p_need``) three times, then take the whole row (``-1``), which never needs more.
    """
    return 0.5 * min(theta, p_need) if tries < 4 else -1.0


@jit
def cut_of(q, best):
    """``(t, k_in, full)`` of the cut after the ``best`` largest of the sorted ``q``.

    ``t = q[best - 1]``; ``k_in`` counts the selected values equal to ``t``; ``full``
    is False when a value equal to ``t`` is left out (a tie straddles the cut).
    """
    tv = q[best - 1]
    k_in = 1
    while best - 1 - k_in >= 0 and q[best - 1 - k_in] == tv:
        k_in += 1
    full = not (best < q.shape[0] and q[best] == tv)
    return tv, k_in, full


@jit
def prefix_above(row, theta):
    """Values of ``row`` above ``theta``, sorted in descending order."""
    n = 0
    for j in range(row.shape[0]):
        n += as_f64(row[j]) > theta
    vals = np.empty(n)
    n = 0
    for j in range(row.shape[0]):
        v = as_f64(row[j])
        if v > theta:
            vals[n] = v
            n += 1
    sort_candidates(vals, row)
    return vals


@jit
def empty_exact_tasks(i0, i1, x, rows, gamma, out):
    """Rows ``i0 <= i < i1`` of ``cpu.launchers.empty_scores`` under the exact solver."""
    for i in range(i0, i1):
        row = x[rows[i]]
        summary = np.zeros(SUM_HEAD + DEFAULT_NPOW)
        row_summary(row, summary)
        val = np.empty(1)
        theta = 0.5
        for _ in range(4):
            q = prefix_above(row, theta)
            if q.shape[0] == 0:
                theta *= 0.5
                continue
            p_need = exact_reciprocal_moments(q, summary, gamma, 1, val)
            if p_need == 0.0:
                break
            theta = 0.5 * p_need
        else:
            q = prefix_above(row, -1.0)
            exact_reciprocal_moments(q, summary, gamma, 1, val)
        out[i] = gamma * val[0]


@jit
def empty_rna_tasks(i0, i1, x, rows, gamma, eps, out):
    """Rows ``i0 <= i < i1`` of ``cpu.launchers.empty_scores`` under BA, TRNA or BA+TRNA."""
    for i in range(i0, i1):
        summary = np.zeros(SUM_HEAD)  # d, mu, var, m3 only (see ba_rows_tasks)
        row_summary(x[rows[i]], summary)
        val = np.empty(1)
        ba_dice_objective(np.empty(0), summary, gamma, eps, np.int64(0), np.int64(0), val)
        out[i] = val[0]


@jit
def packed_tasks(i0, i1, cand, first, summaries, params, out):
    """Rows ``i0 <= i < i1`` of :func:`rankseg.cpu.launchers.solve_packed`."""
    solver, metric, gamma, eps = params
    tau, t, score, k_in, full, need = out
    for i in range(i0, i1):
        q = cand[first[i] : first[i + 1]]
        summary = summaries[i]
        sort_descending(q)
        tau_hi = search_end(solver, q, np.int64(summary[SUM_D]), gamma)
        best, val, p_need = solve_row(solver, metric, q, summary, (gamma, eps), tau_hi)
        if p_need > 0.0:
            need[i] = True
            continue
        tau[i] = best
        score[i] = val
        if best > 0:
            t[i], k_in[i], full[i] = cut_of(q, best)
