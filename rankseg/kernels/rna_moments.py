"""The RNA pmf of ``Gamma`` on its eps-window, and ``A(a) = E[1 / (a + Gamma)]`` over it.

What the BA and TRNA objectives (:mod:`rankseg.kernels.ba_trna`,
:mod:`rankseg.kernels.trna`) share: the window ``[lq, uq]`` of a row summary
(:func:`rna_window_of_summary`), the renormalized pmf on it, its central moments, and
``A(a) = sum_k pmf(k) / (a + k)``, summed directly or, for large ``a``, as a
fast-converging series in those moments.
"""

from __future__ import annotations

import numpy as np

from rankseg._compile.jit import jit
from rankseg.kernels.refined_normal import rna_params, rna_pmf_window, rna_window
from rankseg.kernels.summary import SUM_D, SUM_M3, SUM_MU, SUM_VAR

__all__ = ["mediant_low", "rna_window_of_summary"]

#: Central moments kept for the series form of A(a) (ratio <= _SERIES_RATIO).
NMOM = 16
SERIES_RATIO = 0.1  # 0.1**16 = 1e-16 relative truncation error


@jit
def rna_window_of_summary(summary, eps):
    """Eps-window ``[lq, uq]`` of the RNA of ``Gamma`` for a row summary.

    Parameters
    ----------
    summary : ndarray of float64
        Whole-row summary.
    eps : float
        Window tail mass in (0, 1).

    Returns
    -------
    lq, uq : int
        Inclusive window (width ``w = uq - lq + 1`` sizes the per-thread scratch).
    """
    mu = summary[SUM_MU]
    sigma, skew = rna_params(mu, summary[SUM_VAR], summary[SUM_M3])
    return rna_window(mu, sigma, skew, int(summary[SUM_D]), eps)


@jit
def gamma_pmf(summary, eps):
    """Window and renormalized RNA pmf of Gamma."""
    mu = summary[SUM_MU]
    sigma, skew = rna_params(mu, summary[SUM_VAR], summary[SUM_M3])
    lq, uq = rna_window(mu, sigma, skew, int(summary[SUM_D]), eps)
    pmf = np.zeros(uq - lq + 1, dtype=np.float64)
    rna_pmf_window(mu, sigma, skew, lq, uq, pmf)
    return lq, uq, pmf


@jit
def central_moments(pmf, lq, uq, mom):
    """``mom[m] = sum_k pmf(k) (k - c)**m`` with ``c`` the window centre; returns c."""
    c = 0.5 * (lq + uq)
    for m in range(mom.shape[0]):
        mom[m] = 0.0
    for i in range(pmf.shape[0]):
        t = pmf[i]
        z = lq + i - c
        for m in range(mom.shape[0]):
            mom[m] += t
            t *= z
    return c


@jit
def inv_mean(a, pmf, lq, uq, c, mom):
    """``A(a) = sum_k pmf(k) / (a + k)`` over the window (``a + lq > 0``)."""
    w = pmf.shape[0]
    b = a + c
    if w > 2 * NMOM and 0.5 * (uq - lq) <= SERIES_RATIO * b:
        # 1/(b + z) = sum_m (-z)**m / b**(m+1), |z| <= (uq - lq)/2 <= 0.1 b
        ib = 1.0 / b
        acc = 0.0
        for m in range(NMOM - 1, -1, -1):
            acc = mom[m] - acc * ib
        return acc * ib
    acc = 0.0
    for i in range(w):
        acc += pmf[i] / (a + lq + i)
    return acc


#: relative margin of :func:`mediant_low` below its bound: the steps it decides stay
#: far above the rounding (and TRNA's interpolation error) of the computed objective
LOW_MARGIN = 1e-3


@jit
def mediant_low(pmax, n_half, s_half, c):
    """``max(p_max / (1 + c), S_X / (|X| + c)) (1 - 1e-3)``, ``X`` the pixels ``>= 1/2``.

    Parameters
    ----------
    pmax : float
        The row's largest probability.
    n_half, s_half : int, float
        Count and sum of the pixels ``p >= 1/2`` (``X``).
    c : float
        The objective's constant: its step at the pixel ``p`` of rank ``tau + 1`` is
        negative whenever ``p < S_tau / (tau + c)``.

    Returns
    -------
    float
        ``L``: from the last pixel ``p > L`` on, every step is negative (the mediant
        argument of the d0 bound: ``S_tau / (tau + c)`` at ``tau >= |X|`` is a
        weighted mean of ``S_X / (|X| + c)`` and the pixels of rank ``|X| + 1 .. tau``,
        and the same with the largest pixel as ``X``).  Used by BA's and TRNA's
        bounds (:func:`rankseg.kernels.ba_trna.ba_band`,
        :func:`rankseg.kernels.trna.trna_low`).
    """
    low = pmax / (1.0 + c)
    if n_half > 0:
        low = max(low, s_half / (n_half + c))
    return low * (1.0 - LOW_MARGIN)
