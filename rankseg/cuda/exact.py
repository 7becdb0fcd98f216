"""GPU passes of the exact solver: twin of ``rankseg/kernels/exact.py``.

* :func:`summary_kernel` gives, per (row, tile), the sums ``[mu, var, m3, P_1, ...,
  P_K]`` of the tile's pixels (``var = sum p (1 - p)``, ``m3 = sum p (1 - p) (1 - 2
  p)``, ``P_k = sum p**k``, ``K = NPOW``); the tiles are folded in a fixed order by
  :func:`rankseg.cuda.stats.reduce_parts_kernel`.
* :func:`quadrature_kernel` evaluates the exact objective ``π(τ)`` by the
  generating-function quadrature of the CPU's ``_objective`` over each row's
  certified range (:func:`rankseg.cuda.solver_passes.certified_range_kernel`), and ``π(0)``
  when ``γ > 0``, and writes the first maximizer's cut to the per-row record.  One
  block per row; the quadrature nodes are listed by one thread (the same sequence
  as on the CPU), evaluated in parallel (a thread per node: the per-node work, the
  device twin of the CPU's ``_node``, and the sweep over ``τ``), and their
  contributions summed per ``τ`` in the CPU's node order, ``TAU_CHUNK`` values of
  ``τ`` at a time.

Sums are taken in another order than on the CPU and the GPU's ``exp`` / ``log``
round differently, so ``π`` may differ in the last bits: the backends agree except
on numerical ties of the objective (docs/gpu.rst).  A row whose quadrature asks for
more of the row than its candidates (the CPU's ``p_need``) or needs more than
``MAX_NODES`` nodes is flagged ``R_OVER = 1`` and solved by the host.
"""

from __future__ import annotations

import math

from numba import cuda, float64, int64

from rankseg._policies import IOU
from rankseg.cuda._block import block_argmax, block_max, block_scan, block_sum
from rankseg.cuda._config import MAX_SORT_THREADS, MAX_THREADS, device_twin
from rankseg.cuda._dtype import as_f64
from rankseg.cuda.rma_passes import (
    count_above,
)
from rankseg.cuda.stats import (
    R_FULL,
    R_KIN,
    R_OVER,
    R_SCORE,
    R_T,
    R_TAU,
    tile_of,
)
from rankseg.kernels import exact as _cpu
from rankseg.kernels import quadrature as _quad
from rankseg.kernels.quadrature import TAIL_POINTS
from rankseg.kernels.summary import DEFAULT_NPOW, SUM_MU

__all__ = ["MAX_NODES", "NPOW", "NSUM", "TAU_CHUNK", "quadrature_kernel", "summary_kernel"]

#: power sums kept (the CPU solvers' default)
NPOW = DEFAULT_NPOW
#: columns of a tile's partial summary
NSUM = 3 + NPOW
#: most quadrature nodes of one band (more: the row is solved on the host)
MAX_NODES = 1024
#: values of ``τ`` evaluated per step of the node sweep (at most the block size)
TAU_CHUNK = 64
_NTOP = NPOW + 1  # top-block power sums and maximum

_tail_origin = device_twin(_cpu.tail_origin)
_tail_node = device_twin(_quad.tail_node)
_lattice_node = device_twin(_quad.lattice_node)
#: the node sequence (the CPU's ``next_node``, same code)
next_node = device_twin(_quad.next_node, tail_node=_tail_node, lattice_node=_lattice_node)
_node_bound = device_twin(_cpu.node_bound)
_log1m = device_twin(_cpu.log1m)
_ratio = device_twin(_cpu.ratio)
_shrink = device_twin(_cpu.shrink)
_need = device_twin(_cpu.need)
_g0_term = device_twin(_cpu.g0_term)
#: the per-tau steps of a node (the CPU's ``_accumulate``, same code)
_iou_step = device_twin(_cpu.iou_step, shrink=_shrink, as_f64=as_f64)
_dice_step = device_twin(_cpu.dice_step, ratio=_ratio, as_f64=as_f64)
#: ``(x, log G, H_t0)`` at one node (the CPU's ``_node``, same code)
node = device_twin(_cpu.node_term, log1m=_log1m, ratio=_ratio, as_f64=as_f64)


@cuda.jit
def summary_kernel(x, tile, part):
    """``part[r, k]`` = ``(sum p, sum p(1-p), sum p(1-p)(1-2p), P_1..P_K)`` of tile ``k``."""
    acc = cuda.local.array(NSUM, float64)
    buf = cuda.shared.array(MAX_THREADS, float64)
    tid = cuda.threadIdx.x
    nt = cuda.blockDim.x
    nrow, d = x.shape
    ntile = part.shape[1]
    for w in range(cuda.blockIdx.x, nrow * ntile, cuda.gridDim.x):
        r, k, j0, j1 = tile_of(w, ntile, tile, d)
        for c in range(NSUM):
            acc[c] = 0.0
        for j in range(j0 + tid, j1, nt):
            p = as_f64(x[r, j])
            v = p * (1.0 - p)
            acc[0] += p
            acc[1] += v
            acc[2] += v * (1.0 - 2.0 * p)
            t = p
            for kk in range(NPOW):
                acc[3 + kk] += t
                t *= p
        for c in range(NSUM):
            s = block_sum(buf, acc[c])
            if tid == 0:
                part[r, k, c] = s


@cuda.jit(device=True)
def _count_above_from(q, lo, hi, cut):
    """How many of the descending ``q[lo:hi]`` exceed ``cut`` (binary search)."""
    a = lo
    b = hi
    while a < b:
        mid = (a + b) // 2
        if float64(q[mid]) > cut:
            a = mid + 1
        else:
            b = mid
    return a - lo


@cuda.jit(device=True)
def _top_block(q, m, t0, top_pow, buf):
    """Block sums of the top block ``q[:t0]``: power sums and maximum into ``top_pow``.

    Returns ``(S_t0, min of the block (1 if empty), ones in q[:m])``, as the CPU's
    ``_block_power_sums`` plus the count of ``p = 1`` pixels (a prefix of ``q``).
    """
    tid = cuda.threadIdx.x
    nt = cuda.blockDim.x
    loc = cuda.local.array(NPOW, float64)
    for k in range(NPOW):
        loc[k] = 0.0
    s = 0.0
    vmax = 0.0
    vmin = 1.0
    for j in range(tid, t0, nt):
        p = float64(q[j])
        s += p
        vmax = max(vmax, p)
        vmin = min(vmin, p)
        t = p
        for k in range(NPOW):
            loc[k] += t
            t *= p
    ones = 0.0
    for j in range(tid, m, nt):
        if float64(q[j]) == 1.0:
            ones += 1.0
    for k in range(NPOW):
        tot = block_sum(buf, loc[k])
        if tid == 0:
            top_pow[k] = tot
    vmax = block_max(buf, vmax)
    if tid == 0:
        top_pow[NPOW] = vmax
    cuda.syncthreads()
    return block_sum(buf, s), -block_max(buf, -vmin), int64(block_sum(buf, ones))


@cuda.jit(device=True)
def _list_nodes(nodes, blk, tau_hi, gamma, mu, c_eff, mu_lb, scale, has_rest, rest_max):
    """Write the CPU's node sequence into ``nodes[blk]`` (``s``, weight; ``s = 0``: g(0)).

    The node helpers are the CPU's own (device twins).  Returns ``(number of nodes,
    p_need)``; one thread.
    """
    rho = 10.0 ** (-16.0 / NPOW)
    i0, s0 = _tail_origin(tau_hi, gamma, mu)
    nn = 0
    p_need = 0.0
    cap = nodes.shape[1]
    pos = (TAIL_POINTS - 1, i0 + 1)
    while True:
        s, wgt, pos, done = next_node(pos, s0, (c_eff, mu_lb, scale))
        if done:
            break
        if s != 0.0:
            p_need = _need(rho / -math.expm1(-s), has_rest, rest_max, p_need)
        if nn < cap:
            nodes[blk, nn, 0] = s
            nodes[blk, nn, 1] = wgt
        nn += 1
    return nn, p_need


@cuda.jit(device=True)
def _band_best(q, m, summary, mode, gamma, d, tau_lo, tau_hi, sh, nodes, state, contrib, bufs):
    """First maximizer of the exact ``π`` over ``[tau_lo, tau_hi]``, by the whole block.

    ``tau_lo >= 1`` or ``gamma > 0``.  ``sh = (top_pow, s_chunk, misc)`` shared
    arrays, ``bufs = (buf, ibuf)`` the block's reduction buffers; ``nodes``,
    ``state`` and ``contrib`` this block's slices of global scratch.  Returns
    ``(π*, τ*, p_need, too_many_nodes)``; the steps follow the CPU's ``_objective``.
    """
    top_pow, sch, misc = sh
    buf, ibuf = bufs
    tid = cuda.threadIdx.x
    nt = cuda.blockDim.x
    blk = cuda.blockIdx.x
    iou = mode == IOU
    t0 = tau_lo
    mu = summary[SUM_MU]
    s_t0, top_min, n_one = _top_block(q, m, t0, top_pow, buf)
    rest_max = float64(q[m - 1]) if m > t0 else top_min
    has_rest = m < d
    s_hi = 0.0  # S at tau_hi
    for j in range(t0 + tid, min(tau_hi, m), nt):
        s_hi += float64(q[j])
    s_hi = s_t0 + block_sum(buf, s_hi)
    scale, mu_lb, c_eff = _node_bound(mode, s_hi, mu, n_one, t0, tau_hi, gamma)
    if scale <= 0.0:
        return 0.0, tau_lo, 0.0, False
    if tid == 0:
        nn, p_need = _list_nodes(
            nodes, blk, tau_hi, gamma, mu, c_eff, mu_lb, scale, has_rest, rest_max
        )
        misc[0] = nn
        misc[1] = p_need
    cuda.syncthreads()
    nn = int64(misc[0])
    p_need = misc[1]
    cuda.syncthreads()
    if nn > nodes.shape[1]:
        return 0.0, tau_lo, p_need, True
    rho = 10.0 ** (-16.0 / NPOW)
    ws = cuda.local.array((2, NPOW), float64)
    for k in range(tid, nn, nt):  # the node's pixel part: x, log G, H_t0, first weight
        s = nodes[blk, k, 0]
        if s == 0.0:
            continue
        cut = rho / -math.expm1(-s)
        m_sorted = _count_above_from(q, t0, m, cut)
        x, logg, hh = node(s, q, t0, m_sorted, top_pow, summary, ws, mode)
        base = nodes[blk, k, 1] * math.exp(logg - (t0 + gamma) * s)
        state[blk, k, 0] = x
        state[blk, k, 1] = logg
        state[blk, k, 2] = base
        state[blk, k, 3] = hh
        state[blk, k, 4] = 0.0 if base != 0.0 else -1.0  # steps since refresh; -1: done
    ch = min(TAU_CHUNK, nt)
    carry = s_t0
    best = -math.inf
    best_tau = int64(-1)
    for c0 in range(t0, tau_hi + 1, ch):
        cl = min(ch, tau_hi + 1 - c0)
        v = float64(q[c0 + tid]) if tid < cl and c0 + tid < m else 0.0
        incl, tot = block_scan(buf, v)
        if tid < cl:
            sch[tid] = carry + incl - v  # S_tau for tau = c0 + tid
        carry += tot
        cuda.syncthreads()
        for k in range(tid, nn, nt):
            s = nodes[blk, k, 0]
            wgt = nodes[blk, k, 1]
            if s == 0.0:
                for ll in range(cl):
                    contrib[blk, k, ll] = _g0_term(mode, wgt, sch[ll], gamma)
                continue
            x = state[blk, k, 0]
            logg = state[blk, k, 1]
            base = state[blk, k, 2]
            hh = state[blk, k, 3]
            cnt = state[blk, k, 4]
            for ll in range(cl):  # the CPU's _accumulate, one tau at a time
                tau = c0 + ll
                if cnt < 0.0:
                    contrib[blk, k, ll] = 0.0
                    continue
                if iou:
                    contrib[blk, k, ll] = base
                    base = _iou_step(q, m, tau, x, base)
                else:
                    contrib[blk, k, ll] = base * (2.0 * hh + gamma)
                    base, hh, cnt = _dice_step(q, m, tau, x, (s, wgt, logg), gamma, (base, hh, cnt))
                if base == 0.0:
                    cnt = -1.0
            state[blk, k, 2] = base
            state[blk, k, 3] = hh
            state[blk, k, 4] = cnt
        cuda.syncthreads()
        val = -math.inf
        if tid < cl:
            acc = 0.0
            for k in range(nn):  # the CPU's order of the nodes
                acc += contrib[blk, k, tid]
            if iou:
                acc *= sch[tid] + gamma
            val = acc
        bv, bi = block_argmax(buf, ibuf, val, int64(c0 + tid))
        if bv > best:
            best = bv
            best_tau = bi
    return best, best_tau, p_need, False


@cuda.jit
def quadrature_kernel(q, first, rows, rng, summaries, params, nodes, state, contrib, rowd, jcut):
    """Exact cut of each row ``r = rows[i]`` from its sorted candidates.

    ``q[first[i]:first[i + 1]]`` holds the row's candidates in descending order,
    ``rng[i]`` its certified range (:func:`rankseg.cuda.solver_passes.certified_range_kernel`),
    ``summaries[r]`` its whole-row summary; ``params = (metric, gamma, d)``.
    ``nodes`` ``(grid, MAX_NODES, 2)``, ``state`` ``(grid, MAX_NODES, 5)`` and
    ``contrib`` ``(grid, MAX_NODES, TAU_CHUNK)`` are scratch, one slice per block.
    The first maximizer over ``π(0)`` and the range (the CPU's ``_solve_row``) gives
    ``R_TAU, R_T, R_SCORE, R_KIN, R_FULL`` of ``rowd[r]`` and ``jcut[r]`` (-1: empty,
    ``d``: every value equal to ``t`` selected, -2: a tie straddles the cut);
    ``R_OVER = 1`` asks the host to solve the row (p_need, or too many nodes).
    """
    top_pow = cuda.shared.array(_NTOP, float64)
    sch = cuda.shared.array(TAU_CHUNK, float64)
    misc = cuda.shared.array(2, float64)
    buf = cuda.shared.array(MAX_SORT_THREADS, float64)
    ibuf = cuda.shared.array(MAX_SORT_THREADS, int64)
    metric, gamma, d = params
    sh = (top_pow, sch, misc)
    bufs = (buf, ibuf)
    for i in range(cuda.blockIdx.x, rows.shape[0], cuda.gridDim.x):
        r = rows[i]
        a = first[i]
        m = first[i + 1] - a
        qa = q[a : a + m]
        summary = summaries[r]
        best = 0.0
        best_tau = int64(0)
        p_need = 0.0
        over = False
        if gamma > 0.0:  # pi(0) = 0 when gamma = 0 (0/0 := 0)
            best, _, p_need, over = _band_best(
                qa, m, summary, metric, gamma, d, 0, 0, sh, nodes, state, contrib, bufs
            )
        lo = rng[i, 0]
        hi = rng[i, 1]
        if lo <= hi:
            val, tau, pn, ov = _band_best(
                qa, m, summary, metric, gamma, d, lo, hi, sh, nodes, state, contrib, bufs
            )
            if val > best:
                best = val
                best_tau = tau
            p_need = max(p_need, pn)
            over = over or ov
        t = math.inf
        k_in = int64(0)
        full = True
        if best_tau > 0:
            t = float64(qa[best_tau - 1])
            full = best_tau == m or float64(qa[best_tau]) != t
            k_in = best_tau - count_above(buf, qa, m, t)
        if cuda.threadIdx.x == 0:
            rowd[r, R_TAU] = best_tau
            rowd[r, R_T] = t
            rowd[r, R_SCORE] = best
            rowd[r, R_KIN] = k_in
            rowd[r, R_FULL] = 1.0 if full else 0.0
            rowd[r, R_OVER] = 1.0 if (p_need > 0.0 or over) else 0.0
            jcut[r] = -1 if best_tau == 0 else (d if full else -2)
        cuda.syncthreads()
