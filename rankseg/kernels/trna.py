"""The TRNA objective for expected Dice (SPEC.md sections 2-3).

**TRNA** (truncated RNA) gives each ``Gamma_{-(j)}`` its own RNA with the moments of
``Gamma`` minus those of pixel ``j``, evaluated on ``Gamma``'s window and renormalized
there, accumulated in ``W_tau(k) = sum_{j <= tau} p_(j) pmf_{-(j)}(k)`` as upstream.
Cost ``O(w)`` per pixel of rank ``<= tau_hi`` (the pmfs of equal consecutive
probabilities are shared).  Inputs and conventions as for BA
(:mod:`rankseg.kernels.ba_trna`, which re-exports :func:`trna_dice_objective`).
"""

from __future__ import annotations

import numpy as np

from rankseg._compile.jit import jit
from rankseg.kernels.refined_normal import refined_g, refined_g_raw, rna_params, rna_pmf_window
from rankseg.kernels.rna_moments import (
    NMOM,
    SERIES_RATIO,
    central_moments,
    gamma_pmf,
    inv_mean,
    mediant_low,
    rna_window_of_summary,
)
from rankseg.kernels.summary import SUM_M3, SUM_MU, SUM_VAR

__all__ = ["TRNA_SIGMA_INTERP", "trna_dice_objective", "trna_low"]


@jit
def _loo_params(summary, qj):
    """(mu, sigma, skew) of the RNA of Gamma - Y_j (moments minus pixel j, var clamped)."""
    v = qj * (1.0 - qj)
    mu = summary[SUM_MU] - qj
    sigma, skew = rna_params(mu, summary[SUM_VAR] - v, summary[SUM_M3] - v * (1.0 - 2.0 * qj))
    return mu, sigma, skew


@jit
def _loo_pmf_window(summary, qj, lq, uq, buf):
    """Renormalized RNA pmf of Gamma - Y_j on Gamma's window."""
    mu, sigma, skew = _loo_params(summary, qj)
    rna_pmf_window(mu, sigma, skew, lq, uq, buf)


@jit
def _loo_raw_pmf(summary, qj, lq, uq, raw, regular):
    """Unnormalized clipped RNA pmf of Gamma - Y_j on the window.

    ``regular[i]`` is cleared where a clip (of F to [0, 1] or of the pmf at 0) is active.
    """
    mu, sigma, skew = _loo_params(summary, qj)
    g_prev = refined_g_raw((lq - 0.5 - mu) / sigma, skew)
    for i in range(raw.shape[0]):
        g = refined_g_raw((lq + i + 0.5 - mu) / sigma, skew)
        f0 = min(max(g_prev, 0.0), 1.0)
        f1 = min(max(g, 0.0), 1.0)
        v = f1 - f0
        if not (0.0 < g_prev < 1.0 and 0.0 < g < 1.0 and v > 0.0):
            regular[i] = False
        raw[i] = min(max(v, 0.0), 1.0)
        g_prev = g


@jit
def _raw_pmf_at(summary, qj, k):
    """Unnormalized clipped RNA pmf of Gamma - Y_j at the count k."""
    mu, sigma, skew = _loo_params(summary, qj)
    f1 = refined_g((k + 0.5 - mu) / sigma, skew)
    f0 = refined_g((k - 0.5 - mu) / sigma, skew)
    return min(max(f1 - f0, 0.0), 1.0)


#: Chebyshev-Lobatto points per panel of the interpolated TRNA (degree 11).
_NCHEB = 12
#: Panel half-width in standard units of Gamma_{-j}; with 12 points the interpolation
#: error is ~(0.025)**12 / sqrt(12!) ~ 1e-22 for a Gaussian-like profile.
_PANEL_X = 0.1
#: Interpolate the LOO pmfs in p only when the smallest LOO sigma is at least this
#: (below it, var - p (1 - p) varies too much relative to var; w is small anyway).
TRNA_SIGMA_INTERP = 3.0


@jit
def _cheb_weights(t, nodes, bw, lw):
    """Barycentric Lagrange weights ``lw[i] = l_i(t)`` for the given nodes."""
    n = nodes.shape[0]
    tot = 0.0
    for i in range(n):
        dt = t - nodes[i]
        if dt == 0.0:
            for m in range(n):
                lw[m] = 0.0
            lw[i] = 1.0
            return
        lw[i] = bw[i] / dt
        tot += lw[i]
    inv = 1.0 / tot
    for i in range(n):
        lw[i] *= inv


@jit
def _build_panel(summary, b, width, lq, uq, c, nodes, bw, vals, regular, zreg, mreg):
    """Node pmfs of panel b (p in [b width, (b + 1) width]), regularity, sums, moments."""
    w = uq - lq + 1
    a0 = b * width
    a1 = min((b + 1) * width, 1.0)
    n = nodes.shape[0]
    for i in range(w):
        regular[i] = True
    for i in range(n):
        # Chebyshev-Lobatto points of [a0, a1]
        nodes[i] = 0.5 * (a0 + a1) + 0.5 * (a1 - a0) * np.cos(np.pi * i / (n - 1))
        bw[i] = (1.0 if i % 2 == 0 else -1.0) * (0.5 if i == 0 or i == n - 1 else 1.0)
        _loo_raw_pmf(summary, nodes[i], lq, uq, vals[i], regular)
    nm = mreg.shape[1]
    for i in range(n):
        z = 0.0
        for m in range(nm):
            mreg[i, m] = 0.0
        for k in range(w):
            if regular[k]:
                t = vals[i, k]
                z += t
                dz = lq + k - c
                for m in range(nm):
                    mreg[i, m] += t
                    t *= dz
        zreg[i] = z


@jit
def trna_dice_objective(q, summary, gamma, eps, tau_lo, tau_hi, out):
    """TRNA objective of expected Dice for ``tau`` in ``[tau_lo, tau_hi]``.

    Parameters
    ----------
    q : ndarray of float, shape (M,)
        Descending prefix, ``M >= tau_hi``; ``q[:tau_lo]`` may be in any order.
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

    Notes
    -----
    ``pi(tau) = sum_k 2 W_tau(k) / (k + tau + 1 + gamma) + gamma A(tau + gamma)`` with
    ``W_tau(k) = sum_{j <= tau} p_(j) pmf_{-(j)}(k)``; each ``pmf_{-(j)}`` is the RNA
    with ``mu - p``, ``var - p (1 - p)``, ``m3 - p (1 - p)(1 - 2 p)`` on ``[lq, uq]``,
    renormalized over the window (a pmf with no mass there contributes nothing).
    All pixels of rank ``<= tau_hi`` are visited, whatever ``tau_lo``.

    Speed: when every LOO standard deviation is ``>= TRNA_SIGMA_INTERP``, the
    unnormalized LOO pmf is a smooth function of ``p``; it is interpolated on panels
    of ``p`` (half-width 0.1 standard units, 12 Chebyshev-Lobatto points), except at
    counts where a clip is active at some node, which are evaluated exactly per pixel.
    Once ``tau`` is large enough that ``(uq - lq) / 2 <= 0.1 (tau + 1 + gamma + c)``
    (``c`` the window centre), ``W`` is carried as its 16 central moments and
    ``sum_k W(k) / (k + a)`` as their series.  Tests bound the difference to the
    pixel-by-pixel definition by ``1e-12``.
    """
    lq, uq, pmf = gamma_pmf(summary, eps)
    w = uq - lq + 1
    mom = np.zeros(NMOM, dtype=np.float64)
    c = central_moments(pmf, lq, uq, mom)
    if tau_lo == 0:
        out[0] = gamma * inv_mean(gamma, pmf, lq, uq, c, mom) if gamma > 0.0 else 0.0
    if tau_hi == 0:
        return w
    var_min = summary[SUM_VAR] - 0.25
    interp = var_min >= TRNA_SIGMA_INTERP * TRNA_SIGMA_INTERP
    half_w = 0.5 * (uq - lq)
    wacc = np.zeros(w, dtype=np.float64)
    zmom = np.zeros(NMOM, dtype=np.float64)  # central moments of W (series phase)
    series = False
    if interp:
        width = min(1.0, _PANEL_X * 2.0 * np.sqrt(var_min))
        n_panel = int(np.ceil(1.0 / width))
        built = np.zeros(n_panel, dtype=np.bool_)
        nodes = np.zeros((n_panel, _NCHEB))
        bws = np.zeros((n_panel, _NCHEB))
        vals = np.zeros((n_panel, _NCHEB, w))
        regs = np.zeros((n_panel, w), dtype=np.bool_)
        irr = np.zeros((n_panel, w), dtype=np.int64)  # irregular counts per panel
        n_irr = np.zeros(n_panel, dtype=np.int64)
        zregs = np.zeros((n_panel, _NCHEB))
        mregs = np.zeros((n_panel, _NCHEB, NMOM))
        lw = np.zeros(_NCHEB)
        comb = np.zeros(w)
    else:
        width = 1.0
        n_panel = 1
        built = np.zeros(1, dtype=np.bool_)
        nodes = np.zeros((1, 1))
        bws = np.zeros((1, 1))
        vals = np.zeros((1, 1, 1))
        regs = np.zeros((1, 1), dtype=np.bool_)
        irr = np.zeros((1, 1), dtype=np.int64)
        n_irr = np.zeros(1, dtype=np.int64)
        zregs = np.zeros((1, 1))
        mregs = np.zeros((1, 1, 1))
        lw = np.zeros(1)
        comb = np.zeros(1)
    cur = np.zeros(w, dtype=np.float64)
    last = -1.0
    # the series phase's increments of the last pixel (reused by equal values)
    s_q = -1.0
    s_some = False
    s_inc = np.zeros(NMOM, dtype=np.float64)
    s_irr = np.zeros((w if interp else 1, NMOM), dtype=np.float64)
    for j in range(tau_hi):
        tau = j + 1
        if not series and w > 2 * NMOM and half_w <= SERIES_RATIO * (tau + 1.0 + gamma + c):
            # switch to the moment representation of W (valid for every later tau)
            series = True
            for m in range(NMOM):
                zmom[m] = 0.0
            for k in range(w):
                t = wacc[k]
                dz = lq + k - c
                for m in range(NMOM):
                    zmom[m] += t
                    t *= dz
        qj = float(q[j])
        if qj > 0.0:
            if interp:
                b = min(int(qj / width), n_panel - 1)
                if not built[b]:
                    _build_panel(
                        summary,
                        b,
                        width,
                        lq,
                        uq,
                        c,
                        nodes[b],
                        bws[b],
                        vals[b],
                        regs[b],
                        zregs[b],
                        mregs[b],
                    )
                    built[b] = True
                    for k in range(w):
                        if not regs[b, k]:
                            irr[b, n_irr[b]] = k
                            n_irr[b] += 1
                if series and qj == s_q:
                    # the same value as the pixel before, in the series phase: the same
                    # increments, added in the same order (equal values are common near
                    # 1 in float32 maps: ct3d's background row has 287,595 distinct
                    # values among 921,493)
                    if s_some:
                        for m in range(NMOM):
                            zmom[m] += s_inc[m]
                        for ii in range(n_irr[b]):
                            for m in range(NMOM):
                                zmom[m] += s_irr[ii, m]
                else:
                    _cheb_weights(qj, nodes[b], bws[b], lw)
                    z = 0.0
                    for i in range(_NCHEB):
                        z += lw[i] * zregs[b, i]
                    # exact values at the irregular counts
                    for ii in range(n_irr[b]):
                        k = irr[b, ii]
                        cur[k] = _raw_pmf_at(summary, qj, lq + k)
                        z += cur[k]
                    if z > 0.0:
                        f = qj / z
                        if series:
                            for m in range(NMOM):
                                acc = 0.0
                                for i in range(_NCHEB):
                                    acc += lw[i] * mregs[b, i, m]
                                s_inc[m] = f * acc
                                zmom[m] += s_inc[m]
                            for ii in range(n_irr[b]):
                                k = irr[b, ii]
                                t = f * cur[k]
                                dz = lq + k - c
                                for m in range(NMOM):
                                    s_irr[ii, m] = t
                                    zmom[m] += t
                                    t *= dz
                        else:
                            for k in range(w):
                                comb[k] = 0.0
                            for i in range(_NCHEB):
                                li = lw[i]
                                for k in range(w):
                                    comb[k] += li * vals[b, i, k]
                            for k in range(w):
                                if regs[b, k]:
                                    wacc[k] += f * comb[k]
                                else:
                                    wacc[k] += f * cur[k]
                    if series:
                        s_q = qj
                        s_some = z > 0.0
            else:
                if qj != last:
                    _loo_pmf_window(summary, qj, lq, uq, cur)
                    last = qj
                if series:
                    for k in range(w):
                        t = qj * cur[k]
                        dz = lq + k - c
                        for m in range(NMOM):
                            zmom[m] += t
                            t *= dz
                else:
                    for k in range(w):
                        wacc[k] += qj * cur[k]
        if tau >= tau_lo:
            if series:
                ib = 1.0 / (tau + 1.0 + gamma + c)
                a = 0.0
                for m in range(NMOM - 1, -1, -1):
                    a = zmom[m] - a * ib
                a *= ib
            else:
                a = 0.0
                base = lq + tau + 1.0 + gamma
                for k in range(w):
                    a += wacc[k] / (base + k)
            val = 2.0 * a
            if gamma > 0.0:
                val += gamma * inv_mean(tau + gamma, pmf, lq, uq, c, mom)
            out[tau - tau_lo] = val
    return w


@jit
def trna_low(summary, gamma, eps, pmax, n_half, s_half):
    """Return ``L`` such that TRNA's objective falls from the last pixel ``p > L`` on.

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
    float
        ``L > 0``, or ``-1.0`` when the bound does not apply (a row whose smallest
        leave-one-out standard deviation is below :data:`TRNA_SIGMA_INTERP`).  With
        ``n`` pixels above ``L``, the first maximizer over ``[0, d0]`` is at most
        ``n``: a search may stop there.

    Notes
    -----
    Adding the pixel ``p`` of rank ``tau + 1`` changes the objective by
    ``2 p B - 2 sum_k W_tau(k) / ((k + a)(k + a + 1)) - gamma D``, ``a = tau + 1 + gamma``,
    ``B = sum_k pmf_{-(tau+1)}(k) / (k + a + 1)`` and ``D >= 0`` (the ``gamma`` term's
    difference).  Every leave-one-out pmf is a probability on Gamma's window
    ``[lq, uq]`` (its mass there is positive when its standard deviation is at least
    :data:`TRNA_SIGMA_INTERP`, and it is renormalized), so ``B <= 1 / (a + 1 + lq)``,
    ``sum_k W_tau(k) = S_tau`` and the sum over ``k`` is at least
    ``S_tau / ((uq + a)(uq + a + 1))``: the step is negative when
    ``p < S_tau (a + 1 + lq) / ((uq + a)(uq + a + 1))``, which holds when
    ``p < S_tau / (tau + c)`` with ``c = 1 + gamma + uq + w + w (w - 1) / (2 + gamma + lq)``,
    ``w = uq - lq``.  From there the mediant argument of BA's ``L``
    (:func:`rankseg.kernels.ba_trna.ba_band`) applies with this ``c``; ``L`` is the
    larger of ``S_X / (|X| + c)`` for ``X`` the pixels ``>= 1/2`` and ``X`` the largest
    pixel, times ``1 - 1e-3`` (:func:`rankseg.kernels.rna_moments.mediant_low`), which
    keeps each step it decides far above the interpolation and rounding error of the
    computed objective (``tests/test_ba_trna_kernels.py``).
    """
    var_min = summary[SUM_VAR] - 0.25
    if var_min < TRNA_SIGMA_INTERP * TRNA_SIGMA_INTERP:
        return -1.0
    lq, uq = rna_window_of_summary(summary, eps)
    w = uq - lq
    return mediant_low(
        pmax, n_half, s_half, 1.0 + gamma + uq + w + w * (w - 1.0) / (2.0 + gamma + lq)
    )
