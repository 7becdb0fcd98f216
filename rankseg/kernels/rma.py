"""RMA objectives (Dice, IoU) and their safe screening bounds (SPEC §2).

``F(τ)`` is evaluated from the prefix sum ``s = S_τ`` of the τ largest
probabilities.  The screening bounds split a row into pixels that are surely
selected (``p >= hi``), surely not selected (``p <= lo``) and a band in between
that must be ordered.  Derivations (also in docs/solvers.rst):

* Dice, ``D = μ + 1 + γ + τ``: adding the next pixel ``p`` raises ``F`` iff
  ``p > S_τ/D + γ(D+1)/(2D(D-1))``.  ``S_τ/D < 1/2`` (as ``S_τ <= min(τ, μ)``) and the
  γ term decreases in τ, so every ``p >= hi = 1/2 + γ(D₀+1)/(2D₀(D₀-1))``,
  ``D₀ = μ + 1 + γ``, strictly raises ``F``: no prefix shorter than the forced set is a
  maximizer.  For the out side, for any pixel set X let ``lo = S_X/(μ+1+γ+|X|)``.
  The ratio ``S/D`` is a mediant, so the set ``M = {p > lo}`` has ``S_M/D_M >= lo``,
  and every longer prefix adds pixels ``p <= lo <= S_M/D_M``: ``2S/D`` cannot grow and
  ``γ/(D-1)`` shrinks, so ``F(τ) <= F(|M|)`` for τ > |M|.
* IoU, ``F = a/b`` with ``a = S_τ+γ``, ``b = μ - S_τ + τ + γ``: a pixel adds
  ``(p, 1-p)``, so ``F`` rises iff ``p > a/(a+b) = F/(1+F)``.  ``F <= 1`` (strictly below
  1 while a pixel with ``p > 0`` remains), so ``hi = 1/2``; and
  ``lo = (S_X+γ)/(μ+|X|+2γ)`` for any set X by the same mediant argument.

X ranges over the sets known after one streaming pass: ``{p >= 1/2}``, the whole
row, the single largest pixel and (IoU) the empty set.  ``lo`` is shrunk and ``hi``
enlarged by a relative 1e-12 so rounding can only widen the band, never drop a
pixel that could be selected.
"""

from __future__ import annotations

from rankseg._compile.jit import jit
from rankseg._policies import DICE

__all__ = ["rma_bounds", "rma_objective", "rma_rise_threshold"]

_WIDEN = 1e-12


@jit(inline="always")
def rma_objective(metric: int, s: float, tau: int, mu: float, gamma: float) -> float:
    """RMA objective ``F(τ)`` for Dice (``metric=0``) or IoU (``metric=1``).

    Parameters
    ----------
    metric : int
        ``DICE`` or ``IOU``.
    s : float
        ``S_τ``, the sum of the τ largest probabilities.
    tau : int
        The mask volume τ.
    mu : float
        ``μ``, the sum of all probabilities of the row.
    gamma : float
        The smoothing ``γ >= 0``.

    Returns
    -------
    float
        ``F(τ)`` with ``F(0) = γ/(μ+γ)`` if ``γ > 0`` else 0.
    """
    if tau == 0:
        if gamma > 0.0:
            return gamma / (mu + gamma)
        return 0.0
    if metric == DICE:
        return 2.0 * s / (mu + tau + 1.0 + gamma) + gamma / (mu + tau + gamma)
    return (s + gamma) / (mu - s + tau + gamma)


@jit(inline="always")
def rma_rise_threshold(metric: int, f: float, tau: int, mu: float, gamma: float) -> float:
    """Return a value above which every next pixel raises ``F``, past the prefix ``tau``.

    Adding a pixel ``p`` to the prefix ``τ' >= tau`` raises ``F`` iff ``p`` exceeds
    ``F(τ')/2 + γ/(2D(D-1))`` (Dice, ``D = μ + 1 + γ + τ'``) or ``F(τ')/(1 + F(τ'))``
    (IoU) (module docstring).  Both grow with ``F`` and the Dice term shrinks with
    ``τ'``, so with ``f >= F(τ')`` for every prefix considered the returned value is
    at least each of those thresholds: a run of pixels all above it raises ``F`` at
    every step, and the run's last prefix is the best of the run.

    Parameters
    ----------
    metric, mu, gamma
        As for :func:`rma_objective`.
    f : float
        An upper bound of ``F`` over the prefixes considered.
    tau : int
        The shortest prefix considered.

    Returns
    -------
    float
        The threshold value.
    """
    if metric == DICE:
        d0 = mu + 1.0 + gamma + tau
        extra = gamma / (2.0 * d0 * (d0 - 1.0)) if gamma > 0.0 else 0.0
        return 0.5 * f + extra
    return f / (1.0 + f)


@jit(inline="always")
def ratio(num: float, den: float) -> float:
    if den > 0.0:
        return num / den
    return 0.0


@jit
def rma_bounds(
    metric: int, mu: float, gamma: float, d: int, pmax: float, n_half: int, s_half: float
) -> tuple[float, float]:
    """Safe screening bounds ``(lo, hi)`` of one row for the RMA objective.

    Parameters
    ----------
    metric : int
        ``DICE`` or ``IOU``.
    mu : float
        Sum of the row's probabilities.
    gamma : float
        Smoothing ``γ``.
    d : int
        Number of pixels of the row.
    pmax : float
        Largest probability of the row.
    n_half : int
        Number of pixels with ``p >= 1/2``.
    s_half : float
        Sum of those pixels' probabilities.

    Returns
    -------
    tuple of float
        ``lo``: pixels with ``p <= lo`` are never selected; ``hi``: pixels with
        ``p >= hi`` are always selected.
    """
    if metric == DICE:
        c = mu + 1.0 + gamma
        lo = ratio(s_half, c + n_half)
        lo = max(lo, ratio(mu, c + d))
        lo = max(lo, ratio(pmax, c + 1.0))
        if gamma > 0.0:
            hi = 0.5 + gamma * (c + 1.0) / (2.0 * c * (c - 1.0))
            hi *= 1.0 + _WIDEN
        else:
            hi = 0.5
    else:
        g2 = 2.0 * gamma
        lo = ratio(gamma, mu + g2)
        lo = max(lo, ratio(s_half + gamma, mu + n_half + g2))
        lo = max(lo, ratio(mu + gamma, mu + d + g2))
        lo = max(lo, ratio(pmax + gamma, mu + 1.0 + g2))
        hi = 0.5
    lo *= 1.0 - _WIDEN
    return lo, hi
