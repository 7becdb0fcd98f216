"""The TRNA objective for expected Dice (SPEC.md sections 2-3).

**TRNA** (truncated RNA) gives each ``Gamma_{-(j)}`` its own RNA with the moments of
``Gamma`` minus those of pixel ``j``, evaluated on ``Gamma``'s window and renormalized
there, accumulated in ``W_tau(k) = sum_{j <= tau} p_(j) pmf_{-(j)}(k)`` as upstream.
Cost ``O(w)`` per pixel of rank ``<= tau_hi`` (the pmfs of equal consecutive
probabilities are shared); once ``W`` is carried as moments, 16 additions per pixel
and the increments of each distinct value, and the search for the maximum
(:func:`trna_dice_best`) evaluates only the blocks of ``tau`` that can hold it.
Inputs and conventions as for BA
(:mod:`rankseg.kernels.ba_trna`, which re-exports :func:`trna_dice_objective`).
"""

from __future__ import annotations

import numpy as np

from rankseg._compile.jit import jit
from rankseg.kernels.rna_moments import (
    NMOM,
    SERIES_RATIO,
    central_moments,
    gamma_pmf,
    inv_mean,
    mediant_low,
    rna_window_of_summary,
)
from rankseg.kernels.summary import SUM_VAR
from rankseg.kernels.trna_panels import (
    NCHEB,
    PANEL_X,
    loo_pmf_window,
    new_value,
    use_panel,
)

__all__ = ["TRNA_SIGMA_INTERP", "trna_dice_best", "trna_dice_objective", "trna_low", "trna_scan"]

#: Interpolate the LOO pmfs in p only when the smallest LOO sigma is at least this
#: (below it, var - p (1 - p) varies too much relative to var; w is small anyway).
TRNA_SIGMA_INTERP = 3.0


#: ``tau`` per block of TRNA's series phase: a block whose bound cannot reach the
#: floor is not evaluated (:func:`trna_dice_best`)
TRNA_BLOCK = 256
#: relative margin of a block's bound over the computed objective (whose interpolation
#: error is below 1e-12 of it, ``tests/test_ba_trna_kernels.py``)
_TRNA_SLACK = 1e-9


@jit
def _series_value(zmom, tau, gamma, c, pmf, lq, uq, mom):
    """``pi(tau)`` from the central moments of ``W_tau`` (the series phase)."""
    ib = 1.0 / (tau + 1.0 + gamma + c)
    a = 0.0
    for m in range(NMOM - 1, -1, -1):
        a = zmom[m] - a * ib
    a *= ib
    val = 2.0 * a
    if gamma > 0.0:
        val += gamma * inv_mean(tau + gamma, pmf, lq, uq, c, mom)
    return val


@jit
def _chord_upper(m0, m1, lq, uq, c, a):
    """Upper bound of ``sum_k W(k) / (k + a)`` for ``W >= 0`` on ``[lq, uq]``.

    ``m0 = sum_k W(k)``, ``m1 = sum_k W(k) (k - c)``; ``1 / x`` lies below its chord
    on ``[lq + a, uq + a]`` (``lq + a > 0``).  The bound falls as ``a`` grows and
    rises with ``W``.
    """
    lo = lq + a
    hi = uq + a
    return (m0 * (lo + hi) - (m0 * (c + a) + m1)) / (lo * hi)


@jit(inline="always")
def _series_run(q, j0, j1, zmom, row, panels, work, evaluate, out, tau_lo, best, val):
    """Add the pixels ``j0 <= j < j1`` (at most :data:`TRNA_BLOCK`) to ``W``'s moments.

    ``zmom`` holds the central moments of ``W`` (the interpolated series phase);
    ``row = (summary, gamma, lq, uq, c, width, pmf, mom)``, ``work = (lw, cur, s_inc,
    s_irr, src, dq, db, inc, kind)``.  First the run's new values (a value equal to the
    pixel before reuses its increments: the same bits as computing them again) get
    their increments one after another in a loop of their own, then each pixel adds
    its own in rank order: the additions of the per-pixel loop, so the same bits.  A
    panel with irregular counts is done pixel by pixel.  With ``evaluate``,
    ``pi(tau)`` of every ``tau = j + 1 >= tau_lo`` goes to ``out`` (when it has room)
    and the first maximizer to ``(best, val)``, which are returned.  The tuples are
    taken apart once per run, and no call per pixel takes an array: each array handed
    on costs a reference count.
    """
    summary, gamma, lq, uq, c, width, pmf, mom = row
    built, nodes, bws, vals, regs, zregs, mregs, irr, n_irr = panels
    lw, cur, s_inc, s_irr, src, dq, db, inc, kind = work
    n_panel = built.shape[0]
    # the new values (each differs from the pixel before; no branch: whether a pixel
    # starts a new value is as good as random), and each pixel's
    n = 0
    prev = -1.0
    for j in range(j0, j1):
        qj = float(q[j])
        n += qj != prev
        dq[n - 1] = qj
        src[j - j0] = n - 1
        prev = qj
    # their increments (cheb_weights written out, its divisions apart from their
    # sum; the panel's rows taken when the panel changes); kind 0: nothing to add,
    # 1: inc[t], 2: a panel with irregular counts, pixel by pixel
    cb = -1
    nb = nodes[0]
    wb = bws[0]
    zb = zregs[0]
    mb = mregs[0]
    for t in range(n):
        qj = dq[t]
        if not qj > 0.0:
            kind[t] = 0
            continue
        b = min(int(qj / width), n_panel - 1)
        db[t] = b
        if not built[b]:
            use_panel(summary, qj, width, lq, uq, c, panels)
        if n_irr[b] > 0:
            kind[t] = 2
            continue
        if b != cb:
            cb = b
            nb = nodes[b]
            wb = bws[b]
            zb = zregs[b]
            mb = mregs[b]
        node = -1  # the first node equal to qj (its weights are a unit vector)
        for i in range(NCHEB - 1, -1, -1):
            if qj == nb[i]:
                node = i
        if node >= 0:
            for i in range(NCHEB):
                lw[i] = 0.0
            lw[node] = 1.0
        else:
            for i in range(NCHEB):
                lw[i] = wb[i] / (qj - nb[i])
            tot = 0.0
            for i in range(NCHEB):
                tot += lw[i]
            inv = 1.0 / tot
            for i in range(NCHEB):
                lw[i] *= inv
        z = 0.0
        for i in range(NCHEB):
            z += lw[i] * zb[i]
        kind[t] = 1 if z > 0.0 else 0
        f = qj / z
        for m in range(NMOM):
            acc = 0.0
            for i in range(NCHEB):
                acc += lw[i] * mb[i, m]
            inc[t, m] = f * acc
    last = -1.0
    some = False
    for j in range(j0, j1):
        k = src[j - j0]
        if kind[k] == 1:
            for m in range(NMOM):
                zmom[m] += inc[k, m]
        elif kind[k] == 2:  # a panel with irregular counts
            qj = dq[k]
            b = db[k]
            if qj != last:
                z = new_value(summary, qj, b, lq, nodes, bws, zregs, irr, n_irr, lw, cur)
                some = z > 0.0
                last = qj
                if some:
                    f = qj / z
                    for m in range(NMOM):
                        acc = 0.0
                        for i in range(NCHEB):
                            acc += lw[i] * mregs[b, i, m]
                        s_inc[m] = f * acc
                    for ii in range(n_irr[b]):
                        kk = irr[b, ii]
                        t = f * cur[kk]
                        dz = lq + kk - c
                        for m in range(NMOM):
                            s_irr[ii, m] = t
                            t *= dz
            if some:
                for m in range(NMOM):
                    zmom[m] += s_inc[m]
                for ii in range(n_irr[b]):
                    for m in range(NMOM):
                        zmom[m] += s_irr[ii, m]
        tau = j + 1
        if evaluate and tau >= tau_lo:
            # _series_value written out: a call per tau costs more than the sum
            ib = 1.0 / (tau + 1.0 + gamma + c)
            a = 0.0
            for m in range(NMOM - 1, -1, -1):
                a = zmom[m] - a * ib
            v = 2.0 * (a * ib)
            if gamma > 0.0:
                v += gamma * inv_mean(tau + gamma, pmf, lq, uq, c, mom)
            if tau - tau_lo < out.shape[0]:
                out[tau - tau_lo] = v
            if v > val:
                val = v
                best = tau
    return best, val


@jit
def trna_scan(q, summary, gamma, eps, tau_lo, tau_hi, out, full):
    """TRNA over ``tau`` in ``[tau_lo, tau_hi]``: the whole curve, or its maximum.

    Parameters
    ----------
    q, summary, gamma, eps
        As :func:`trna_dice_objective`.
    tau_lo, tau_hi : int
        Inclusive band, ``0 <= tau_lo <= tau_hi <= d`` (``tau_lo = 0`` unless
        ``full``).
    out : ndarray of float64
        With ``full``, receives ``pi(tau_lo + i)`` in ``out[i]`` (shape at least
        ``tau_hi - tau_lo + 1``); otherwise unused (may be empty).
    full : bool
        Evaluate every ``tau`` (:func:`trna_dice_objective`), or only the blocks of
        the series phase that can hold the maximum (:func:`trna_dice_best`).

    Returns
    -------
    w : int
        Width ``uq - lq + 1`` of the window used.
    best : int
        The first ``tau >= tau_lo`` with the largest objective.
    value : float
        ``pi(best)``.
    """
    lq, uq, pmf = gamma_pmf(summary, eps)
    w = uq - lq + 1
    mom = np.zeros(NMOM, dtype=np.float64)
    c = central_moments(pmf, lq, uq, mom)
    best = tau_lo
    val = -np.inf
    if tau_lo == 0:
        val = gamma * inv_mean(gamma, pmf, lq, uq, c, mom) if gamma > 0.0 else 0.0
        if full:
            out[0] = val
    if tau_hi == 0:
        return w, best, val
    var_min = summary[SUM_VAR] - 0.25
    interp = var_min >= TRNA_SIGMA_INTERP * TRNA_SIGMA_INTERP
    half_w = 0.5 * (uq - lq)
    wacc = np.zeros(w, dtype=np.float64)
    zmom = np.zeros(NMOM, dtype=np.float64)  # central moments of W (series phase)
    series = False
    nw = w if interp else 1
    nch = NCHEB if interp else 1
    width = min(1.0, PANEL_X * 2.0 * np.sqrt(var_min)) if interp else 1.0
    n_panel = int(np.ceil(1.0 / width))
    panels = (
        np.zeros(n_panel, dtype=np.bool_),  # built
        np.zeros((n_panel, nch)),  # nodes
        np.zeros((n_panel, nch)),  # barycentric weights
        np.zeros((n_panel, nch, nw)),  # node pmfs
        np.zeros((n_panel, nw), dtype=np.bool_),  # regular counts
        np.zeros((n_panel, nch)),  # node masses over the regular counts
        np.zeros((n_panel, nch, NMOM)),  # and their central moments
        np.zeros((n_panel, nw), dtype=np.int64),  # irregular counts per panel
        np.zeros(n_panel, dtype=np.int64),  # and their number
    )
    built, nodes, bws, vals, regs, zregs, mregs, irr, n_irr = panels
    lw = np.zeros(nch)
    comb = np.zeros(nw)
    cur = np.zeros(w, dtype=np.float64)
    last = -1.0
    js = -1  # where the series phase of the interpolated TRNA starts
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
            if interp:
                js = j
                break
        qj = float(q[j])
        if qj > 0.0:
            if interp:  # before the series phase
                b = use_panel(summary, qj, width, lq, uq, c, panels)
                z = new_value(summary, qj, b, lq, nodes, bws, zregs, irr, n_irr, lw, cur)
                if z > 0.0:
                    f = qj / z
                    for k in range(w):
                        comb[k] = 0.0
                    for i in range(NCHEB):
                        li = lw[i]
                        for k in range(w):
                            comb[k] += li * vals[b, i, k]
                    for k in range(w):
                        if regs[b, k]:
                            wacc[k] += f * comb[k]
                        else:
                            wacc[k] += f * cur[k]
            else:
                if qj != last:
                    loo_pmf_window(summary, qj, lq, uq, cur)
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
            if series:  # rows without interpolation: each new value costs O(w) anyway
                v = _series_value(zmom, tau, gamma, c, pmf, lq, uq, mom)
            else:
                a = 0.0
                base = lq + tau + 1.0 + gamma
                for k in range(w):
                    a += wacc[k] / (base + k)
                v = 2.0 * a
                if gamma > 0.0:
                    v += gamma * inv_mean(tau + gamma, pmf, lq, uq, c, mom)
            if full:
                out[tau - tau_lo] = v
            if v > val:
                val = v
                best = tau
    if js < 0:
        return w, best, val
    # the series phase of the interpolated TRNA
    row = (summary, gamma, lq, uq, c, width, pmf, mom)
    work = (
        lw,
        cur,
        np.zeros(NMOM),  # s_inc
        np.zeros((nw, NMOM)),  # s_irr
        np.empty(TRNA_BLOCK, dtype=np.int64),  # src
        np.empty(TRNA_BLOCK),  # dq
        np.empty(TRNA_BLOCK, dtype=np.int64),  # db
        np.empty((TRNA_BLOCK, NMOM)),  # inc
        np.empty(TRNA_BLOCK, dtype=np.int8),  # kind
    )
    nblk = (tau_hi - js + TRNA_BLOCK - 1) // TRNA_BLOCK
    # full: one pass that evaluates every tau.  Otherwise a first pass keeps each
    # block's moments at its start and its bound, and evaluates the objective at its
    # last tau only (those values, and the ones before, give the floor); a second
    # evaluates the blocks that may hold the maximum, from their moments, in order.
    # One call site of _series_run, and no slice assignment (numba would compile the
    # callee once per site's argument types, and a shape check with its message)
    snaps = np.empty((0 if full else nblk, NMOM))
    bounds = np.empty(0 if full else nblk)
    floor = val
    second = False
    blk = 0
    while True:
        if blk == nblk:
            if full or second:
                break
            second = True
            blk = 0
        if second:
            if bounds[blk] * (1.0 + _TRNA_SLACK) < floor:
                blk += 1
                continue
            for m in range(NMOM):
                zmom[m] = snaps[blk, m]
        elif not full:
            for m in range(NMOM):
                snaps[blk, m] = zmom[m]
        j0 = js + blk * TRNA_BLOCK
        j1 = min(j0 + TRNA_BLOCK, tau_hi)
        evaluate = full or second
        best, val = _series_run(
            q, j0, j1, zmom, row, panels, work, evaluate, out, tau_lo, best, val
        )
        if not evaluate:
            floor = max(floor, _series_value(zmom, j1, gamma, c, pmf, lq, uq, mom))
            # every tau of the block: W at most the block's last, a = tau + 1 + gamma
            # at least the first's (the bound falls with a)
            bound = 2.0 * _chord_upper(zmom[0], zmom[1], lq, uq, c, j0 + 2.0 + gamma)
            if gamma > 0.0:
                bound += gamma * _chord_upper(mom[0], mom[1], lq, uq, c, j0 + 1.0 + gamma)
            bounds[blk] = bound
        blk += 1
    return w, best, val


@jit
def trna_dice_objective(q, summary, gamma, eps, tau_lo, tau_hi, out):
    """TRNA objective of expected Dice for ``tau`` in ``[tau_lo, tau_hi]``.

    Parameters
    ----------
    q, summary, gamma, eps, tau_lo, tau_hi, out
        As :func:`rankseg.kernels.ba_trna.ba_dice_objective` (``q`` a descending
        prefix, ``M >= tau_hi``; ``q[:tau_lo]`` in any order: every pixel of rank
        ``<= tau_hi`` enters ``W``).

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
    w, best, val = trna_scan(q, summary, gamma, eps, tau_lo, tau_hi, out, True)
    return w


@jit
def trna_dice_best(q, summary, gamma, eps, tau_hi):
    """First maximizer of the TRNA objective over ``tau`` in ``[0, tau_hi]``.

    Parameters
    ----------
    q, summary, gamma, eps
        As :func:`trna_dice_objective` (``q`` descending up to ``tau_hi``).
    tau_hi : int
        Last ``tau`` searched, ``0 <= tau_hi <= d``.

    Returns
    -------
    best : int
        The first ``tau`` with the largest objective.
    value : float
        ``pi(best)``, the value :func:`trna_dice_objective` gives it.

    Notes
    -----
    Every pixel up to ``tau_hi`` still adds its increments to ``W``'s moments, in
    order, as :func:`trna_dice_objective` adds them.  In the series phase of the
    interpolated TRNA the objective is evaluated at each block's last ``tau`` only
    (:data:`TRNA_BLOCK` pixels): those values give a floor.  ``sum_k W(k) / (k + a)``
    is at most its chord bound (:func:`_chord_upper`), which falls with ``a`` and rises
    with ``W``; over a block it is at most the bound with the block's last ``W`` and
    first ``tau``.  A block whose bound (plus :data:`_TRNA_SLACK`) stays below the
    floor cannot hold the maximum; the others are evaluated again from their first
    moments, with the same operations and values, so the result is that of the full
    scan (``tests/test_ba_trna_kernels.py``).
    """
    dummy = np.empty(0)
    w, best, val = trna_scan(q, summary, gamma, eps, np.int64(0), tau_hi, dummy, False)
    return best, val


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
