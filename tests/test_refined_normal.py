"""Refined-normal kernels against scipy.stats.norm and a grid + brentq quantile oracle."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from rankseg.kernels.refined_normal import (
    VAR_FLOOR,
    refined_cdf,
    refined_g,
    refined_pmf,
    refined_quantile_hi,
    refined_quantile_lo,
    rna_params,
    rna_pmf_window,
    rna_pmf_window_array,
    rna_window,
    std_normal_cdf,
    std_normal_pdf,
)

from naive_solvers import refined_g as g_ref
from naive_solvers import refined_pmf as pmf_ref
from naive_solvers import refined_quantiles, refined_sf_raw
from naive_solvers import rna_params as params_ref
from naive_solvers import rna_pmf_window as pmf_window_ref
from naive_solvers import rna_window as window_ref

SKEWS = [0.0, 1e-3, -1e-3, 0.05, -0.05, 0.3, -0.3, 1.0, -1.0, 3.0, -3.0, 20.0, -20.0, 1e5, -1e5]


@pytest.fixture
def rng():
    return np.random.default_rng(47)


def test_phi_matches_scipy():
    x = np.linspace(-38.0, 38.0, 3041)
    cdf = np.array([std_normal_cdf(v) for v in x])
    pdf = np.array([std_normal_pdf(v) for v in x])
    # libm erfc vs scipy's ndtr: 6e-14 relative at most, in the far left tail
    np.testing.assert_allclose(cdf, stats.norm.cdf(x), rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(pdf, stats.norm.pdf(x), rtol=1e-14, atol=1e-300)


@pytest.mark.parametrize("skew", SKEWS)
def test_refined_g_cdf_pmf_match_scipy(skew):
    x = np.linspace(-12.0, 12.0, 961)
    got = np.array([refined_g(v, skew) for v in x])
    np.testing.assert_allclose(got, g_ref(x, skew), rtol=1e-13, atol=1e-16)
    assert np.all((got >= 0.0) & (got <= 1.0))
    mu, sigma = 37.3, 4.1
    k = np.arange(0, 80)
    cdf = np.array([refined_cdf(float(v), mu, sigma, skew) for v in k])
    np.testing.assert_allclose(cdf, g_ref((k + 0.5 - mu) / sigma, skew), rtol=1e-13, atol=1e-16)
    pmf = np.array([refined_pmf(float(v), mu, sigma, skew) for v in k])
    np.testing.assert_allclose(pmf, pmf_ref(k, mu, sigma, skew), rtol=1e-12, atol=1e-15)
    assert np.all((pmf >= 0.0) & (pmf <= 1.0))


def test_rna_params_clamps_variance():
    assert rna_params(3.0, 0.0, 0.0) == (math.sqrt(VAR_FLOOR), 0.0)
    sigma, skew = rna_params(3.0, -1e-20, 1e-17)
    assert sigma == math.sqrt(VAR_FLOOR)
    assert skew == pytest.approx(1e-17 / VAR_FLOOR**1.5)
    for mu, var, m3 in [(5.0, 2.5, 0.3), (100.0, 0.01, -0.009), (0.1, 0.09, 0.07)]:
        np.testing.assert_allclose(rna_params(mu, var, m3), params_ref(mu, var, m3), rtol=1e-15)


@pytest.mark.parametrize("skew", SKEWS)
@pytest.mark.parametrize("eps", [1e-4, 1e-8, 0.2])
def test_quantiles_match_brentq(skew, eps):
    lo, hi = refined_quantiles(eps / 2, skew)
    got_lo = refined_quantile_lo(eps / 2, skew)
    got_hi = refined_quantile_hi(eps / 2, skew)
    assert got_lo == pytest.approx(lo, abs=1e-12)
    assert got_hi == pytest.approx(hi, abs=1e-12)
    # generalized-inverse properties: nothing left of q_lo reaches eps/2,
    # nothing right of q_hi stays at or below 1 - eps/2
    left = np.linspace(-40.0, got_lo - 1e-9, 2001)
    assert np.all(g_ref(left, skew) < eps / 2)
    right = np.linspace(got_hi + 1e-9, 40.0, 2001)
    assert np.all(refined_sf_raw(right, skew) < eps / 2)  # G > 1 - eps/2, no cancellation


def _moments(p):
    v = p * (1 - p)
    return float(p.sum()), float(v.sum()), float((v * (1 - 2 * p)).sum())


def _rows(rng):
    yield rng.random(500)
    yield rng.beta(0.05, 1.0, 3000)  # skewed right
    yield 1.0 - rng.beta(0.05, 1.0, 3000)  # skewed left
    yield np.r_[np.ones(40), np.zeros(40)]  # var = 0 -> clamped
    yield np.r_[np.ones(7), [1e-9]]  # huge skew
    yield np.array([0.01])
    yield 1.0 / (1.0 + np.exp(-rng.normal(0.0, 4.0, 2000)))


@pytest.mark.parametrize("eps", [1e-4, 0.05])
def test_window_and_pmf_match_oracle(rng, eps):
    for p in _rows(rng):
        d = p.size
        mu, var, m3 = _moments(p)
        sigma, skew = rna_params(mu, var, m3)
        lq, uq = rna_window(mu, sigma, skew, d, eps)
        assert (lq, uq) == window_ref(mu, var, m3, d, eps)
        assert 0 <= lq <= uq <= d
        out = np.full(uq - lq + 3, -1.0)
        total = rna_pmf_window(mu, sigma, skew, lq, uq, out)
        ref = pmf_window_ref(mu, var, m3, lq, uq)
        np.testing.assert_allclose(out[: uq - lq + 1], ref, rtol=1e-12, atol=1e-15)
        assert np.all(out[uq - lq + 1 :] == -1.0)
        assert abs(out[: uq - lq + 1].sum() - 1.0) < 1e-13
        # the window keeps mass >= 1 - eps unless clipped at 0 or d
        if lq > 0 and uq < d:
            assert total >= 1.0 - eps - 1e-12
        lq2, arr = rna_pmf_window_array(mu, var, m3, d, eps)
        assert lq2 == lq
        np.testing.assert_array_equal(arr, out[: uq - lq + 1])


def test_window_covers_the_poisson_binomial(rng):
    # the RNA window of a wide row holds the true Poisson-binomial mass too
    from naive import poisson_binomial_pmf

    p = rng.random(400)
    mu, var, m3 = _moments(p)
    sigma, skew = rna_params(mu, var, m3)
    lq, uq = rna_window(mu, sigma, skew, p.size, 1e-4)
    f = poisson_binomial_pmf(p)
    assert f[lq : uq + 1].sum() > 1.0 - 2e-4
