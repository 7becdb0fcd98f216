"""Slow oracles for the exact / BA / TRNA kernels (to be merged into tests/naive.py).

Plain NumPy/SciPy float64 written from SPEC.md section 2, no numba:

- Poisson-binomial pmf by enumerating all 2^d outcomes;
- refined normal approximation with ``scipy.stats.norm`` for Phi and phi, its
  generalized quantiles by a fine grid plus ``scipy.optimize.brentq``;
- BA and TRNA objectives over the stable descending order, tau = 0..d.

Exact objectives, brute force over masks and the d0 bound live in ``tests/naive.py``.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np
from scipy import optimize, stats

__all__ = [
    "VAR_FLOOR",
    "ba_dice_naive",
    "pb_pmf_enum",
    "refined_g",
    "refined_g_raw",
    "refined_pmf",
    "refined_quantiles",
    "refined_sf_raw",
    "rna_params",
    "rna_pmf_window",
    "rna_window",
    "trna_dice_naive",
]

#: float64 machine epsilon: the variance floor of SPEC.md section 2.
VAR_FLOOR = float(np.finfo(np.float64).eps)


def _sorted(p) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64).ravel()
    return p[np.argsort(-p, kind="stable")]


def pb_pmf_enum(p) -> np.ndarray:
    """pmf of sum of Bernoulli(p_i) by enumerating all 2^d outcomes (d <= 16)."""
    p = np.asarray(p, dtype=np.float64)
    d = p.size
    pmf = np.zeros(d + 1)
    for y in itertools.product((0, 1), repeat=d):
        y = np.array(y, dtype=bool)
        pmf[y.sum()] += np.prod(np.where(y, p, 1.0 - p))
    return pmf


def refined_g_raw(x, skew):
    """Unclipped ``Phi(x) + skew (1 - x^2) phi(x) / 6``."""
    x = np.asarray(x, dtype=np.float64)
    return stats.norm.cdf(x) + skew * (1.0 - x * x) * stats.norm.pdf(x) / 6.0


def refined_sf_raw(x, skew):
    """``1 - refined_g_raw`` computed without cancellation (upper tail)."""
    x = np.asarray(x, dtype=np.float64)
    return stats.norm.sf(x) - skew * (1.0 - x * x) * stats.norm.pdf(x) / 6.0


def refined_g(x, skew):
    """Standardized refined CDF ``clip(Phi(x) + skew (1 - x^2) phi(x) / 6, 0, 1)``."""
    return np.clip(refined_g_raw(x, skew), 0.0, 1.0)


def rna_params(mu, var, m3):
    """(sigma, skew) with the variance clamped below by VAR_FLOOR."""
    v = max(float(var), VAR_FLOOR)
    sigma = np.sqrt(v)
    return float(sigma), float(m3) / v**1.5


def refined_pmf(k, mu, sigma, skew):
    """``clip(F(k) - F(k - 1), 0, 1)`` with ``F(k) = G((k + 0.5 - mu) / sigma)``."""
    k = np.asarray(k, dtype=np.float64)
    f1 = refined_g((k + 0.5 - mu) / sigma, skew)
    f0 = refined_g((k - 0.5 - mu) / sigma, skew)
    return np.clip(f1 - f0, 0.0, 1.0)


_GRID = np.linspace(-40.0, 40.0, 40_961)  # step 1/512 (the kernel scans at 1/64)


@functools.lru_cache(maxsize=4096)
def refined_quantiles(u, skew):
    """Generalized quantiles ``inf{G >= u}`` and ``sup{G <= 1 - u}`` (grid + brentq)."""
    g = refined_g_raw(_GRID, skew)
    i = int(np.argmax(g >= u))
    assert i > 0
    lo = optimize.brentq(
        lambda x: refined_g_raw(x, skew) - u, _GRID[i - 1], _GRID[i], xtol=1e-15, rtol=8.9e-16
    )
    sf = refined_sf_raw(_GRID, skew)
    ok = np.nonzero(sf >= u)[0]  # G <= 1 - u
    j = int(ok[-1])
    assert j < _GRID.size - 1
    hi = optimize.brentq(
        lambda x: refined_sf_raw(x, skew) - u, _GRID[j], _GRID[j + 1], xtol=1e-15, rtol=8.9e-16
    )
    return float(lo), float(hi)


def rna_window(mu, var, m3, d, eps):
    """Inclusive window [lq, uq] of SPEC.md section 2."""
    sigma, skew = rna_params(mu, var, m3)
    q_lo, q_hi = refined_quantiles(float(eps) / 2.0, float(skew))
    lq = max(np.floor(sigma * q_lo + mu) - 1.0, 0.0)
    uq = min(np.ceil(sigma * q_hi + mu), float(d))
    return int(lq), int(max(uq, lq))


def rna_pmf_window(mu, var, m3, lq, uq):
    """Renormalized RNA pmf on ``lq..uq`` (all zero when the window has no mass)."""
    sigma, skew = rna_params(mu, var, m3)
    pmf = refined_pmf(np.arange(lq, uq + 1), mu, sigma, skew)
    tot = pmf.sum()
    return pmf / tot if tot > 0 else np.zeros_like(pmf)


def _moments(p):
    p = np.asarray(p, dtype=np.float64)
    v = p * (1.0 - p)
    return float(p.sum()), float(v.sum()), float((v * (1.0 - 2.0 * p)).sum())


def ba_dice_naive(p, gamma: float, eps: float) -> np.ndarray:
    """BA objective pi(tau), tau = 0..d (Gamma_{-j} replaced by Gamma, RNA on the window)."""
    ps = _sorted(p)
    d = ps.size
    mu, var, m3 = _moments(ps)
    lq, uq = rna_window(mu, var, m3, d, eps)
    pmf = rna_pmf_window(mu, var, m3, lq, uq)
    k = np.arange(lq, uq + 1, dtype=np.float64)
    s = np.concatenate([[0.0], np.cumsum(ps)])
    pi = np.zeros(d + 1)
    if gamma > 0:
        pi[0] = gamma * np.sum(pmf / (k + gamma))
    for tau in range(1, d + 1):
        pi[tau] = 2.0 * s[tau] * np.sum(pmf / (k + tau + 1 + gamma))
        if gamma > 0:
            pi[tau] += gamma * np.sum(pmf / (k + tau + gamma))
    return pi


def trna_dice_naive(p, gamma: float, eps: float) -> np.ndarray:
    """TRNA objective pi(tau), tau = 0..d (one RNA per Gamma_{-(j)} on Gamma's window)."""
    ps = _sorted(p)
    d = ps.size
    mu, var, m3 = _moments(ps)
    lq, uq = rna_window(mu, var, m3, d, eps)
    pmf = rna_pmf_window(mu, var, m3, lq, uq)
    k = np.arange(lq, uq + 1, dtype=np.float64)
    pi = np.zeros(d + 1)
    if gamma > 0:
        pi[0] = gamma * np.sum(pmf / (k + gamma))
    w = np.zeros(k.size)
    for tau in range(1, d + 1):
        q = ps[tau - 1]
        v = q * (1.0 - q)
        w += q * rna_pmf_window(mu - q, var - v, m3 - v * (1.0 - 2.0 * q), lq, uq)
        pi[tau] = 2.0 * np.sum(w / (k + tau + 1 + gamma))
        if gamma > 0:
            pi[tau] += gamma * np.sum(pmf / (k + tau + gamma))
    return pi
