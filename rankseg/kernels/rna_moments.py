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

__all__ = ["rna_window_of_summary"]

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
