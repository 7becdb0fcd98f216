"""The blocked certified-range scan of the exact solver against the plain scan.

``solver_passes._certified_range`` sums ``S_τ`` once and skips whole blocks of τ whose
bound cannot reach the running maximum or the threshold.  Skipping must not change the
result: the oracle here is the plain scan over every τ, written from the same bounds
(``exact_upper`` and the RMA objective), and the ranges must be equal, not close.
"""

from __future__ import annotations

import numpy as np
import pytest

from rankseg._policies import DICE, IOU
from rankseg.kernels.exact import new_summary, row_summary
from rankseg.kernels.rma import rma_objective
from rankseg.kernels.solver_passes import CERT_BLOCK, _block_upper, _certified_range, exact_upper

GAMMAS = [0.0, 0.3, 1.0, 25.0]


def plain_range(metric, q, summary, gamma, tau_hi):
    """Every τ visited, in order: the scan the blocked one replaces."""
    mu = summary[1]
    var = summary[2]
    best = 0.0
    s = 0.0
    for k in range(1, tau_hi + 1):
        s += q[k - 1]
        best = max(best, rma_objective(metric, s, k, mu, gamma))
    lo, hi = tau_hi + 1, 0
    s = 0.0
    for k in range(1, tau_hi + 1):
        s += q[k - 1]
        if exact_upper(metric, s, k, mu, var, gamma) >= best * (1.0 - 1e-9):
            lo = min(lo, k)
            hi = k
    return lo, hi


def _rows(rng):
    d = 3000
    yield "uniform", rng.random(d)
    yield "background", 1.0 - rng.random(d) * 0.05
    yield "mostly_sure", np.concatenate([np.ones(2000), rng.random(1000) * 1e-3])
    yield "sparse", rng.beta(0.05, 2.0, d)
    yield "tiny", rng.random(d) * 1e-6
    yield "ties", np.repeat(rng.random(30), 100)
    yield "two_levels", np.concatenate([np.full(900, 0.9), np.full(2100, 0.2)])
    yield "short", rng.random(CERT_BLOCK + 1)
    yield "one", np.array([0.7])
    # a tail mean crossing 18.5 inside a block (IoU's Chernoff bound is smallest there)
    yield "tail_near_18", np.concatenate([np.ones(500), np.full(60, 0.4), np.zeros(10)])


@pytest.mark.parametrize("metric", [DICE, IOU])
@pytest.mark.parametrize("gamma", GAMMAS)
def test_blocked_range_equals_plain_scan(metric, gamma):
    rng = np.random.default_rng(7)
    for name, p in _rows(rng):
        q = np.sort(p.astype(np.float64))[::-1].copy()
        summary = row_summary(q, new_summary())
        for tau_hi in {q.size, max(q.size // 2, 1), min(q.size, CERT_BLOCK)}:
            got = _certified_range(metric, q, summary, gamma, tau_hi)
            want = plain_range(metric, q, summary, gamma, tau_hi)
            assert tuple(got) == want, (name, tau_hi)


@pytest.mark.parametrize("metric", [DICE, IOU])
def test_blocked_range_skips_on_a_long_row(metric):
    """A row like a CT background (most voxels candidates): the band is narrow."""
    rng = np.random.default_rng(3)
    q = np.sort(np.concatenate([1.0 - rng.random(60_000) * 0.02, rng.random(4_000) * 0.5]))[::-1]
    summary = row_summary(q, new_summary())
    lo, hi = _certified_range(metric, q, summary, 0.0, q.size)
    assert (lo, hi) == plain_range(metric, q, summary, 0.0, q.size)
    assert 1 <= lo <= hi and hi - lo < q.size // 20


@pytest.mark.parametrize("gamma", GAMMAS)
def test_block_upper_bounds_every_tau_of_the_block(gamma):
    """``_block_upper`` is at least ``exact_upper`` at every (S_τ, τ) the block holds."""
    rng = np.random.default_rng(11)
    for metric in (DICE, IOU):
        for _ in range(200):
            mu = float(rng.choice([5.0, 19.0, 40.0, 1e3, 1e5]) * rng.random())
            var = mu * float(rng.random())
            k = int(rng.integers(1, 400))
            s_lo = float(rng.random()) * (mu + 30.0)
            s_hi = s_lo + float(rng.random()) * 40.0
            bound = _block_upper(metric, s_lo, s_hi, k, mu, var, gamma)
            for s in np.linspace(s_lo, s_hi, 17):
                for tau in (k, k + 1, k + 7, k + CERT_BLOCK - 1):
                    assert exact_upper(metric, s, tau, mu, var, gamma) <= bound * (1 + 1e-12)
