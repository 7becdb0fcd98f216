"""Generating-function quadrature (kernels/exact.py) against the Poisson-binomial DP.

Measured while writing these tests: quadrature vs a long-double DP oracle 1.1e-15,
quadrature vs the float64 DP <= 2e-14 (the DP's own rounding dominates for d in the
thousands).  The assertions use 1e-12.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rankseg.kernels.exact import (
    DEFAULT_NPOW,
    SUM_D,
    SUM_HEAD,
    SUM_M3,
    SUM_MU,
    SUM_VAR,
    exact_dice_objective,
    exact_iou_objective,
    exact_reciprocal_moments,
    new_summary,
    row_summary,
)

from naive import brute_force_best, exact_pi_enum, poisson_binomial_pmf, rma_objective
from poisson_binomial import exact_dice_objective_dp, exact_iou_objective_dp

GAMMAS = [0.0, 0.5, 1.0, 10.0]
TOL = 1e-12


@pytest.fixture
def rng():
    return np.random.default_rng(59)


def _kernels(metric):
    if metric == "dice":
        return exact_dice_objective, exact_dice_objective_dp
    return exact_iou_objective, exact_iou_objective_dp


def _full(p, metric, gamma, npow=DEFAULT_NPOW):
    q = np.sort(np.asarray(p, dtype=np.float64))[::-1].copy()
    sm = row_summary(q, new_summary(npow))
    out = np.zeros(q.size + 1)
    quad, _ = _kernels(metric)
    assert quad(q, sm, gamma, 0, q.size, out) == 0.0
    return out


def _rows(rng, d):
    yield "uniform", rng.random(d)
    yield "mu_tiny", rng.random(d) * 1e-4
    yield "mu_near_d", 1.0 - rng.random(d) * 1e-4
    yield "skew_small", rng.beta(0.05, 2.0, d)
    yield "skew_large", rng.beta(2.0, 0.05, d)
    p = rng.random(d)
    p[rng.random(d) < 0.3] = 0.0
    p[rng.random(d) < 0.3] = 1.0
    yield "zero_one", p
    yield "object", np.r_[1.0 - rng.random(d // 10) * 1e-3, rng.random(d - d // 10) * 1e-3]
    yield "logistic", 1.0 / (1.0 + np.exp(-rng.normal(0.0, 6.0, d)))
    yield "all_one", np.ones(d)
    yield "all_zero", np.zeros(d)


def test_row_summary_matches_numpy(rng):
    p = rng.random(10_007)
    p[:50] = 1.0
    p[50:100] = 0.0
    for dtype in (np.float64, np.float32, np.float16):
        x = p.astype(dtype)
        xv = x.view(np.uint16) if dtype == np.float16 else x
        sm = row_summary(xv, new_summary(16))
        x64 = x.astype(np.float64)
        v = x64 * (1 - x64)
        assert sm[SUM_D] == x.size
        ref = [x64.sum(), v.sum(), (v * (1 - 2 * x64)).sum()]
        np.testing.assert_allclose(sm[[SUM_MU, SUM_VAR, SUM_M3]], ref, rtol=1e-13)
        pk = [np.sum(x64**k) for k in range(1, 17)]
        np.testing.assert_allclose(sm[SUM_HEAD:], pk, rtol=1e-13)
    sm0 = row_summary(p, new_summary(0))
    assert sm0.shape == (SUM_HEAD,)
    assert sm0[SUM_MU] == pytest.approx(p.sum(), rel=1e-14)


@settings(deadline=None, max_examples=30)
@given(
    st.lists(
        st.one_of(st.sampled_from([0.0, 1.0, 0.5]), st.floats(0.0, 1.0, allow_subnormal=False)),
        min_size=1,
        max_size=8,
    ),
    st.sampled_from(GAMMAS),
)
def test_quadrature_matches_enumeration_and_brute_force(p, gamma):
    p = np.array(p)
    for metric in ("dice", "iou"):
        pi = _full(p, metric, gamma)
        np.testing.assert_allclose(pi, exact_pi_enum(p, metric, gamma), rtol=0, atol=TOL)
        # the best top-tau mask reaches the best expected metric over all 2^d masks
        best, _ = brute_force_best(p, metric, gamma)
        assert pi.max() == pytest.approx(best, abs=TOL)


@pytest.mark.parametrize("metric", ["dice", "iou"])
@pytest.mark.parametrize("d", [1, 3, 40, 700])
def test_quadrature_matches_dp_full_range(rng, metric, d):
    _, dp = _kernels(metric)
    for name, p in _rows(rng, d):
        q = np.sort(p)[::-1].copy()
        for gamma in GAMMAS:
            ref = dp(q, gamma, d)
            err = np.abs(_full(p, metric, gamma) - ref).max()
            assert err < TOL, (name, gamma, err)


@pytest.mark.parametrize("metric", ["dice", "iou"])
def test_quadrature_matches_dp_large_rows(rng, metric):
    # d in the thousands, bands only (the DP is the slow part)
    quad, dp = _kernels(metric)
    d = 3000
    for name, p in _rows(rng, d):
        q = np.sort(p)[::-1].copy()
        sm = row_summary(p, new_summary())
        gamma = [0.0, 1.0][len(name) % 2]
        ref = dp(q, gamma, d)
        for lo, hi in [(0, 30), (d // 2 - 20, d // 2 + 20), (d - 25, d)]:
            out = np.zeros(hi - lo + 1)
            assert quad(q, sm, gamma, lo, hi, out) == 0.0
            err = np.abs(out - ref[lo : hi + 1]).max()
            assert err < TOL, (name, lo, err)


@pytest.mark.parametrize("metric", ["dice", "iou"])
@pytest.mark.parametrize("npow", [1, 4, 8, 12, 16])
def test_prefix_protocol(rng, metric, npow):
    """Short prefixes with a shuffled top block; p_need tells how far to grow them."""
    quad, dp = _kernels(metric)
    reruns = 0
    for d in (50, 600):
        for name, p in _rows(rng, d):
            p = p.astype(np.float32)  # the summary reads float32 rows
            q = np.sort(p.astype(np.float64))[::-1].copy()
            sm = row_summary(p, new_summary(npow))
            for gamma in (0.0, 0.5, 10.0):
                ref = dp(q, gamma, d)
                lo = int(rng.integers(0, d + 1))
                hi = int(min(d, lo + rng.integers(0, 40)))
                m_len = max(1, min(d, hi + int(rng.integers(0, 10))))
                for _ in range(3):
                    pref = q[:m_len].copy()
                    rng.shuffle(pref[:lo])  # the top block may come in any order
                    out = np.zeros(hi - lo + 1)
                    p_need = quad(pref, sm, gamma, lo, hi, out)
                    if p_need == 0.0:
                        break
                    assert m_len < d
                    reruns += 1
                    # grow until the last entry is <= p_need
                    m_len = min(d, int(np.sum(q > p_need)) + 1)
                else:
                    raise AssertionError("p_need did not converge")
                err = np.abs(out - ref[lo : hi + 1]).max()
                assert err < TOL, (name, d, gamma, lo, hi, err)
    assert reruns > 0 or npow >= 12


@pytest.mark.parametrize("metric", ["dice", "iou"])
def test_float32_prefix_is_widened(rng, metric):
    """A float32 prefix (the GPU's candidate buffer) gives the float64 prefix's values:
    every pixel is read as float64 before its powers and logarithms are taken."""
    quad, _ = _kernels(metric)
    for d in (30, 400):
        for name, p in _rows(rng, d):
            q32 = np.sort(p.astype(np.float32))[::-1].copy()
            q64 = q32.astype(np.float64)
            sm = row_summary(q32, new_summary())
            for gamma in (0.0, 1.0):
                want = np.zeros(d + 1)
                got = np.zeros(d + 1)
                assert quad(q64, sm, gamma, 0, d, want) == 0.0
                assert quad(q32, sm, gamma, 0, d, got) == 0.0
                np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-300, err_msg=name)


@pytest.mark.parametrize("metric", ["dice", "iou"])
def test_band_equals_full_range(rng, metric):
    quad, _ = _kernels(metric)
    p = rng.beta(0.3, 0.3, 500)
    q = np.sort(p)[::-1].copy()
    sm = row_summary(p, new_summary())
    for gamma in GAMMAS:
        full = np.zeros(501)
        quad(q, sm, gamma, 0, 500, full)
        for lo, hi in [(0, 0), (0, 5), (7, 7), (100, 180), (499, 500), (500, 500)]:
            out = np.full(hi - lo + 3, -1.0)
            quad(q[: max(hi, 1)].copy(), sm, gamma, lo, hi, out)
            np.testing.assert_allclose(out[: hi - lo + 1], full[lo : hi + 1], rtol=0, atol=TOL)
            assert np.all(out[hi - lo + 1 :] == -1.0)


@pytest.mark.parametrize("metric", ["dice", "iou"])
def test_zero_zero_convention_and_empty_rows(metric):
    quad, _ = _kernels(metric)
    q = np.zeros(8)
    sm = row_summary(q, new_summary())
    out = np.ones(9)
    quad(q, sm, 0.0, 0, 8, out)
    np.testing.assert_array_equal(out, 0.0)  # nothing to find: every volume scores 0
    quad(q, sm, 2.0, 0, 0, out)
    assert out[0] == pytest.approx(1.0, abs=TOL)  # empty vs empty, with smoothing
    # gamma = 0 and tau = 0 on a non-empty row: 0 by convention
    q = np.array([0.9, 0.2])
    sm = row_summary(q, new_summary())
    out = np.ones(1)
    quad(q, sm, 0.0, 0, 0, out)
    assert out[0] == 0.0


def test_tiny_smoothing(rng):
    # gamma -> 0 stretches the integrand to s ~ 1/gamma; the lattice follows
    p = rng.random(30) * 0.05
    q = np.sort(p)[::-1].copy()
    for gamma in (1e-3, 1e-6):
        for metric in ("dice", "iou"):
            quad, dp = _kernels(metric)
            out = np.zeros(31)
            quad(q, row_summary(p, new_summary()), gamma, 0, 30, out)
            np.testing.assert_allclose(out, dp(q, gamma, 30), rtol=0, atol=TOL)


@pytest.mark.parametrize("metric", ["dice", "iou"])
@pytest.mark.parametrize("scale", [1e-6, 1e-12, 1e-20])
def test_tiny_objectives_keep_their_relative_precision(rng, metric, scale):
    """Rows of tiny probabilities: the objective itself is tiny, and still exact.

    The node tolerance is absolute (the objective lies in [0, 1]); IoU's objective is
    ``S_tau + gamma`` times an integral of order one, so its nodes are bounded on the
    integral, or a row with S ~ 1e-20 would lose most of its value.
    """
    quad, dp = _kernels(metric)
    p = rng.random(25) * scale
    q = np.sort(p)[::-1].copy()
    out = np.zeros(26)
    quad(q, row_summary(p, new_summary()), 0.0, 0, 25, out)
    want = dp(q, 0.0, 25)
    assert want[1:].min() > 0.0
    np.testing.assert_allclose(out[1:], want[1:], rtol=1e-12)


def test_reciprocal_moments_match_pmf(rng):
    worst = 0.0
    for d in (1, 5, 60, 700):
        for _, p in _rows(rng, d):
            q = np.sort(p)[::-1].copy()
            sm = row_summary(p, new_summary())
            f = poisson_binomial_pmf(q)
            k = np.arange(d + 1)
            for c0 in (1e-3, 0.5, 1.0, 7.0):
                out = np.zeros(30)
                assert exact_reciprocal_moments(q, sm, c0, 30, out) == 0.0
                ref = np.array([np.sum(f / (c0 + i + k)) for i in range(30)])
                worst = max(worst, float(np.max(np.abs(out - ref) / ref)))
    # measured: 1.2e-15 relative
    assert worst < 1e-13


@pytest.mark.parametrize("gamma", [0.0, 0.5, 10.0])
def test_bounds_certify_a_search_band(rng, gamma):
    """RMA <= exact <= the upper bounds documented in exact_reciprocal_moments."""
    for i in range(60):
        d = int(rng.integers(2, 120))
        p = [rng.random(d), rng.beta(0.2, 2.0, d), rng.beta(2.0, 0.2, d)][i % 3]
        q = np.sort(p)[::-1].copy()
        sm = row_summary(p, new_summary())
        mu, var = sm[SUM_MU], sm[SUM_VAR]
        tau = np.arange(d + 1)
        s = np.r_[0.0, np.cumsum(q)]
        c = tau + gamma
        with np.errstate(divide="ignore", invalid="ignore"):
            for metric in ("dice", "iou"):
                f_rma = rma_objective(p, metric, gamma)
                pi = _full(p, metric, gamma)
                assert np.all(f_rma <= pi + 1e-13)
                if metric == "dice":
                    m = np.zeros(d + 1)
                    if gamma > 0:
                        exact_reciprocal_moments(q, sm, gamma, d + 1, m)
                        up1 = (2 * s + gamma) * m
                        gterm = gamma / (c + mu) + gamma * var / c**3
                    else:
                        exact_reciprocal_moments(q, sm, 1.0, d, m[1:])
                        up1 = np.r_[0.0, 2 * s[1:] * m[1:]]
                        gterm = 0.0
                    up2 = np.where(tau > 0, 2 * s / (c + mu) + 2 * s * var / (c + 1) ** 3, 0.0)
                    up2 = up2 + gterm
                    upper = np.minimum(up1, np.nan_to_num(up2, nan=np.inf))
                else:
                    var_t = var - np.r_[0.0, np.cumsum(q * (1 - q))]
                    upper = np.where(c > 0, f_rma + (s + gamma) * var_t / c**3, 0.0)
                    upper = np.nan_to_num(upper, nan=np.inf)
                assert np.all(pi <= upper + 1e-13)
                band = np.nonzero(upper >= f_rma.max())[0]
                assert int(np.argmax(pi)) in band


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_block_cumulants_add_up_to_row_summary(rng, dtype):
    """The blocks' cumulant sums, added in block order from the first (also when
    formed piece by piece, as the chunked pass forms them), are row_summary's mu,
    var and m3 bit for bit."""
    from rankseg.kernels.summary import BLOCK, block_cumulants

    for n in (1, BLOCK - 1, BLOCK, 5 * BLOCK + 17, 70_000):
        for x in (rng.random(n), rng.beta(0.1, 0.1, n), 1.0 - rng.random(n) * 1e-3):
            xv = x.astype(dtype)
            row = xv.view(np.uint16) if dtype == np.float16 else xv
            want = row_summary(row, new_summary(0))
            nb = (n + BLOCK - 1) // BLOCK
            part = np.empty((nb, 3))
            piece = 4 * BLOCK
            for j0 in range(0, n, piece):
                j1 = min(n, j0 + piece)
                block_cumulants(row[j0:j1], part[j0 // BLOCK : (j1 + BLOCK - 1) // BLOCK])
            got = np.add.accumulate(part, axis=0)[-1]
            assert np.array_equal(got, want[1:4]), (n, dtype)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_row_summaries_are_row_summary_on_any_threads(rng, dtype):
    """The launcher forms the blocks on work items of every thread (items of 1,024
    pixels; the rows hold PASS_WORK values or more, so two threads take them) and
    gives each requested row row_summary's d, mu, var and m3 bit for bit."""
    import rankseg
    from rankseg._config import PASS_WORK
    from rankseg.cpu.launchers import row_summaries

    x = rng.beta(0.3, 0.3, (3, PASS_WORK // 2 + 1)).astype(dtype)
    xk = x.view(np.uint16) if dtype == np.float16 else x
    rows = np.array([2, 0, 1], dtype=np.int64)
    for nthreads in (1, 2):
        with rankseg.num_threads(nthreads):
            for npow in (0, 12):
                got = row_summaries(xk, rows, 1024, npow)
                for i, r in enumerate(rows):
                    want = row_summary(xk[r], new_summary(npow))
                    assert np.array_equal(got[i], want), (nthreads, r, npow)
