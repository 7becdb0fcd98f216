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
    rna_window_of_summary,
)
from rankseg.kernels.summary import SUM_M3, SUM_MU, SUM_VAR
from rankseg.kernels.trna import trna_dice_objective

__all__ = [
    "ba_dice_best",
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


@jit
def ba_dice_best(q, summary, gamma, eps, d, tau_max):
    """First maximizer of the BA objective over ``tau`` in ``[0, min(d0, tau_max)]``.

    Parameters
    ----------
    q : ndarray of float, shape (M,)
        The row's candidates, all of them, in descending order (may be empty: ``pi(0)``).
    summary : ndarray of float64
        Whole-row summary (``d, mu, var, m3``).
    gamma : float
        Smoothing ``gamma >= 0``.
    eps : float
        Window tail mass in (0, 1).
    d : int
        Pixels of the row, ``d >= M``.
    tau_max : int
        Last ``tau`` searched at most, ``0 <= tau_max <= M``.

    Returns
    -------
    best : int
        The first ``tau`` with the largest objective over ``[0, tau_hi]``,
        ``tau_hi = min(d0, tau_max)`` with d0 from :func:`d0_bound` (or ``M`` when the
        prefix cannot decide).  With ``tau_max = M`` that is the range
        ``rankseg.kernels.solver_passes.search_end`` gives BA; a ``tau_max`` that
        already is that range leaves it unchanged.
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
    m_len = q.shape[0]
    ends = np.empty((m_len + BA_BLOCK - 1) // BA_BLOCK + 1)  # ends[j]: S_tau at j * BA_BLOCK
    ends[0] = 0.0
    # d0 (as d0_bound and search_end): the first tau <= min(d, M) - 1 with
    # S_tau >= (tau + gamma + d) p_(tau + 1), else M; at most tau_max
    tau_hi = tau_max
    s = 0.0
    for tau in range(1, tau_max + 1):
        s += float(q[tau - 1])
        if tau % BA_BLOCK == 0:
            ends[tau // BA_BLOCK] = s
        if tau < d and tau < m_len:
            qn = float(q[tau])
            if qn == 0.0 or s >= (tau + gamma + d) * qn:
                tau_hi = tau
                break
    nblk = (tau_hi + BA_BLOCK - 1) // BA_BLOCK
    ends[nblk] = s  # the sum at tau_hi (a partial last block)
    lq, uq, pmf = gamma_pmf(summary, eps)
    mom = np.zeros(NMOM, dtype=np.float64)
    c = central_moments(pmf, lq, uq, mom)
    best = 0
    val = gamma * inv_mean(gamma, pmf, lq, uq, c, mom) if gamma > 0.0 else 0.0
    floor = val
    for j in range(nblk):
        k2 = min((j + 1) * BA_BLOCK, tau_hi)
        a_cur = inv_mean(k2 + gamma, pmf, lq, uq, c, mom) if gamma > 0.0 else 0.0
        a_next = inv_mean(k2 + 1.0 + gamma, pmf, lq, uq, c, mom)
        floor = max(floor, 2.0 * ends[j + 1] * a_next + gamma * a_cur)
    for j in range(nblk):
        k1 = j * BA_BLOCK + 1
        k2 = min(k1 + BA_BLOCK - 1, tau_hi)
        a_cur = inv_mean(k1 + gamma, pmf, lq, uq, c, mom) if gamma > 0.0 else 0.0
        bound = 2.0 * ends[j + 1] * inv_mean(k1 + 1.0 + gamma, pmf, lq, uq, c, mom) + gamma * a_cur
        if bound * (1.0 + _BA_SLACK) < floor:
            continue
        s = ends[j]
        a_next = 0.0
        for tau in range(k1, k2 + 1):
            s += float(q[tau - 1])
            if gamma > 0.0 and tau > k1:
                a_cur = a_next
            a_next = inv_mean(tau + 1.0 + gamma, pmf, lq, uq, c, mom)
            v = 2.0 * s * a_next + gamma * a_cur
            if v > val:
                val = v
                best = tau
    return best, val
