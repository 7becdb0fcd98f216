"""Poisson-binomial kernels against enumeration and the plain convolution DP."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from naive import exact_pi_dp, exact_pi_enum
from naive import poisson_binomial_pmf as pmf_conv
from naive_solvers import pb_pmf_enum
from poisson_binomial import (
    exact_dice_objective_dp,
    exact_iou_objective_dp,
    loo_pmf,
    loo_pmf_into,
    poisson_binomial_pmf,
    poisson_binomial_pmf_into,
)


@pytest.fixture
def rng():
    return np.random.default_rng(31)


# probabilities with ties and exact 0 / 1
_prob = st.one_of(
    st.sampled_from([0.0, 1.0, 0.5, 0.25]),
    st.floats(0.0, 1.0, allow_nan=False, allow_subnormal=False),
)


@settings(deadline=None, max_examples=60)
@given(st.lists(_prob, min_size=0, max_size=10))
def test_pmf_matches_enumeration(p):
    p = np.array(p, dtype=np.float64)
    f = poisson_binomial_pmf(p)
    assert f.shape == (p.size + 1,)
    # Both sides round: the DP over <= 10 steps and the enumeration's sum of up to 2**10
    # products (each value <= 1); 1e-15 was too tight (hypothesis found a 1.05e-15 gap
    # for p = [0.5]*7 + three others).  64 eps = 1.4e-14 still pins the DP to the
    # enumeration far below any difference a decision could see.
    np.testing.assert_allclose(f, pb_pmf_enum(p), rtol=0, atol=64 * np.finfo(float).eps)
    np.testing.assert_allclose(f.sum(), 1.0, rtol=0, atol=64 * np.finfo(float).eps)


def test_pmf_float32_and_into(rng):
    p = rng.random(300).astype(np.float32)
    ref = pmf_conv(p.astype(np.float64))
    np.testing.assert_allclose(poisson_binomial_pmf(p), ref, rtol=0, atol=1e-15)
    out = np.full(305, -7.0)
    poisson_binomial_pmf_into(p, out)
    np.testing.assert_allclose(out[:301], ref, rtol=0, atol=1e-15)
    assert np.all(out[301:] == -7.0)  # untouched
    assert abs(ref.sum() - 1.0) < 1e-13


@pytest.mark.parametrize("kind", ["uniform", "small", "large", "zero_one", "half"])
def test_loo_pmf_matches_direct(rng, kind):
    d = 400
    p = {
        "uniform": rng.random(d),
        "small": rng.random(d) * 0.05,
        "large": 1.0 - rng.random(d) * 0.05,
        "zero_one": rng.choice([0.0, 1.0, 0.3, 0.7], d),
        "half": np.full(d, 0.5),
    }[kind]
    f = poisson_binomial_pmf(p)
    worst = 0.0
    for j in rng.choice(d, 25, replace=False):
        g = loo_pmf(f, p[j])
        ref = pmf_conv(np.delete(p, j))
        assert g.shape == (d,)
        assert np.all(g >= 0.0)
        worst = max(worst, float(np.abs(g - ref).max()))
    # measured: <= 3e-16 for d = 400
    assert worst < 1e-14


@pytest.mark.parametrize("q", [0.0, 1.0, 0.5, 1e-300, 1.0 - 1e-16, 0.49999999])
def test_loo_pmf_edge_q(rng, q):
    others = rng.random(50)
    f = poisson_binomial_pmf(np.concatenate([others, [q]]))
    out = np.full(60, -1.0)
    loo_pmf_into(f, q, out)
    np.testing.assert_allclose(out[:51], pmf_conv(others), rtol=0, atol=1e-14)
    assert np.all(out[51:] == -1.0)


def test_loo_pmf_degenerate_sizes():
    assert loo_pmf(np.array([1.0]), 0.3).shape == (0,)
    np.testing.assert_array_equal(loo_pmf(np.array([0.0, 1.0]), 1.0), [1.0])
    np.testing.assert_array_equal(loo_pmf(np.array([1.0, 0.0]), 0.0), [1.0])


@settings(deadline=None, max_examples=40)
@given(
    st.lists(_prob, min_size=1, max_size=9),
    st.sampled_from([0.0, 0.5, 1.0, 10.0]),
)
def test_dp_objectives_match_enumeration(p, gamma):
    p = np.array(p, dtype=np.float64)
    q = np.sort(p)[::-1].copy()
    d = p.size
    np.testing.assert_allclose(
        exact_dice_objective_dp(q, gamma, d), exact_pi_enum(p, "dice", gamma), rtol=0, atol=1e-13
    )
    np.testing.assert_allclose(
        exact_iou_objective_dp(q, gamma, d), exact_pi_enum(p, "iou", gamma), rtol=0, atol=1e-13
    )


@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0, 10.0])
def test_dp_objectives_match_plain_dp(rng, gamma):
    for p in (
        rng.random(60),
        rng.beta(0.1, 1.0, 60),
        np.r_[np.ones(10), np.zeros(10), rng.random(40)],
    ):
        q = np.sort(p)[::-1].copy()
        np.testing.assert_allclose(
            exact_dice_objective_dp(q, gamma, 60), exact_pi_dp(p, "dice", gamma), rtol=0, atol=1e-13
        )
        np.testing.assert_allclose(
            exact_iou_objective_dp(q, gamma, 60), exact_pi_dp(p, "iou", gamma), rtol=0, atol=1e-13
        )
        # a shorter tau_max returns the same prefix of values
        np.testing.assert_allclose(
            exact_dice_objective_dp(q, gamma, 17),
            exact_dice_objective_dp(q, gamma, 60)[:18],
            atol=0,
        )
        np.testing.assert_allclose(
            exact_iou_objective_dp(q, gamma, 17),
            exact_iou_objective_dp(q, gamma, 60)[:18],
            rtol=0,
            atol=1e-15,
        )


def test_dp_zero_zero_convention():
    q = np.zeros(5)
    np.testing.assert_array_equal(exact_dice_objective_dp(q, 0.0, 5), np.zeros(6))
    np.testing.assert_array_equal(exact_iou_objective_dp(q, 0.0, 5), np.zeros(6))
    # gamma > 0: empty mask on an all-zero row scores 1
    assert exact_dice_objective_dp(q, 1.0, 5)[0] == pytest.approx(1.0)
    assert exact_iou_objective_dp(q, 1.0, 5)[0] == pytest.approx(1.0)
