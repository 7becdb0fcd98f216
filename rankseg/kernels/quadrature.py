"""The quadrature node sequence of the exact objective (:mod:`rankseg.kernels.exact`).

The integrals ``int g(s) s du`` (``s = exp(u)``) are summed by the trapezoid rule on
the lattice ``u_i = i h`` (``h = H_STEP``); :func:`_lattice_node` gives a node and
whether it (or any later one) can matter.  Below the node ``s0`` of
:func:`_tail_origin` the lattice's lower tail is replaced by a closed-form rule
over ``TAIL_POINTS`` interpolation points (:func:`_tail_node`, :data:`TAIL_WEIGHTS`).
What the integrand is at a node is the objective's business, not this module's.
"""

from __future__ import annotations

import math

import numpy as np

from rankseg._compile.jit import jit

__all__ = ["H_STEP", "TAIL_POINTS", "TAIL_T", "TAIL_WEIGHTS", "next_node"]

#: Lattice step in u (trapezoid rule); tests show agreement with the DP to ~1e-15.
H_STEP = 0.2
#: Absolute tolerance for dropping a node or the lattice tails (objective is in [0, 1]).
_TOL = 1e-18

# --- closed-form lower tail ---------------------------------------------------------
#: Interpolation points of the lower-tail rule (Chebyshev-Lobatto on [0, 1]).
TAIL_POINTS = 12
#: Scale of the tail rule: its last lattice node sits at s0 = TAIL_SCALE / a, where
#: a bounds the growth rate of the integrand near s = 0.
TAIL_SCALE = 0.5
#: Floor added to the growth rate (the integrand's Taylor coefficients at s = 0 grow
#: like moments of tau + gamma + Gamma, never slower than Poisson moments).
TAIL_RATE_FLOOR = 1.0


def _tail_rule(n_points: int, h: float) -> tuple[np.ndarray, np.ndarray]:
    """Nodes ``t_j`` in [0, 1] and weights ``w_j`` of the lower-tail rule.

    For a function ``g`` smooth on ``[0, s0]`` the lattice tail
    ``sum_{k >= 1} h s_k g(s_k)``, ``s_k = s0 exp(-k h)``, equals
    ``h s0 sum_j w_j g(s0 t_j)`` up to the interpolation error of ``g`` at the
    Chebyshev-Lobatto points ``t_j``: ``w_j = sum_k exp(-k h) l_j(exp(-k h))`` with the
    Lagrange basis ``l_j`` (evaluated in barycentric form).
    """
    n = n_points - 1
    t = 0.5 * (1.0 + np.cos(np.pi * np.arange(n_points) / n))  # t_0 = 1, t_n = 0
    bw = np.ones(n_points)
    bw[1::2] = -1.0
    bw[0] *= 0.5
    bw[-1] *= 0.5
    kmax = int(math.ceil(60.0 / h)) + 1
    tk = np.exp(-h * np.arange(1, kmax + 1))
    w = np.zeros(n_points)
    for k in range(kmax):
        diff = tk[k] - t
        hit = np.nonzero(diff == 0.0)[0]
        if hit.size:
            lk = np.zeros(n_points)
            lk[hit[0]] = 1.0
        else:
            c = bw / diff
            lk = c / c.sum()
        w += tk[k] * lk
    return t, w


TAIL_T, TAIL_WEIGHTS = _tail_rule(TAIL_POINTS, H_STEP)


@jit
def tail_origin(tau_hi, gamma, mu):
    """Lattice index ``i0`` and node ``s0 = exp(i0 h)`` of the lower-tail rule."""
    a_rate = tau_hi + gamma + mu + TAIL_RATE_FLOOR
    i0 = int(math.floor(math.log(TAIL_SCALE / a_rate) / H_STEP))
    return i0, math.exp(i0 * H_STEP)


@jit
def tail_node(jt, s0):
    """Node ``s`` and weight of tail-rule point ``jt`` (``s = 0``: the point ``g(0)``)."""
    wgt = H_STEP * s0 * TAIL_WEIGHTS[jt]
    if jt == 0:
        wgt += H_STEP * s0  # the lattice node i0 itself
    return s0 * TAIL_T[jt], wgt


@jit
def lattice_node(i, c_eff, mu_lb, scale):
    """``(s, y, keep, stop)`` of lattice node ``i``: ``s = exp(i h)``, ``y = 1 - exp(-s)``.

    ``keep``: the node's bound ``h s exp(-c_eff s - mu_lb y) scale`` reaches the
    tolerance; ``stop``: no later node can (past the peak of ``s exp(-c s)``, where
    ``exp(-mu y)`` decreases too, or beyond ``u = 700``).
    """
    u = i * H_STEP
    if u > 700.0:
        return 0.0, 0.0, False, True
    s = math.exp(u)
    y = -math.expm1(-s)
    bound = H_STEP * s * math.exp(-c_eff * s - mu_lb * y) * scale
    if bound < _TOL:
        return s, y, False, s * c_eff > 1.0
    return s, y, True, False


@jit(inline="always")
def next_node(pos, s0, lattice):
    """Return the quadrature node after position ``pos`` of the node sequence.

    The one listing of the nodes for the CPU (:func:`rankseg.kernels.exact._objective`)
    and the GPU (``rankseg/cuda/exact.py``, the same code): the tail-rule points from
    ``s = 0`` upward (``jt = TAIL_POINTS - 1, ..., 0``), then the lattice nodes
    ``i0 + 1, i0 + 2, ...`` that :func:`_lattice_node` keeps, until it stops.

    Parameters
    ----------
    pos : tuple of (int, int)
        ``(jt, i)``: the next tail point (``< 0``: none left) and the next lattice
        index; start with ``(TAIL_POINTS - 1, i0 + 1)``.
    s0 : float
        The tail rule's origin ``exp(i0 h)`` (:func:`_tail_origin`).
    lattice : tuple of (c_eff, mu_lb, scale)
        The node bound of :func:`_lattice_node`.

    Returns
    -------
    s, wgt : float
        The node and its weight (``s = 0``: the point ``g(0)``).
    pos : tuple of (int, int)
        The position after it.
    done : bool
        True when the sequence is over (``s`` and ``wgt`` are then 0).
    """
    jt, i = pos
    if jt >= 0:
        s, wgt = tail_node(jt, s0)
        return s, wgt, (jt - 1, i), False
    c_eff, mu_lb, scale = lattice
    while True:
        s, y, keep, stop = lattice_node(i, c_eff, mu_lb, scale)
        if stop:
            return 0.0, 0.0, (jt, i), True
        i += 1
        if keep:
            return s, H_STEP * s, (jt, i), False
