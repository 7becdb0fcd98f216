"""TRNA's leave-one-out pmfs, and their interpolation on panels of ``p``.

The RNA of ``Gamma_{-(j)}`` (the row's moments minus those of pixel ``j``) on
``Gamma``'s window, exactly (:func:`loo_pmf_window`) or, for the interpolated TRNA
of :mod:`rankseg.kernels.trna`, as a barycentric interpolation in ``p`` between 12
Chebyshev-Lobatto nodes per panel, with the counts where a clip is active at some
node (the irregular counts) evaluated exactly.
"""

from __future__ import annotations

import numpy as np

from rankseg._compile.jit import jit
from rankseg.kernels.refined_normal import refined_g, refined_g_raw, rna_params, rna_pmf_window
from rankseg.kernels.summary import SUM_M3, SUM_MU, SUM_VAR

__all__ = [
    "NCHEB",
    "PANEL_X",
    "build_panel",
    "cheb_weights",
    "irregular_pmfs",
    "loo_params",
    "loo_pmf_window",
    "new_value",
    "use_panel",
]


@jit
def loo_params(summary, qj):
    """(mu, sigma, skew) of the RNA of Gamma - Y_j (moments minus pixel j, var clamped)."""
    v = qj * (1.0 - qj)
    mu = summary[SUM_MU] - qj
    sigma, skew = rna_params(mu, summary[SUM_VAR] - v, summary[SUM_M3] - v * (1.0 - 2.0 * qj))
    return mu, sigma, skew


@jit
def loo_pmf_window(summary, qj, lq, uq, buf):
    """Renormalized RNA pmf of Gamma - Y_j on Gamma's window."""
    mu, sigma, skew = loo_params(summary, qj)
    rna_pmf_window(mu, sigma, skew, lq, uq, buf)


@jit
def loo_raw_pmf(summary, qj, lq, uq, raw, regular):
    """Unnormalized clipped RNA pmf of Gamma - Y_j on the window.

    ``regular[i]`` is cleared where a clip (of F to [0, 1] or of the pmf at 0) is active.
    """
    mu, sigma, skew = loo_params(summary, qj)
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
def irregular_pmfs(summary, qj, lq, counts, n, cur):
    """Unnormalized clipped RNA pmf of Gamma - Y_j at the counts ``lq + counts[:n]``.

    ``cur[k]`` receives the value at ``lq + k``.  The counts are ascending; where two
    are adjacent the CDF between them is evaluated once (``(k + 1) - 0.5`` and
    ``k + 0.5`` are the same number), and the RNA's parameters once per pixel.
    """
    mu, sigma, skew = loo_params(summary, qj)
    prev = -2
    f_prev = 0.0
    for ii in range(n):
        kk = counts[ii]
        k = lq + kk
        if kk == prev + 1:
            f0 = f_prev
        else:
            f0 = refined_g((k - 0.5 - mu) / sigma, skew)
        f1 = refined_g((k + 0.5 - mu) / sigma, skew)
        cur[kk] = min(max(f1 - f0, 0.0), 1.0)
        f_prev = f1
        prev = kk


#: Chebyshev-Lobatto points per panel of the interpolated TRNA (degree 11).
NCHEB = 12
#: Panel half-width in standard units of Gamma_{-j}; with 12 points the interpolation
#: error is ~(0.025)**12 / sqrt(12!) ~ 1e-22 for a Gaussian-like profile.
PANEL_X = 0.1


@jit
def cheb_weights(t, nodes, bw, lw):
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
def build_panel(summary, b, width, lq, uq, c, nodes, bw, vals, regular, zreg, mreg):
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
        loo_raw_pmf(summary, nodes[i], lq, uq, vals[i], regular)
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
def new_value(summary, qj, b, lq, nodes, bws, zregs, irr, n_irr, lw, cur):
    """Interpolation weights ``lw`` of ``qj`` in panel ``b``, and the LOO pmf's mass ``z``.

    ``cur[k]`` receives the exact pmf at the panel's irregular counts ``k``.
    """
    cheb_weights(qj, nodes[b], bws[b], lw)
    z = 0.0
    for i in range(NCHEB):
        z += lw[i] * zregs[b, i]
    # exact values at the irregular counts
    if n_irr[b] > 0:
        irregular_pmfs(summary, qj, lq, irr[b], n_irr[b], cur)
    for ii in range(n_irr[b]):
        z += cur[irr[b, ii]]
    return z


@jit
def use_panel(summary, qj, width, lq, uq, c, panels):
    """Panel of ``qj``, built on first use.

    ``panels = (built, nodes, bws, vals, regs, zregs, mregs, irr, n_irr)``.
    """
    built, nodes, bws, vals, regs, zregs, mregs, irr, n_irr = panels
    b = min(int(qj / width), built.shape[0] - 1)
    if not built[b]:
        build_panel(
            summary, b, width, lq, uq, c, nodes[b], bws[b], vals[b], regs[b], zregs[b], mregs[b]
        )
        built[b] = True
        for k in range(uq - lq + 1):
            if not regs[b, k]:
                irr[b, n_irr[b]] = k
                n_irr[b] += 1
    return b
