"""Poisson-binomial dynamic programmes: the tests' exact reference for the ``exact`` solvers.

A test-only oracle (it lived in ``rankseg.kernels`` before; no module of the package
uses it), compiled with numba like the kernels so that it can check rows of
thousands of pixels.

``Gamma = sum_j Y_j`` with independent ``Y_j ~ Bernoulli(p_j)`` (SPEC.md section 2).
Its probability mass function is built by the stable convex-combination recursion
``f <- f * (1 - q) (+) shift(f) * q``: every step mixes non-negative numbers with
weights that sum to one, so no cancellation occurs and the absolute error of every
entry stays below ``d * eps``.

The leave-one-out pmf of ``Gamma - Y_j`` is recovered from the pmf of ``Gamma`` by
deconvolution.  The forward recursion divides by ``1 - q`` and amplifies an error by
``q / (1 - q)`` per step, the backward recursion divides by ``q`` and amplifies it by
``(1 - q) / q``; choosing forward for ``q < 0.5`` and backward for ``q >= 0.5`` keeps the
factor at most one, so the error stays bounded (measured: below ``1e-15`` in
``tests/test_poisson_binomial.py``).

The dynamic programs :func:`exact_dice_objective_dp` and :func:`exact_iou_objective_dp`
evaluate the exact expected Dice and IoU of the top-``tau`` masks.  They cost
``O(d * tau_max)`` (Dice) and ``O(d**2)`` (IoU) and serve as the reference for the fast
quadrature in :mod:`rankseg.kernels.exact`.  The numba options are the kernels'
(``rankseg._compile.jit``): cached, no fast-math, numpy's error model.
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: the kernels' options (rankseg._compile.jit), for an oracle outside the package
_jit = njit(cache=True, nogil=True, error_model="numpy")

__all__ = [
    "exact_dice_objective_dp",
    "exact_iou_objective_dp",
    "loo_pmf",
    "loo_pmf_into",
    "poisson_binomial_pmf",
    "poisson_binomial_pmf_into",
]


@_jit
def poisson_binomial_pmf_into(p, out):
    """Write the Poisson-binomial pmf of ``p`` into ``out``.

    Parameters
    ----------
    p : ndarray of float, shape (n,)
        Success probabilities in [0, 1], any order, float32 or float64.
    out : ndarray of float64, shape (>= n + 1,)
        Receives ``P(Gamma = k)`` for ``k = 0..n`` in ``out[:n + 1]``; entries past
        ``n`` are left untouched.

    Returns
    -------
    ndarray of float64
        ``out``.
    """
    n = p.shape[0]
    out[0] = 1.0
    for i in range(n):
        q = float(p[i])
        r = 1.0 - q
        # new f[k] = f[k] (1 - q) + f[k-1] q, descending so f[k-1] is still old.
        out[i + 1] = out[i] * q
        for k in range(i, 0, -1):
            out[k] = out[k] * r + out[k - 1] * q
        out[0] *= r
    return out


@_jit
def poisson_binomial_pmf(p):
    """Return the pmf of ``Gamma = sum_j Y_j``, ``Y_j ~ Bernoulli(p_j)`` independent.

    Parameters
    ----------
    p : ndarray of float, shape (n,)
        Success probabilities in [0, 1], any order, float32 or float64.

    Returns
    -------
    ndarray of float64, shape (n + 1,)
        ``pmf[k] = P(Gamma = k)``, computed by the convex-combination recursion in
        ``O(n**2)`` operations.
    """
    out = np.empty(p.shape[0] + 1, dtype=np.float64)
    return poisson_binomial_pmf_into(p, out)


@_jit
def loo_pmf_into(pmf, q, out):
    """Deconvolve one Bernoulli(``q``) term out of a Poisson-binomial pmf.

    Parameters
    ----------
    pmf : ndarray of float64, shape (n + 1,)
        pmf of ``Gamma`` (``n >= 1`` trials), one of which has success probability ``q``.
    q : float
        Success probability of the trial to remove, in [0, 1].
    out : ndarray of float64, shape (>= n,)
        Receives the pmf of ``Gamma - Y_j`` in ``out[:n]``.

    Returns
    -------
    ndarray of float64
        ``out``.

    Notes
    -----
    ``pmf[k] = g[k] (1 - q) + g[k - 1] q``.  For ``q < 0.5`` it is solved forward,
    ``g[k] = (pmf[k] - q g[k - 1]) / (1 - q)``; for ``q >= 0.5`` backward,
    ``g[k - 1] = (pmf[k] - (1 - q) g[k]) / q``, so that the error amplification factor
    is at most one.  ``q = 0`` and ``q = 1`` are exact copies.  Rounding can make an
    entry a tiny negative number; such entries are set to zero.
    """
    n = pmf.shape[0] - 1
    if n <= 0:
        return out
    if q == 0.0:
        for k in range(n):
            out[k] = pmf[k]
    elif q == 1.0:
        for k in range(n):
            out[k] = pmf[k + 1]
    elif q < 0.5:
        r = 1.0 - q
        prev = 0.0
        for k in range(n):
            v = (pmf[k] - q * prev) / r
            if v < 0.0:
                v = 0.0
            out[k] = v
            prev = v
    else:
        r = 1.0 - q
        nxt = 0.0
        for k in range(n, 0, -1):
            v = (pmf[k] - r * nxt) / q
            if v < 0.0:
                v = 0.0
            out[k - 1] = v
            nxt = v
    return out


@_jit
def loo_pmf(pmf, q):
    """Return the leave-one-out pmf of ``Gamma - Y_j`` where ``Y_j ~ Bernoulli(q)``.

    Parameters
    ----------
    pmf : ndarray of float64, shape (n + 1,)
        pmf of ``Gamma`` (``n >= 1``), one of whose trials has success probability ``q``.
    q : float
        Success probability of the removed trial, in [0, 1].

    Returns
    -------
    ndarray of float64, shape (n,)
        pmf of ``Gamma - Y_j`` (see :func:`loo_pmf_into` for the algorithm).
    """
    out = np.zeros(max(pmf.shape[0] - 1, 0), dtype=np.float64)
    return loo_pmf_into(pmf, q, out)


@_jit
def exact_dice_objective_dp(q_sorted, gamma, tau_max):
    """Exact expected Dice of the top-``tau`` masks by the Poisson-binomial DP.

    Parameters
    ----------
    q_sorted : ndarray of float, shape (d,)
        All ``d`` probabilities of the row sorted in descending order.
    gamma : float
        Smoothing ``gamma >= 0``.
    tau_max : int
        Largest volume evaluated, ``0 <= tau_max <= d``.

    Returns
    -------
    ndarray of float64, shape (tau_max + 1,)
        ``pi[tau] = E[Dice_gamma]`` of the mask of the ``tau`` largest probabilities
        (SPEC.md section 2): ``pi[tau] = sum_k 2 W_tau(k) / (k + tau + 1 + gamma)
        + gamma sum_k P(Gamma = k) / (k + tau + gamma)`` with
        ``W_tau(k) = sum_{j <= tau} p_(j) P(Gamma_{-(j)} = k)``; ``pi[0] = 0`` when
        ``gamma = 0`` (the 0/0 := 0 convention).

    Notes
    -----
    Cost ``O(d**2 + d * tau_max)``; the reference for
    :func:`rankseg.kernels.exact.exact_dice_objective`.
    """
    d = q_sorted.shape[0]
    f = poisson_binomial_pmf(q_sorted)
    g = np.zeros(max(d, 1), dtype=np.float64)
    w = np.zeros(max(d, 1), dtype=np.float64)
    out = np.zeros(tau_max + 1, dtype=np.float64)
    if gamma > 0.0:
        acc = 0.0
        for k in range(d + 1):
            acc += f[k] / (k + gamma)
        out[0] = gamma * acc
    for tau in range(1, tau_max + 1):
        qj = float(q_sorted[tau - 1])
        loo_pmf_into(f, qj, g)
        for k in range(d):
            w[k] += qj * g[k]
        a = 0.0
        for k in range(d):
            a += w[k] / (k + tau + 1 + gamma)
        b = 0.0
        if gamma > 0.0:
            for k in range(d + 1):
                b += f[k] / (k + tau + gamma)
        out[tau] = 2.0 * a + gamma * b
    return out


@_jit
def exact_iou_objective_dp(q_sorted, gamma, tau_max):
    """Exact expected IoU of the top-``tau`` masks by the Poisson-binomial DP.

    Parameters
    ----------
    q_sorted : ndarray of float, shape (d,)
        All ``d`` probabilities of the row sorted in descending order.
    gamma : float
        Smoothing ``gamma >= 0``.
    tau_max : int
        Largest volume evaluated, ``0 <= tau_max <= d``.

    Returns
    -------
    ndarray of float64, shape (tau_max + 1,)
        ``pi[tau] = (S_tau + gamma) E[1 / (tau + gamma + U_tau)]`` with
        ``U_tau = sum_{j > tau} Y_(j)`` (SPEC.md section 2); ``pi[0] = 0`` when
        ``gamma = 0``.

    Notes
    -----
    The pmf of ``U_tau`` is grown by convolution from the smallest probability upward
    (no deconvolution), cost ``O(d**2)``.
    """
    d = q_sorted.shape[0]
    out = np.zeros(tau_max + 1, dtype=np.float64)
    f = np.zeros(d + 1, dtype=np.float64)
    # pmf of U_{tau_max}: trials tau_max+1..d
    f[0] = 1.0
    n = 0
    for i in range(d - 1, tau_max - 1, -1):
        q = float(q_sorted[i])
        r = 1.0 - q
        f[n + 1] = f[n] * q
        for k in range(n, 0, -1):
            f[k] = f[k] * r + f[k - 1] * q
        f[0] *= r
        n += 1
    s = np.zeros(tau_max + 1, dtype=np.float64)
    for j in range(tau_max):
        s[j + 1] = s[j] + float(q_sorted[j])
    for tau in range(tau_max, -1, -1):
        if tau > 0 or gamma > 0.0:
            acc = 0.0
            for k in range(n + 1):
                acc += f[k] / (k + tau + gamma)
            out[tau] = (s[tau] + gamma) * acc
        if tau > 0:
            q = float(q_sorted[tau - 1])
            r = 1.0 - q
            f[n + 1] = f[n] * q
            for k in range(n, 0, -1):
                f[k] = f[k] * r + f[k - 1] * q
            f[0] *= r
            n += 1
    return out
