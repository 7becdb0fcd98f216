"""BA and TRNA objectives for expected Dice, and the d0 search bound (SPEC.md sections 2-3).

Both approximate the exact Dice objective
``pi(tau) = 2 sum_{j <= tau} p_(j) E[1 / (tau + 1 + gamma + Gamma_{-(j)})]
+ gamma E[1 / (tau + gamma + Gamma)]`` with refined-normal (RNA) pmfs restricted to
the eps-window ``[lq, uq]`` of ``Gamma`` (:mod:`rankseg.kernels.refined_normal`):

* **BA** (blind approximation) replaces every ``Gamma_{-(j)}`` by ``Gamma``:
  ``pi(tau) = 2 S_tau A(tau + 1 + gamma) + gamma A(tau + gamma)`` with
  ``A(a) = sum_k pmf(k) / (a + k)``.  Cost ``O(w)`` once plus ``O(min(w, 16))`` per
  ``tau``: for large ``a`` the sum is a fast-converging series in the window's central
  moments.
* **TRNA** (truncated RNA) gives each ``Gamma_{-(j)}`` its own RNA with the moments of
  ``Gamma`` minus those of pixel ``j``, evaluated on ``Gamma``'s window and renormalized
  there, accumulated in ``W_tau(k) = sum_{j <= tau} p_(j) pmf_{-(j)}(k)`` as upstream.
  Cost ``O(w)`` per pixel of rank ``<= tau_hi`` (the pmfs of equal consecutive
  probabilities are shared).

With ``gamma = 0``, ``pi(0) = 0`` (the 0/0 := 0 convention); otherwise
``pi(0) = gamma A(gamma)``.

Inputs: ``q``, a prefix of the row's probabilities in descending rank order of length
``>= tau_hi`` whose first ``tau_lo`` entries may be in any order (they must be the
``tau_lo`` largest), and the whole-row summary of
:func:`rankseg.kernels.exact.row_summary` (only ``d, mu, var, m3`` are read, so
``K = 0`` power sums suffice).

BA and the ``ba+trna`` rule are here; the TRNA objective is in
:mod:`rankseg.kernels.trna` and what both share (the window, its pmf and
``A(a)``) in :mod:`rankseg.kernels.rna_moments`, both re-exported here.
"""

from __future__ import annotations

import numpy as np

from rankseg._compile.jit import jit
from rankseg.kernels.refined_normal import rna_params
from rankseg.kernels.rna_moments import (
    NMOM,
    central_moments,
    gamma_pmf,
    inv_mean,
    mediant_low,
    rna_window_of_summary,
)
from rankseg.kernels.summary import SUM_M3, SUM_MU, SUM_VAR
from rankseg.kernels.trna import trna_dice_objective

__all__ = [
    "ba_dice_best",
    "ba_band",
    "ba_dice_objective",
    "ba_trna_use_ba",
    "d0_bound",
    "rna_window_of_summary",
    "trna_dice_objective",
]

#: ``ba+trna`` uses BA when sigma exceeds this (SPEC.md section 3).
BA_SIGMA = 5.0


@jit
def d0_bound(q, d, gamma):
    """Search bound d0 of the exact Dice optimum (JMLR, Lemma 3).

    Parameters
    ----------
    q : ndarray of float, shape (M,)
        Prefix of the row's probabilities sorted in descending order (all of it
        sorted, from rank 1).
    d : int
        Number of pixels of the row (``M <= d``).
    gamma : float
        Smoothing ``gamma >= 0``.

    Returns
    -------
    int
        The first ``tau >= 1`` with ``S_tau >= (tau + gamma + d) p_(tau+1)``, or ``d``
        when none exists (``p_(d+1) := 0``).  ``-1`` when the prefix is too short to
        decide: no ``tau <= M - 1`` qualifies and ``M < d``; grow the prefix and call
        again.

    Notes
    -----
    The condition is monotone in ``tau`` (once it holds, ``S/(tau + gamma + d)``
    stays above the next probability), so a caller may also bisect on it.  A zero
    ``p_(tau+1)`` satisfies it whatever ``gamma`` (no ``inf * 0``).
    """
    m_len = q.shape[0]
    s = 0.0
    for tau in range(1, d):
        if tau >= m_len:
            return -1
        s += float(q[tau - 1])
        qn = float(q[tau])
        if qn == 0.0 or s >= (tau + gamma + d) * qn:
            return tau
    return d


@jit
def ba_trna_use_ba(summary):
    """Rule of the ``ba+trna`` solver: BA when ``sigma > 5``, else TRNA.

    Parameters
    ----------
    summary : ndarray of float64
        Whole-row summary (:func:`rankseg.kernels.exact.row_summary`).

    Returns
    -------
    bool
        ``True`` for BA.
    """
    sigma, _ = rna_params(summary[SUM_MU], summary[SUM_VAR], summary[SUM_M3])
    return sigma > BA_SIGMA


@jit
def ba_dice_objective(q, summary, gamma, eps, tau_lo, tau_hi, out):
    """BA objective of expected Dice for ``tau`` in ``[tau_lo, tau_hi]``.

    Parameters
    ----------
    q : ndarray of float, shape (M,)
        Descending prefix, ``M >= tau_hi``; ``q[:tau_lo]`` may be in any order
        (only its sum is used).
    summary : ndarray of float64
        Whole-row summary (``d, mu, var, m3``).
    gamma : float
        Smoothing ``gamma >= 0``.
    eps : float
        Window tail mass in (0, 1).
    tau_lo, tau_hi : int
        Inclusive band, ``0 <= tau_lo <= tau_hi <= d``.
    out : ndarray of float64, shape (>= tau_hi - tau_lo + 1,)
        Receives ``pi(tau_lo + i)`` in ``out[i]``.

    Returns
    -------
    int
        Width ``w = uq - lq + 1`` of the window used.
    """
    lq, uq, pmf = gamma_pmf(summary, eps)
    mom = np.zeros(NMOM, dtype=np.float64)
    c = central_moments(pmf, lq, uq, mom)
    # S_{tau_lo - 1} as the sum of all but one top-block entry (their order is free);
    # the loop adds q[tau - 1]
    s = 0.0
    for j in range(tau_lo - 1):
        s += float(q[j])
    a_next = 0.0
    a_cur = 0.0
    for tau in range(tau_lo, tau_hi + 1):
        if tau == 0:
            out[0] = gamma * inv_mean(gamma, pmf, lq, uq, c, mom) if gamma > 0.0 else 0.0
            continue
        s += float(q[tau - 1])
        if gamma > 0.0:
            if tau == tau_lo or tau == 1:
                a_cur = inv_mean(tau + gamma, pmf, lq, uq, c, mom)
            else:
                a_cur = a_next
        a_next = inv_mean(tau + 1.0 + gamma, pmf, lq, uq, c, mom)
        out[tau - tau_lo] = 2.0 * s * a_next + gamma * a_cur
    return uq - lq + 1


#: τ per block of :func:`ba_dice_best`'s scan
BA_BLOCK = 256
#: relative slack on a block's bound: above the rounding of A(a), summed directly over
#: the window (at most ``w`` ulps) or as its series
_BA_SLACK = 1e-9


#: relative margin of :func:`ba_band` above its bound ``H`` (``L``'s is
#: ``rna_moments.LOW_MARGIN``): the steps it proves positive stay far above the
#: rounding of the computed objective
_BAND_MARGIN = 1e-3


@jit
def ba_band(summary, gamma, eps, pmax, n_half, s_half):
    """Bounds ``(L, H)`` of the pixels whose order BA's search needs.

    Parameters
    ----------
    summary : ndarray of float64
        Whole-row summary (``d, mu, var, m3``).
    gamma : float
        Smoothing ``gamma >= 0``.
    eps : float
        Window tail mass in (0, 1).
    pmax : float
        The row's largest probability (> 0).
    n_half, s_half : int, float
        Count and sum of the pixels ``p >= 1/2``.

    Returns
    -------
    L : float
        Every pixel ``p <= L`` lies beyond the first maximizer: from ``n`` = the
        count of ``p > L`` on, the objective falls at every step, so the first
        maximizer over ``[0, d0]`` is at most ``n``.
    H : float
        ``H >= 1/2``: whenever ``p_(tau+1) >= H``, ``pi(tau + 1) > pi(tau)``, and the
        d0 test ``S_tau >= (tau + gamma + d) p_(tau+1)`` fails.  So with ``n`` pixels
        at or above ``H``, the first maximizer over ``[0, d0]`` is at least ``n`` and
        ``d0 >= n``: a search may start at ``tau = n`` with ``S_n`` (their sum).

    Notes
    -----
    ``pi(tau + 1) - pi(tau) = 2 A(tau + 2 + gamma) (p - h(tau))`` with
    ``h(tau) = [S_tau D(tau + 1 + gamma) + (gamma / 2) D(tau + gamma)] / A(tau + 2 + gamma)``
    and ``D(a) = A(a) - A(a + 1) = sum_k pmf(k) / ((a + k)(a + 1 + k))``, ``p`` the pixel
    of rank ``tau + 1``.  The pmf lives on ``[lq, uq]``, so
    ``A(a + 1) / (a + uq) <= D(a) <= A(a + 1) / (a + lq)`` and
    ``A(a) / A(a + 1) <= (a + 1 + lq) / (a + lq)``.

    *H*: with ``S_tau <= min(tau pmax, mu)``,
    ``h(tau) <= mu pmax / (mu + pmax (1 + gamma + lq)) + (gamma / 2)(2 + g) / (g (1 + g))``,
    ``g = gamma + lq`` (each term at its largest over ``tau``).  ``H`` is that bound,
    at least 1/2 (which makes the d0 test fail: ``S_tau <= tau < (tau + d) / 2``),
    times ``1 + 1e-3``.

    *L*: ``h(tau) >= R(tau) = S_tau / (tau + c)``, ``c = 1 + gamma + uq``.  For a
    top set ``X`` of the row (the pixels ``p >= 1/2``, or the largest one),
    ``R(tau)`` at ``tau >= |X|`` is a weighted mean of ``L0 = S_X / (|X| + c)`` and the
    pixels of rank ``|X| + 1 .. tau``, so ``R(tau) >= min(L0, p_(tau)) >= p_(tau+1)``,
    and ``R(tau) - p_(tau+1) >= (|X| + c)(L0 - p_(tau+1)) / (d + c)`` (the mediant
    argument of the d0 bound, with ``c`` for ``gamma + d``).  ``L`` is the larger
    ``L0`` times ``1 - 1e-3`` (:func:`rankseg.kernels.rna_moments.mediant_low`).

    The margins make every step these bounds decide change the objective by at
    least about ``1e-3 (|X| + c) / (d + c)`` of a pixel's weight -- relative to
    the objective ``1e-3 (|X| + c) / ((d + c) S_tau)``, far above its rounding
    (``tests/test_ba_trna_kernels.py``).
    """
    mu = summary[SUM_MU]
    lq, uq = rna_window_of_summary(summary, eps)
    h = mu * pmax / (mu + pmax * (1.0 + gamma + lq)) if mu > 0.0 else 0.0
    if gamma > 0.0:
        g = gamma + lq
        h += 0.5 * gamma * (2.0 + g) / (g * (1.0 + g))
    low = mediant_low(pmax, n_half, s_half, 1.0 + gamma + uq)
    return low, max(h, 0.5) * (1.0 + _BAND_MARGIN)


@jit
def ba_dice_best(q, summary, gamma, eps, d, tau_max, n0, s0):
    """First maximizer of the BA objective over ``tau`` in ``[n0, min(d0, tau_max)]``.

    Parameters
    ----------
    q : ndarray of float, shape (M,)
        The row's candidates of rank ``n0 + 1`` to ``n0 + M``, in descending order
        (may be empty).
    summary : ndarray of float64
        Whole-row summary (``d, mu, var, m3``).
    gamma : float
        Smoothing ``gamma >= 0``.
    eps : float
        Window tail mass in (0, 1).
    d : int
        Pixels of the row, ``d >= n0 + M``.
    tau_max : int
        Last ``tau`` searched at most, ``n0 <= tau_max <= n0 + M``.
    n0 : int
        Pixels of rank ``<= n0`` left out of ``q`` (0: ``q`` starts at rank 1).  The
        caller guarantees that the first maximizer over ``[0, d0]`` is at least
        ``n0`` and ``d0 >= n0`` (:func:`ba_band`).
    s0 : float
        Their sum ``S_n0`` (0.0 when ``n0 = 0``), the value that adding them in rank
        order gives (an exact sum: see ``rankseg.kernels.solver_passes``).

    Returns
    -------
    best : int
        The first ``tau`` with the largest objective over ``[n0, tau_hi]``,
        ``tau_hi = min(d0, tau_max)`` with d0 from :func:`d0_bound` (or ``n0 + M``
        when the prefix cannot decide).  With ``n0 = 0`` and ``tau_max = M`` that is
        the range ``rankseg.kernels.solver_passes.search_end`` gives BA; a
        ``tau_max`` that already is that range leaves it unchanged.
    value : float
        ``pi(best)``, the value :func:`ba_dice_objective` gives it.

    Notes
    -----
    ``pi(tau) = 2 S_tau A(tau + 1 + gamma) + gamma A(tau + gamma)`` grows with
    ``S_tau`` and, ``A`` being decreasing, falls with ``tau``; so over a block of
    :data:`BA_BLOCK` consecutive ``tau`` it is at most its value at the block's largest
    ``S_tau`` and smallest ``tau``.  ``S_tau`` is summed once, in order, in the loop
    that finds ``d0`` (the same sums and tests as :func:`d0_bound`); the objective at
    every block's last ``tau`` gives a floor; a block whose bound (plus
    :data:`_BA_SLACK`) stays below the floor cannot hold the maximum and is skipped.
    The others are evaluated as :func:`ba_dice_objective` evaluates them (same
    operations, same values), so the result is that of the full scan
    (``tests/test_ba_trna_kernels.py``) at ``O(tau_hi / BA_BLOCK)`` evaluations of
    ``A`` plus those of the blocks near the maximum, instead of ``O(tau_hi)``.
    """
    m_len = n0 + q.shape[0]
    ends = np.empty((q.shape[0] + BA_BLOCK - 1) // BA_BLOCK + 1)  # S at n0 + j BA_BLOCK
    ends[0] = s0
    # d0 (as d0_bound and search_end): the first tau <= min(d, n0 + M) - 1 with
    # S_tau >= (tau + gamma + d) p_(tau + 1), else n0 + M; at most tau_max (the test
    # fails below n0: the caller's guarantee)
    tau_hi = tau_max
    s = s0
    found = False
    if 1 <= n0 < d and n0 < m_len:
        qn = float(q[0])
        if qn == 0.0 or s >= (n0 + gamma + d) * qn:
            tau_hi = n0
            found = True
    if not found:
        for tau in range(n0 + 1, tau_max + 1):
            s += float(q[tau - 1 - n0])
            if (tau - n0) % BA_BLOCK == 0:
                ends[(tau - n0) // BA_BLOCK] = s
            if tau < d and tau < m_len:
                qn = float(q[tau - n0])
                if qn == 0.0 or s >= (tau + gamma + d) * qn:
                    tau_hi = tau
                    break
    nblk = (tau_hi - n0 + BA_BLOCK - 1) // BA_BLOCK
    ends[nblk] = s  # the sum at tau_hi (a partial last block)
    lq, uq, pmf = gamma_pmf(summary, eps)
    mom = np.zeros(NMOM, dtype=np.float64)
    c = central_moments(pmf, lq, uq, mom)
    best = n0
    if n0 == 0:
        val = gamma * inv_mean(gamma, pmf, lq, uq, c, mom) if gamma > 0.0 else 0.0
    else:  # pi(n0) as the scan below evaluates it
        a_cur = inv_mean(n0 + gamma, pmf, lq, uq, c, mom) if gamma > 0.0 else 0.0
        val = 2.0 * s0 * inv_mean(n0 + 1.0 + gamma, pmf, lq, uq, c, mom) + gamma * a_cur
    floor = val
    for j in range(nblk):
        k2 = min(n0 + (j + 1) * BA_BLOCK, tau_hi)
        a_cur = inv_mean(k2 + gamma, pmf, lq, uq, c, mom) if gamma > 0.0 else 0.0
        a_next = inv_mean(k2 + 1.0 + gamma, pmf, lq, uq, c, mom)
        floor = max(floor, 2.0 * ends[j + 1] * a_next + gamma * a_cur)
    for j in range(nblk):
        k1 = n0 + j * BA_BLOCK + 1
        k2 = min(k1 + BA_BLOCK - 1, tau_hi)
        a_cur = inv_mean(k1 + gamma, pmf, lq, uq, c, mom) if gamma > 0.0 else 0.0
        bound = 2.0 * ends[j + 1] * inv_mean(k1 + 1.0 + gamma, pmf, lq, uq, c, mom) + gamma * a_cur
        if bound * (1.0 + _BA_SLACK) < floor:
            continue
        s = ends[j]
        a_next = 0.0
        for tau in range(k1, k2 + 1):
            s += float(q[tau - 1 - n0])
            if gamma > 0.0 and tau > k1:
                a_cur = a_next
            a_next = inv_mean(tau + 1.0 + gamma, pmf, lq, uq, c, mom)
            v = 2.0 * s * a_next + gamma * a_cur
            if v > val:
                val = v
                best = tau
    return best, val
