"""Exact expected Dice / IoU by generating-function quadrature (SPEC.md section 2).

For ``c > 0``, ``1 / (c + X) = int_0^1 x**(c - 1 + X) dx`` gives
``E[1 / (c + Gamma)] = int_0^1 x**(c - 1) G(x) dx`` with the probability generating
function ``G(x) = prod_i (1 - p_i + p_i x)``.  Hence, over the ``tau`` largest
probabilities ``p_(1) >= p_(2) >= ...``::

    Dice: pi(tau) = int_0^1 x**(tau + gamma - 1) G(x) [2 H_tau(x) + gamma] dx,
          H_tau(x) = sum_{j <= tau} p_(j) x / (1 - p_(j) + p_(j) x)
    IoU:  pi(tau) = (S_tau + gamma) int_0^1 x**(tau + gamma - 1)
                    prod_{j > tau} (1 - p_(j) + p_(j) x) dx

Substituting ``x = exp(-s)``, ``s = exp(u)`` turns each integral into
``int g(s) s du`` over the whole real line with a doubly exponentially decaying
upper tail; the trapezoid rule on a fixed lattice ``u_i = i h`` converges
geometrically because the integrand is analytic (and bounded) in the strip
``|Im u| < pi / 2``.  ``H_STEP`` is the lattice step (see the accuracy tests).

Speed comes from four devices, none of which gives up exactness:

* only ``tau`` in a requested band ``[tau_lo, tau_hi]`` is evaluated, incrementally:
  moving from ``tau`` to ``tau + 1`` costs one division per node;
* only nodes where the integrand can matter are visited: with ``y = 1 - x``,
  ``G(x) <= exp(-mu y)`` and ``H_tau <= tau`` bound every node's contribution;
* ``log G`` at a node never costs one logarithm per pixel: pixels with ``p y <= rho``
  enter through the whole-row power sums ``P_k = sum p**k``,
  ``log(1 - p y) = -sum_k (p y)**k / k``; only the few pixels of the sorted prefix
  with ``p y > rho`` are handled one by one (``rho = 10**(-16 / K)`` for ``K``
  power sums, so the truncated series is accurate to about ``1e-16`` per unit
  of mass);
* the lower tail of the lattice (``s -> 0``), where ``g`` is a smooth function of
  ``s``, is summed in closed form from ``TAIL_POINTS`` interpolation points
  (:data:`TAIL_WEIGHTS`), replacing about 200 lattice nodes.

Exact ``p = 1`` pixels use ``log x = -s`` and ``x / x = 1``; ``p = 0`` pixels drop
out.  With ``gamma = 0``, ``pi(0) = 0`` (the 0/0 := 0 convention).

Inputs per row are a descending *prefix* of the sorted probabilities and a whole-row
summary from one streaming pass (:func:`row_summary`).  Only the band needs sorting:
the first ``tau_lo`` entries may come in any order.  :func:`exact_reciprocal_moments`
gives ``E[1 / (c + Gamma)]``, from which (with RMA as a lower bound) a caller can
certify which band of ``tau`` can hold the optimum; see its notes.  Pixels beyond the prefix
must all satisfy ``p y <= rho`` at every node that matters.  The kernels only know
that the pixels beyond the prefix do not exceed its last entry; when that is not
small enough they return a positive cut ``p_need``: call again with a prefix whose
last entry is ``<= p_need`` (every pixel above ``p_need`` and at least one more), or
with the whole row.  A prefix holding the whole row never needs more.
"""

from __future__ import annotations

import math

import numpy as np

from rankseg._compile.jit import jit
from rankseg._policies import DICE, IOU
from rankseg.kernels._dtype import as_f64
from rankseg.kernels.quadrature import (
    H_STEP,
    TAIL_T,
    next_node,
    tail_origin,
)
from rankseg.kernels.summary import (
    BLOCK,
    DEFAULT_NPOW,
    SUM_D,
    SUM_HEAD,
    SUM_M3,
    SUM_MU,
    SUM_VAR,
    block_powers,
    new_summary,
    row_summary,
)

__all__ = [
    "DEFAULT_NPOW",
    "H_STEP",
    "QUAD_DICE",
    "QUAD_IOU",
    "SUM_D",
    "SUM_HEAD",
    "SUM_M3",
    "SUM_MU",
    "SUM_VAR",
    "exact_dice_objective",
    "exact_iou_objective",
    "exact_reciprocal_moments",
    "new_summary",
    "quadrature_objective",
    "row_summary",
]

#: Objective modes of the shared driver.
_DICE = DICE
_IOU = IOU
#: the modes of :func:`quadrature_objective` for Dice and IoU (public names)
QUAD_DICE = _DICE
QUAD_IOU = _IOU
_RECIP = 2  # E[1 / (c + Gamma)] for consecutive c


@jit(fastmath={"reassoc"})
def _block_power_sums(q, n, top_pow):
    """Add the power sums of ``q[:n]`` to ``top_pow[:K]``; return (sum, max, min, #ones)."""
    npow = top_pow.shape[0] - 1
    vals = np.empty(BLOCK, dtype=np.float64)
    pw = np.empty(BLOCK, dtype=np.float64)
    s = 0.0
    vmax = 0.0
    vmin = 1.0
    n_one = 0
    for start in range(0, n, BLOCK):
        m = min(BLOCK, n - start)
        blk = q[start : start + m]
        a = 0.0
        for i in range(m):
            p = as_f64(blk[i])
            vals[i] = p
            pw[i] = p
            a += p
            vmax = max(vmax, p)
            vmin = min(vmin, p)
            n_one += p == 1.0
        s += a
        block_powers(vals, pw, m, npow, top_pow, np.int64(0))
    return s, vmax, vmin, n_one


@jit
def log1m(q, y, x, s):
    """``log(1 - q y)`` with ``x = 1 - y = exp(-s)``, accurate for every q in [0, 1]."""
    qy = q * y
    if qy <= 0.5:
        return math.log1p(-qy)
    if q == 1.0:
        return -s
    return math.log((1.0 - q) + q * x)


@jit
def ratio(q, x):
    """``q x / (1 - q + q x)`` (in [0, 1]); exactly 1 for ``q = 1``."""
    if q == 1.0:
        return 1.0
    return q * x / ((1.0 - q) + q * x)


@jit
def shrink(q, x):
    """``x / (1 - q + q x)`` (in [0, 1]); exactly 1 for ``q = 1``."""
    if q == 1.0:
        return 1.0
    return x / ((1.0 - q) + q * x)


@jit
def node_term(s, q, t0, m_sorted, top_pow, summary, ws, mode):
    """Evaluate the pixel part of the node at ``s``.

    Returns ``(x, log G, H_t0)`` for Dice and ``(x, log G_tail(t0), 0)`` for IoU, with
    ``G_tail(t0) = prod_{j >= t0} (1 - q_j y)``.  Pixels of the top block ``[0, t0)``
    with ``q y > rho`` and the ``m_sorted`` sorted entries from ``t0`` are explicit;
    every other pixel enters through the power series.
    """
    iou = mode == _IOU
    npow = summary.shape[0] - SUM_HEAD
    x = math.exp(-s)
    y = -math.expm1(-s)
    rho = 10.0 ** (-16.0 / npow) if npow > 0 else 0.0
    cut = rho / y if y > 0.0 else math.inf
    ep = ws[0]  # explicit power sums, top block
    ep2 = ws[1]  # explicit power sums, sorted part
    for k in range(npow):
        ep[k] = 0.0
        ep2[k] = 0.0
    logg = 0.0
    h_top = 0.0
    if not iou:
        # top block [0, t0), any order: explicit entries are found by filtering
        if t0 > 0 and top_pow[npow] > cut:  # top_pow[npow] holds the block maximum
            for j in range(t0):
                qj = as_f64(q[j])
                if qj > cut:
                    logg += log1m(qj, y, x, s)
                    h_top += ratio(qj, x)
                    t = qj
                    for k in range(npow):
                        ep[k] += t
                        t *= qj
        # series part of H: x sum_k y**k (Q_{k+1} - E_{k+1})
        acc = 0.0
        for k in range(npow - 1, -1, -1):
            acc = acc * y + (top_pow[k] - ep[k])
        h_top += x * acc
    for j in range(t0, t0 + m_sorted):
        qj = as_f64(q[j])
        logg += log1m(qj, y, x, s)
        t = qj
        for k in range(npow):
            ep2[k] += t
            t *= qj
    # -sum_k T_k y**k / k over the series pixels
    acc = 0.0
    for k in range(npow - 1, -1, -1):
        if iou:
            tk = summary[SUM_HEAD + k] - top_pow[k] - ep2[k]
        else:
            tk = summary[SUM_HEAD + k] - ep[k] - ep2[k]
        if tk < 0.0:
            tk = 0.0
        acc = acc * y + tk / (k + 1)
    logg -= y * acc
    return x, logg, h_top


@jit(inline="always")
def need(cut, has_rest, rest_max, p_need):
    """``p_need`` after a node whose pixel split is at ``cut``.

    A pixel outside the prefix (``has_rest``; at most ``rest_max``) above ``cut``
    should have been explicit: the smallest such cut is the prefix needed.
    """
    if has_rest and rest_max > cut and (p_need == 0.0 or cut < p_need):
        return cut
    return p_need


@jit(inline="always")
def g0_term(mode, wgt, s_tau, gamma):
    """Contribution of the point ``g(0)`` (``x = 1``, ``G = 1``, ``H_tau = S_tau``) at ``tau``."""
    if mode != _DICE:
        return wgt
    return wgt * (2.0 * s_tau + gamma)


@jit(inline="always")
def iou_step(q, m_len, tau, x, base):
    """IoU: a node's ``base`` for ``tau + 1`` from the one at ``tau``."""
    if tau < m_len:
        base *= shrink(as_f64(q[tau]), x)
    return base


@jit(inline="always")
def dice_step(q, m_len, tau, x, node, gamma, state):
    """Dice: a node's ``(base, H, cnt)`` for ``tau + 1`` from those at ``tau``.

    ``node = (s, wgt, log G)``; ``base = wgt x**(tau + gamma) G`` is refreshed from
    ``log G`` every 64 steps against the rounding of repeated products.
    """
    s, wgt, logg = node
    base, h_tau, cnt = state
    if tau < m_len:
        h_tau += ratio(as_f64(q[tau]), x)
    cnt += 1
    if cnt == 64:
        cnt = 0
        base = wgt * math.exp(logg - (tau + 1 + gamma) * s)
    else:
        base *= x
    return base, h_tau, cnt


@jit
def _accumulate(s, wgt, q, t0, m_sorted, top_pow, summary, ws, mode, gamma, tau_lo, tau_hi, out):
    """Add ``wgt * g_tau(s)`` to ``out[tau - tau_lo]`` for every tau of the band."""
    x, logg, h_tau = node_term(s, q, t0, m_sorted, top_pow, summary, ws, mode)
    m_len = q.shape[0]
    base = wgt * math.exp(logg - (t0 + gamma) * s)
    if base == 0.0:
        return
    if mode == _IOU:
        for tau in range(t0, tau_hi + 1):
            out[tau - tau_lo] += base
            base = iou_step(q, m_len, tau, x, base)
            if base == 0.0:
                break
    elif mode == _RECIP:
        for tau in range(t0, tau_hi + 1):
            out[tau - tau_lo] += base
            base *= x
            if base == 0.0:
                break
    else:
        node = (s, wgt, logg)
        state = (base, h_tau, 0)
        for tau in range(t0, tau_hi + 1):
            out[tau - tau_lo] += state[0] * (2.0 * state[1] + gamma)
            state = dice_step(q, m_len, tau, x, node, gamma, state)
            if state[0] == 0.0:
                break


@jit
def node_bound(mode, s_hi, mu, n_one, t0, tau_hi, gamma):
    """``(scale, mu_lb, c_eff)`` of the bound ``wgt exp(-c_eff s - mu_lb y) scale`` on a node.

    The bound is on the node's contribution to the objective, which lies in [0, 1];
    nodes below the absolute tolerance ``_TOL`` are dropped.  IoU's objective is
    ``(S_tau + gamma)`` times an integral of order one: its scale is at least 1, so
    that the integral itself is resolved to ``_TOL`` and a row whose objective is
    tiny (every probability ~1e-20) still gets it to full relative precision.
    """
    c_lo = t0 + gamma
    if mode == _IOU:
        scale = max(s_hi + gamma, 1.0)
        mu_lb = (mu - s_hi) * (1.0 - 1e-12)  # G_tail(tau) <= exp(-(mu - S_tau_hi) y)
        c_eff = c_lo
    else:
        scale = 2.0 * tau_hi + gamma if mode == _DICE else 1.0
        mu_lb = (mu - n_one) * (1.0 - 1e-12)  # G <= x**n_one exp(-(mu - n_one) y)
        c_eff = c_lo + n_one
    return scale, max(mu_lb, 0.0), c_eff


@jit
def _objective(q, summary, gamma, tau_lo, tau_hi, mode, out):
    """Shared quadrature driver of the public kernels (``mode``: _DICE, _IOU, _RECIP)."""
    iou = mode == _IOU
    npow = summary.shape[0] - SUM_HEAD
    d = int(summary[SUM_D])
    mu = summary[SUM_MU]
    m_len = q.shape[0]
    nb = tau_hi - tau_lo + 1
    for i in range(nb):
        out[i] = 0.0
    t0 = tau_lo
    if t0 == 0 and gamma == 0.0:
        t0 = 1  # pi(0) = 0 by the 0/0 := 0 convention
    if t0 > tau_hi:
        return 0.0
    rho = 10.0 ** (-16.0 / npow) if npow > 0 else 0.0

    # --- prefix statistics -------------------------------------------------------------
    # top block [0, t0): power sums Q_1..Q_K (top_pow[:K]) and maximum (top_pow[K])
    top_pow = np.zeros(npow + 1, dtype=np.float64)
    s_t0, top_max, top_min, n_one = _block_power_sums(q, t0, top_pow)
    top_pow[npow] = top_max
    # S_tau over the band
    s_band = np.empty(nb, dtype=np.float64)
    acc = s_t0
    for tau in range(t0, tau_hi + 1):
        s_band[tau - tau_lo] = acc
        if tau < m_len:
            acc += as_f64(q[tau])
    for j in range(t0, m_len):
        if as_f64(q[j]) != 1.0:
            break
        n_one += 1
    rest_max = as_f64(q[m_len - 1]) if m_len > t0 else top_min
    has_rest = m_len < d

    # --- bound of a node's contribution: wgt * exp(-c_eff s - mu_lb y) * scale ---------
    scale, mu_lb, c_eff = node_bound(mode, s_band[nb - 1], mu, n_one, t0, tau_hi, gamma)
    if scale <= 0.0:
        return 0.0

    # --- the nodes: closed-form rule below the lattice node s0, then the lattice ------
    i0, s0 = tail_origin(tau_hi, gamma, mu)
    ws = np.zeros((2, max(npow, 1)), dtype=np.float64)
    p_need = 0.0
    m_sorted = 0
    pos = (TAIL_T.shape[0] - 1, i0 + 1)
    while True:
        s, wgt, pos, done = next_node(pos, s0, (c_eff, mu_lb, scale))
        if done:
            break
        if s == 0.0:
            for tau in range(t0, tau_hi + 1):
                out[tau - tau_lo] += g0_term(mode, wgt, s_band[tau - tau_lo], gamma)
            continue
        cut = rho / -math.expm1(-s)
        while t0 + m_sorted < m_len and as_f64(q[t0 + m_sorted]) > cut:
            m_sorted += 1
        p_need = need(cut, has_rest, rest_max, p_need)
        _accumulate(s, wgt, q, t0, m_sorted, top_pow, summary, ws, mode, gamma, tau_lo, tau_hi, out)
    if iou:
        for tau in range(t0, tau_hi + 1):
            out[tau - tau_lo] *= s_band[tau - tau_lo] + gamma
    return p_need


@jit
def exact_dice_objective(q, summary, gamma, tau_lo, tau_hi, out):
    """Exact expected Dice ``pi(tau)`` for ``tau`` in ``[tau_lo, tau_hi]`` by quadrature.

    Parameters
    ----------
    q : ndarray of float, shape (M,)
        Prefix of the row's probabilities in descending rank order,
        ``M >= tau_hi``.  Entries ``q[:tau_lo]`` must be the ``tau_lo`` largest
        probabilities but may be in any order; ``q[tau_lo:]`` must be sorted in
        descending order and not exceed ``min(q[:tau_lo])``.  Longer prefixes
        (entries past ``tau_hi``) make the pixel split cheaper to satisfy.
    summary : ndarray of float64, shape (SUM_HEAD + K,)
        Whole-row summary from :func:`row_summary` (``K >= 1`` power sums, or ``K = 0``
        with ``M = d``).
    gamma : float
        Smoothing ``gamma >= 0``.
    tau_lo, tau_hi : int
        Inclusive band, ``0 <= tau_lo <= tau_hi <= d``.
    out : ndarray of float64, shape (>= tau_hi - tau_lo + 1,)
        Receives ``pi(tau_lo + i)`` in ``out[i]``.

    Returns
    -------
    float
        ``0.0`` when the prefix sufficed.  Otherwise a cut ``p_need > 0``: pixels
        outside the prefix are only known to be ``<= q[-1]``, which is too large; call
        again with a prefix whose last entry is ``<= p_need`` (or the whole row).
        ``out`` is then only approximate.

    Notes
    -----
    ``pi(tau) = 2 sum_{j <= tau} p_(j) E[1 / (tau + 1 + gamma + Gamma_{-(j)})]
    + gamma E[1 / (tau + gamma + Gamma)]`` (SPEC.md section 2), evaluated as
    ``int_0^1 x**(tau + gamma - 1) G(x) [2 H_tau(x) + gamma] dx``.  Agrees with
    ``exact_dice_objective_dp`` (tests/poisson_binomial.py) to about
    ``1e-15`` (``tests/test_exact_kernels.py``).
    """
    # the mode as a run-time value: one compile of _objective serves every mode
    return _objective(q, summary, gamma, tau_lo, tau_hi, np.int64(_DICE), out)


@jit
def exact_iou_objective(q, summary, gamma, tau_lo, tau_hi, out):
    """Exact expected IoU ``pi(tau)`` for ``tau`` in ``[tau_lo, tau_hi]`` by quadrature.

    Parameters
    ----------
    q : ndarray of float, shape (M,)
        Descending prefix, as in :func:`exact_dice_objective`.
    summary : ndarray of float64, shape (SUM_HEAD + K,)
        Whole-row summary from :func:`row_summary`.
    gamma : float
        Smoothing ``gamma >= 0``.
    tau_lo, tau_hi : int
        Inclusive band, ``0 <= tau_lo <= tau_hi <= d``.
    out : ndarray of float64, shape (>= tau_hi - tau_lo + 1,)
        Receives ``pi(tau_lo + i)`` in ``out[i]``.

    Returns
    -------
    float
        ``0.0``, or the cut ``p_need > 0`` described in :func:`exact_dice_objective`.

    Notes
    -----
    ``pi(tau) = (S_tau + gamma) E[1 / (tau + gamma + U_tau)]``,
    ``U_tau = sum_{j > tau} Y_(j)`` (SPEC.md section 2), evaluated as
    ``(S_tau + gamma) int_0^1 x**(tau + gamma - 1) prod_{j > tau}(1 - p_(j) y) dx``.
    """
    return _objective(q, summary, gamma, tau_lo, tau_hi, np.int64(_IOU), out)


@jit
def exact_reciprocal_moments(q, summary, c0, n, out):
    """Reciprocal moments ``M(c) = E[1 / (c + Gamma)]`` for ``c = c0, c0 + 1, ..., c0 + n - 1``.

    Parameters
    ----------
    q : ndarray of float, shape (M,)
        Descending prefix of the row (any length ``>= 1``; see the module notes on
        ``p_need``).
    summary : ndarray of float64, shape (SUM_HEAD + K,)
        Whole-row summary from :func:`row_summary`.
    c0 : float
        First offset, ``c0 > 0``.
    n : int
        Number of offsets, ``n >= 1``.
    out : ndarray of float64, shape (>= n,)
        Receives ``M(c0 + i)`` in ``out[i]``.

    Returns
    -------
    float
        ``0.0``, or the cut ``p_need > 0`` described in :func:`exact_dice_objective`.

    Notes
    -----
    One quadrature pass, ``O(nodes * n)``.  Bounds that certify a search band for the
    exact solvers (each checked in ``tests/test_exact_kernels.py``):

    * Jensen: the RMA objectives are lower bounds, ``F(tau) <= pi(tau)`` (Dice and
      IoU), so ``F* = max F`` bounds the exact maximum from below.
    * Dice: ``Gamma_{-j} >= Gamma - 1`` gives ``pi(tau) <= (2 S_tau + gamma) M(tau + gamma)``,
      and a second-order Taylor bound gives
      ``pi(tau) <= 2 S_tau / (tau + gamma + mu) + 2 S_tau var / (tau + 1 + gamma)**3
      + gamma / (tau + gamma + mu) + gamma var / (tau + gamma)**3``.
    * IoU: ``pi(tau) <= F(tau) + (S_tau + gamma) var_tau / (tau + gamma)**3`` with
      ``var_tau = sum_{j > tau} p (1 - p)``.

    Every ``tau`` whose upper bound is below ``F*`` can be skipped.
    """
    return _objective(q, summary, c0, np.int64(0), n - 1, np.int64(_RECIP), out)


#: The quadrature kernel behind :func:`exact_dice_objective` (mode ``QUAD_DICE``) and
#: :func:`exact_iou_objective` (``QUAD_IOU``), same arguments plus the mode before
#: ``out``; a caller that serves both metrics calls it directly and compiles it once.
quadrature_objective = _objective
