"""Refined normal approximation (RNA, Volkova 1996) of the Poisson-binomial distribution.

``Gamma = sum_j Y_j`` is approximated through its first three cumulants
``mu = sum p``, ``var = sum p (1 - p)`` (clamped below by ``VAR_FLOOR``) and
``m3 = sum p (1 - p) (1 - 2 p)``, ``skew = m3 / sigma**3`` (SPEC.md section 2)::

    G(x)   = clip(Phi(x) + skew (1 - x**2) phi(x) / 6, 0, 1)
    F(k)   = G((k + 0.5 - mu) / sigma)
    pmf(k) = clip(F(k) - F(k - 1), 0, 1)

``Phi`` and ``phi`` come from :func:`math.erfc` and :func:`math.exp`.

The eps-window ``[lq, uq]`` keeps mass ``>= 1 - eps``.  ``G`` is not monotone when
``skew != 0`` (its derivative ``phi(x) (1 + skew (x**3 - 3 x) / 6)`` changes sign), so
"the quantile" needs a definition; this module uses the conservative generalized
inverses ``q_lo = inf{x : G(x) >= eps / 2}`` and ``q_hi = sup{x : G(x) <= 1 - eps / 2}``.
They coincide with the ordinary quantiles (what ``scipy`` root finding returns) when
``G`` is monotone around the crossing, and otherwise give the wider, safer window.
"""

from __future__ import annotations

import math

import numpy as np

from rankseg._compile.jit import jit

__all__ = [
    "VAR_FLOOR",
    "refined_cdf",
    "refined_g",
    "refined_g_raw",
    "refined_pmf",
    "refined_quantile_hi",
    "refined_quantile_lo",
    "rna_params",
    "rna_pmf_window",
    "rna_pmf_window_array",
    "rna_window",
    "std_normal_cdf",
    "std_normal_pdf",
]

#: Lower clamp of the variance (float64 machine epsilon), as upstream.
VAR_FLOOR = 2.220446049250313e-16

_INV_SQRT2 = 0.7071067811865476
_INV_SQRT2PI = 0.3989422804014327
#: Scan step (in standard units) of the quantile search; see refined_quantile_lo.
_SCAN_STEP = 1.0 / 64.0
#: Far-left start of the quantile search: phi(-40) underflows, so G(-40) = 0.
_X_FAR = 40.0


@jit
def std_normal_cdf(x):
    """Evaluate the standard normal CDF ``Phi(x) = erfc(-x / sqrt(2)) / 2``.

    Parameters
    ----------
    x : float
        Argument.

    Returns
    -------
    float
        ``Phi(x)``, accurate in both tails (no ``1 - Phi`` cancellation).
    """
    return 0.5 * math.erfc(-x * _INV_SQRT2)


@jit
def std_normal_pdf(x):
    """Evaluate the standard normal density ``phi(x) = exp(-x**2 / 2) / sqrt(2 pi)``.

    Parameters
    ----------
    x : float
        Argument.

    Returns
    -------
    float
        ``phi(x)``.
    """
    return _INV_SQRT2PI * math.exp(-0.5 * x * x)


@jit
def refined_g_raw(x, skew):
    """Evaluate the unclipped refined CDF ``Phi(x) + skew (1 - x**2) phi(x) / 6``.

    Parameters
    ----------
    x : float
        Standardized argument.
    skew : float
        Skewness.

    Returns
    -------
    float
        The value before clipping to [0, 1] (callers test where clipping is active).
    """
    return std_normal_cdf(x) + skew * (1.0 - x * x) * std_normal_pdf(x) / 6.0


@jit
def refined_g(x, skew):
    """Standardized refined CDF ``G(x) = clip(Phi(x) + skew (1 - x**2) phi(x) / 6, 0, 1)``.

    Parameters
    ----------
    x : float
        Standardized argument.
    skew : float
        Skewness ``m3 / sigma**3``.

    Returns
    -------
    float
        ``G(x)`` in [0, 1].
    """
    v = refined_g_raw(x, skew)
    if v < 0.0:
        return 0.0
    if v > 1.0:
        return 1.0
    return v


@jit
def refined_cdf(k, mu, sigma, skew):
    """Refined-normal CDF ``F(k) = G((k + 0.5 - mu) / sigma)`` of the Poisson binomial.

    Parameters
    ----------
    k : float
        Count (integer-valued; any real accepted).
    mu, sigma, skew : float
        Mean, standard deviation (already clamped, see :func:`rna_params`) and skewness.

    Returns
    -------
    float
        ``F(k)`` in [0, 1].
    """
    return refined_g((k + 0.5 - mu) / sigma, skew)


@jit
def refined_pmf(k, mu, sigma, skew):
    """Refined-normal pmf ``clip(F(k) - F(k - 1), 0, 1)``.

    Parameters
    ----------
    k : float
        Count.
    mu, sigma, skew : float
        Mean, standard deviation and skewness.

    Returns
    -------
    float
        Approximate ``P(Gamma = k)`` (not renormalized).
    """
    v = refined_cdf(k, mu, sigma, skew) - refined_cdf(k - 1.0, mu, sigma, skew)
    if v < 0.0:
        return 0.0
    if v > 1.0:
        return 1.0
    return v


@jit
def rna_params(mu, var, m3):
    """Return the standard deviation and skewness of the RNA from the three cumulants.

    Parameters
    ----------
    mu : float
        Mean ``sum p`` (unused; kept so call sites read like the formula).
    var : float
        Variance ``sum p (1 - p)``; clamped below by :data:`VAR_FLOOR`.
    m3 : float
        Third central moment ``sum p (1 - p) (1 - 2 p)``.

    Returns
    -------
    sigma : float
        ``sqrt(max(var, VAR_FLOOR))``.
    skew : float
        ``m3 / max(var, VAR_FLOOR) ** 1.5``.
    """
    v = var if var > VAR_FLOOR else VAR_FLOOR
    sigma = math.sqrt(v)
    return sigma, m3 / (v * sigma)


@jit
def refined_quantile_lo(u, skew):
    """Lower generalized quantile ``inf{x : G(x) >= u}`` of the standardized refined CDF.

    Parameters
    ----------
    u : float
        Level in (0, 1), typically ``eps / 2``.
    skew : float
        Skewness.

    Returns
    -------
    float
        The smallest ``x`` with ``G(x) >= u``, to about one ulp.

    Notes
    -----
    ``B(x) = Phi(x) + |skew| (1 + x**2) phi(x) / 6`` bounds ``G`` from above and
    increases on ``(-inf, -1]``, so no ``x`` below the root of ``B = u`` can reach ``u``.
    From there ``G`` is scanned upward in steps of 1/64 standard units until it
    reaches ``u``, and the crossing is refined by bisection.  A crossing that
    enters and leaves ``[u, 1]`` between two scan points (only possible for extreme
    skews) would be skipped.
    """
    a_skew = abs(skew)
    lo = -_X_FAR
    hi = -1.0
    # B(x) >= u somewhere on [-40, -1]? B increases there, bisect for its root.
    b_hi = std_normal_cdf(hi) + a_skew * (1.0 + hi * hi) * std_normal_pdf(hi) / 6.0
    if b_hi >= u:
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            if mid <= lo or mid >= hi:
                break
            b = std_normal_cdf(mid) + a_skew * (1.0 + mid * mid) * std_normal_pdf(mid) / 6.0
            if b < u:
                lo = mid
            else:
                hi = mid
        x = lo  # B(lo) < u, hence G < u on (-inf, lo]
    else:
        x = hi
    # scan upward for the first grid point with G >= u
    prev = x
    while refined_g_raw(x, skew) < u:
        prev = x
        x += _SCAN_STEP
        if x > _X_FAR:
            return _X_FAR
    if x == prev:
        return x
    a = prev
    b = x
    for _ in range(200):
        mid = 0.5 * (a + b)
        if mid <= a or mid >= b:
            break
        if refined_g_raw(mid, skew) < u:
            a = mid
        else:
            b = mid
    return b


@jit
def refined_quantile_hi(u, skew):
    """Upper generalized quantile ``sup{x : G(x) <= 1 - u}`` of the standardized refined CDF.

    Parameters
    ----------
    u : float
        Upper tail level in (0, 1), typically ``eps / 2``.
    skew : float
        Skewness.

    Returns
    -------
    float
        The largest ``x`` with ``G(x) <= 1 - u``.

    Notes
    -----
    Uses the symmetry ``G_skew(-x) = 1 - G_{-skew}(x)``, so
    ``q_hi(u, skew) = -q_lo(u, -skew)``.
    """
    return -refined_quantile_lo(u, -skew)


@jit
def rna_window(mu, sigma, skew, d, eps):
    """Inclusive eps-window ``[lq, uq]`` of the RNA (SPEC.md section 2).

    Parameters
    ----------
    mu, sigma, skew : float
        Mean, clamped standard deviation and skewness (:func:`rna_params`).
    d : int
        Number of trials (upper limit of the support).
    eps : float
        Total tail mass left out, in (0, 1).

    Returns
    -------
    lq : int
        ``max(floor(sigma q_lo + mu) - 1, 0)``.
    uq : int
        ``min(ceil(sigma q_hi + mu), d)``, never below ``lq``.
    """
    u = 0.5 * eps
    q_lo = refined_quantile_lo(u, skew)
    q_hi = refined_quantile_hi(u, skew)
    lq = math.floor(sigma * q_lo + mu) - 1.0
    uq = math.ceil(sigma * q_hi + mu)
    if lq < 0.0:
        lq = 0.0
    if lq > d:
        lq = float(d)
    if uq > d:
        uq = float(d)
    if uq < lq:
        uq = lq
    return int(lq), int(uq)


@jit
def rna_pmf_window(mu, sigma, skew, lq, uq, out):
    """Renormalized RNA pmf over the window ``[lq, uq]``.

    Parameters
    ----------
    mu, sigma, skew : float
        Mean, clamped standard deviation and skewness.
    lq, uq : int
        Inclusive window, ``lq <= uq``.
    out : ndarray of float64, shape (>= uq - lq + 1,)
        Receives ``pmf(k) / sum_window pmf`` for ``k = lq..uq`` in
        ``out[:uq - lq + 1]``.

    Returns
    -------
    float
        The window mass before renormalization.  When it is zero (possible only for
        degenerate parameters) ``out`` is left all zero.
    """
    n = uq - lq + 1
    f_prev = refined_g((lq - 0.5 - mu) / sigma, skew)
    total = 0.0
    for i in range(n):
        f = refined_g((lq + i + 0.5 - mu) / sigma, skew)
        v = f - f_prev
        if v < 0.0:
            v = 0.0
        elif v > 1.0:
            v = 1.0
        out[i] = v
        total += v
        f_prev = f
    if total > 0.0:
        inv = 1.0 / total
        for i in range(n):
            out[i] *= inv
    else:
        for i in range(n):
            out[i] = 0.0
    return total


@jit
def rna_pmf_window_array(mu, var, m3, d, eps):
    """Return the eps-window and renormalized pmf from the three cumulants.

    Parameters
    ----------
    mu, var, m3 : float
        Cumulants of the Poisson binomial (``var`` is clamped).
    d : int
        Number of trials.
    eps : float
        Window tail mass in (0, 1).

    Returns
    -------
    lq : int
        First count of the window.
    pmf : ndarray of float64, shape (uq - lq + 1,)
        Renormalized pmf over ``[lq, uq]``.
    """
    sigma, skew = rna_params(mu, var, m3)
    lq, uq = rna_window(mu, sigma, skew, d, eps)
    out = np.zeros(uq - lq + 1, dtype=np.float64)
    rna_pmf_window(mu, sigma, skew, lq, uq, out)
    return lq, out
