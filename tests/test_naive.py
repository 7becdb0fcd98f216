"""Tests of the oracles in tests/naive.py: against each other and first principles.

If these pass, the oracles can be trusted as references for the kernels.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from naive import (
    brute_force_best,
    d0_bound,
    exact_pi_dp,
    exact_pi_enum,
    expected_metric,
    increment,
    metric_value,
    monte_carlo_metric,
    poisson_binomial_pmf,
    rma_objective,
    rma_predict,
    rma_row,
    rma_set_value,
    stable_order,
    topk_mask,
)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


GAMMAS = [0.0, 0.5, 1.0, 10.0]
# Probabilities with plenty of ties and exact 0 / 1 values, plus arbitrary floats.
VALUE = st.one_of(
    st.sampled_from([0.0, 1.0, 0.5, 0.25, 0.75, 0.1, 0.9]),
    st.floats(0.0, 1.0, allow_nan=False, allow_infinity=False),
)
gammas = st.sampled_from(GAMMAS)
metrics = st.sampled_from(["dice", "iou"])


def rows(max_d, min_d=1):
    return st.lists(VALUE, min_size=min_d, max_size=max_d).map(
        lambda v: np.array(v, dtype=np.float64)
    )


def random_row(rng, d, ties=True):
    """A random row mixing uniform values, exact 0/1 and repeated values."""
    p = rng.random(d)
    if ties:
        kind = rng.integers(0, 4, size=d)
        p[kind == 0] = 0.0
        p[kind == 1] = 1.0
        p[kind == 2] = rng.choice([0.25, 0.5, 0.75], size=int(np.sum(kind == 2)))
    return p


# ---------------------------------------------------------------------------
# metric_value / expected_metric
# ---------------------------------------------------------------------------


def test_metric_value_hand_examples():
    mask = np.array([1, 1, 0, 0], bool)
    y = np.array([1, 0, 1, 0], bool)
    # |δ∩Y| = 1, |δ| = 2, |Y| = 2
    assert metric_value(mask, y, "dice", 0.0) == pytest.approx(2 / 4)
    assert metric_value(mask, y, "iou", 0.0) == pytest.approx(1 / 3)
    assert metric_value(mask, y, "dice", 1.0) == pytest.approx(3 / 5)
    assert metric_value(mask, y, "iou", 1.0) == pytest.approx(2 / 4)
    empty = np.zeros(4, bool)
    for metric in ("dice", "iou"):
        assert metric_value(empty, empty, metric, 0.0) == 0.0  # 0/0 := 0
        assert metric_value(empty, empty, metric, 1.0) == 1.0
        assert metric_value(empty, y, metric, 0.0) == 0.0
        assert metric_value(y, y, metric, 0.0) == 1.0


@settings(deadline=None, max_examples=40)
@given(d=st.integers(1, 6), data=st.data(), metric=metrics, gamma=gammas)
def test_expected_metric_is_the_literal_sum_over_outcomes(d, data, metric, gamma):
    p = data.draw(rows(d, d))
    mask = np.array(data.draw(st.lists(st.booleans(), min_size=d, max_size=d)))
    total = 0.0
    for y in itertools.product([0, 1], repeat=d):
        w = 1.0
        for pj, yj in zip(p, y, strict=True):
            w *= pj if yj else 1.0 - pj
        total += w * metric_value(mask, np.array(y), metric, gamma)
    assert expected_metric(p, mask, metric, gamma) == pytest.approx(total, abs=1e-13)


@settings(deadline=None, max_examples=30)
@given(d=st.integers(1, 8), data=st.data(), metric=metrics, gamma=gammas)
def test_expected_metric_of_deterministic_truth(d, data, metric, gamma):
    y = np.array(data.draw(st.lists(st.booleans(), min_size=d, max_size=d)))
    mask = np.array(data.draw(st.lists(st.booleans(), min_size=d, max_size=d)))
    got = expected_metric(y.astype(float), mask, metric, gamma)
    assert got == metric_value(mask, y, metric, gamma)


def test_expected_metric_single_pixel_by_hand():
    q = 0.3
    # δ = {1}: Dice = 1 if Y = 1 else 0 (γ = 0)  ->  q
    assert expected_metric([q], [True], "dice", 0.0) == pytest.approx(q)
    # δ = {}, γ = 1: Y=1 -> (0+1)/(0+1+1) = 1/2, Y=0 -> 1/1  ->  q/2 + 1 - q
    assert expected_metric([q], [False], "dice", 1.0) == pytest.approx(q / 2 + 1 - q)
    # IoU δ = {1}, γ = 1: Y=1 -> 2/2, Y=0 -> 1/2  ->  q + (1-q)/2
    assert expected_metric([q], [True], "iou", 1.0) == pytest.approx(q + (1 - q) / 2)


def test_monte_carlo_within_four_standard_errors(rng):
    for d in (1, 5, 10):
        for metric in ("dice", "iou"):
            for gamma in GAMMAS:
                p = random_row(rng, d)
                mask = rng.random(d) < 0.5
                exact = expected_metric(p, mask, metric, gamma)
                mean, se = monte_carlo_metric(p, mask, metric, gamma, 20_000, rng)
                assert abs(mean - exact) <= 4 * se + 1e-12, (p, mask, metric, gamma)


def test_monte_carlo_deterministic_row_has_zero_error(rng):
    p = np.array([1.0, 0.0, 1.0, 0.0])
    mask = np.array([True, True, False, False])
    mean, se = monte_carlo_metric(p, mask, "dice", 0.0, 100, rng)
    assert (mean, se) == (0.5, 0.0)


# ---------------------------------------------------------------------------
# ranking property and top-k masks
# ---------------------------------------------------------------------------


def test_topk_mask_stable_ties():
    p = np.array([0.5, 0.9, 0.5, 0.5, 0.1])
    np.testing.assert_array_equal(stable_order(p), [1, 0, 2, 3, 4])
    np.testing.assert_array_equal(topk_mask(p, 0), [0, 0, 0, 0, 0])
    np.testing.assert_array_equal(topk_mask(p, 2), [1, 1, 0, 0, 0])
    np.testing.assert_array_equal(topk_mask(p, 3), [1, 1, 1, 0, 0])
    np.testing.assert_array_equal(topk_mask(p, 5), [1, 1, 1, 1, 1])


@settings(deadline=None, max_examples=100)
@given(p=rows(8), metric=metrics, gamma=gammas)
def test_ranking_property_brute_force(p, metric, gamma):
    """SPEC §1: the best of all 2^d masks is a top-τ mask."""
    best, optimal = brute_force_best(p, metric, gamma)
    pi = exact_pi_enum(p, metric, gamma)
    assert pi.max() == pytest.approx(best, abs=1e-12)
    tau = int(np.argmax(pi))
    assert any(np.array_equal(topk_mask(p, tau), m) for m in optimal)
    # every optimal mask beats-or-ties every top-τ value
    assert all(v <= best + 1e-12 for v in pi)


def test_brute_force_lists_all_tied_optima():
    # p = (1, 1): Dice γ=0 of {one pixel} is 2/3, of both is 1 -> unique optimum.
    best, optimal = brute_force_best([1.0, 1.0], "dice", 0.0)
    assert best == 1.0 and len(optimal) == 1 and optimal[0].all()
    # p = (0, 0), γ = 0: every mask scores 0 -> all four masks are optimal.
    best, optimal = brute_force_best([0.0, 0.0], "iou", 0.0)
    assert best == 0.0 and len(optimal) == 4


# ---------------------------------------------------------------------------
# exact π: DP vs enumeration
# ---------------------------------------------------------------------------


@settings(deadline=None, max_examples=30)
@given(p=rows(10))
def test_poisson_binomial_pmf_vs_enumeration(p):
    d = p.size
    pmf = np.zeros(d + 1)
    for y in itertools.product([0, 1], repeat=d):
        pmf[sum(y)] += math.prod(pj if yj else 1.0 - pj for pj, yj in zip(p, y, strict=True))
    np.testing.assert_allclose(poisson_binomial_pmf(p), pmf, rtol=0, atol=1e-14)


def test_poisson_binomial_pmf_moments(rng):
    p = random_row(rng, 120)
    pmf = poisson_binomial_pmf(p)
    k = np.arange(p.size + 1)
    mean = np.sum(k * pmf)
    assert np.all(pmf >= 0)
    assert np.sum(pmf) == pytest.approx(1.0, abs=1e-13)
    assert mean == pytest.approx(p.sum(), abs=1e-10)
    assert np.sum((k - mean) ** 2 * pmf) == pytest.approx(np.sum(p * (1 - p)), abs=1e-10)


@settings(deadline=None, max_examples=150)
@given(p=rows(10), metric=metrics, gamma=gammas)
def test_exact_pi_dp_equals_enumeration(p, metric, gamma):
    np.testing.assert_allclose(
        exact_pi_dp(p, metric, gamma), exact_pi_enum(p, metric, gamma), rtol=0, atol=1e-12
    )


def test_exact_pi_dp_equals_enumeration_d14(rng):
    p = random_row(rng, 14)
    for metric in ("dice", "iou"):
        for gamma in (0.0, 1.0):
            np.testing.assert_allclose(
                exact_pi_dp(p, metric, gamma), exact_pi_enum(p, metric, gamma), atol=1e-12
            )


def test_exact_pi_gamma0_empty_is_zero():
    for metric in ("dice", "iou"):
        assert exact_pi_dp([0.0, 0.0, 0.3], metric, 0.0)[0] == 0.0
        # γ > 0 and all-zero row: empty mask scores γ/γ = 1
        assert exact_pi_dp([0.0, 0.0], metric, 0.5)[0] == 1.0


# ---------------------------------------------------------------------------
# RMA objective and rows
# ---------------------------------------------------------------------------


def rma_substituted(p, metric, gamma):
    """SPEC §2 exact formulas with E[1/(a+X)] replaced by 1/(a+E X), written out by hand.

    Dice: X = Γ (E X = μ) in both terms (SPEC's F uses μ, not E Γ_{-(j)} = μ − p_(j)).
    IoU: X = U_τ, E U_τ = Σ_{j>τ} p_(j) summed from the tail.
    """
    ps = sorted(p.tolist(), reverse=True)
    d = len(ps)
    mu = sum(ps)
    out = []
    for tau in range(d + 1):
        if tau == 0:
            out.append(gamma / (gamma + mu) if gamma > 0 else 0.0)
        elif metric == "dice":
            val = 0.0
            for j in range(tau):
                val += 2 * ps[j] / (tau + 1 + gamma + mu)
            out.append(val + gamma / (tau + gamma + mu))
        else:
            s_tau = sum(ps[:tau])
            e_u = sum(ps[tau:])
            out.append((s_tau + gamma) / (tau + gamma + e_u))
    return np.array(out)


@settings(deadline=None, max_examples=60)
@given(p=rows(25), metric=metrics, gamma=gammas)
def test_rma_objective_is_the_substituted_form(p, metric, gamma):
    np.testing.assert_allclose(
        rma_objective(p, metric, gamma), rma_substituted(p, metric, gamma), rtol=1e-13, atol=1e-15
    )


def test_rma_objective_hand_values():
    p = np.array([0.2, 0.9, 0.6])  # sorted 0.9, 0.6, 0.2; μ = 1.7
    f = rma_objective(p, "dice", 0.0)
    np.testing.assert_allclose(f, [0.0, 1.8 / 3.7, 3.0 / 4.7, 3.4 / 5.7])
    f = rma_objective(p, "iou", 1.0)
    # (S+1)/(μ−S+τ+1): τ=0: 1/2.7; τ=1: 1.9/2.8; τ=2: 2.5/(0.2+3); τ=3: 2.7/4
    np.testing.assert_allclose(f, [1 / 2.7, 1.9 / 2.8, 2.5 / 3.2, 2.7 / 4.0])


@settings(deadline=None, max_examples=60)
@given(p=rows(30), pruning_prob=st.sampled_from([0.0, 0.5]))
def test_rma_dice_gamma0_selects_every_half_and_screening(p, pruning_prob):
    """SPEC §2: RMA Dice γ=0 picks every p >= 0.5, its set is {p > F*/2}, and no pixel
    below max(p_max/(μ+2), μ/(d+μ+1)) is selected."""
    r = rma_row(p, "dice", 0.0, pruning_prob)
    if r["pruned"]:
        assert p.max() <= pruning_prob and not r["mask"].any()
        return
    assert r["mask"][p >= 0.5].all()
    half = r["score"] / 2
    assert np.all(p[r["mask"]] >= half - 1e-12)
    assert np.all(p[~r["mask"]] <= half + 1e-12)
    mu = p.sum()
    low = max(p.max() / (mu + 2), mu / (p.size + mu + 1))
    assert np.all(p[r["mask"]] >= low - 1e-12)


@settings(deadline=None, max_examples=60)
@given(p=rows(30), gamma=gammas)
def test_rma_iou_selects_every_p_above_half(p, gamma):
    """SPEC §2: the RMA IoU increment threshold (S_τ+γ)/(μ+τ+2γ) is <= 1/2."""
    r = rma_row(p, "iou", gamma, 0.0)
    if not r["pruned"]:
        assert r["mask"][p > 0.5].all()


def test_rma_row_fields_and_pruning():
    p = np.array([0.2, 0.9, 0.6, 0.6])
    r = rma_row(p, "dice", 0.0, 0.5)
    assert not r["pruned"]
    assert r["tau"] == int(np.argmax(r["F"]))
    assert r["score"] == r["F"][r["tau"]]
    assert r["threshold"] == p[r["mask"]].min()
    assert r["mask"].sum() == r["tau"]
    # pruned: max(p) <= pruning_prob (inclusive), empty mask, score = F(0)
    q = np.array([0.5, 0.3, 0.5])
    for gamma, f0 in ((0.0, 0.0), (1.0, 1.0 / (1.3 + 1.0))):
        r = rma_row(q, "iou", gamma, 0.5)
        assert r["pruned"] and r["tau"] == 0 and r["F"] is None
        assert math.isnan(r["threshold"]) and not r["mask"].any()
        assert r["score"] == pytest.approx(f0)
    assert not rma_row(q, "iou", 0.0, 0.49)["pruned"]


def test_rma_first_maximizer_on_flat_objectives():
    # Dice γ=0, p = (1, 1/4, 1/4, 1/4, 1/4), μ = 2: F(τ) = 2(0.75+τ/4)/(3+τ) = 1/2 for all
    # τ >= 1 (exact in binary), so τ* = 1 (first maximizer).
    p = np.array([0.25, 1.0, 0.25, 0.25, 0.25])
    r = rma_row(p, "dice", 0.0, 0.5)
    np.testing.assert_array_equal(r["F"], [0.0, 0.5, 0.5, 0.5, 0.5, 0.5])
    assert r["tau"] == 1 and r["threshold"] == 1.0
    # IoU γ=0, p = (1, eight × 1/4), μ = 3: S = 0.75+τ/4, μ−S+τ = 3S -> F = 1/3 for τ >= 1.
    p = np.array([1.0] + [0.25] * 8)
    r = rma_row(p, "iou", 0.0, 0.5)
    assert np.all(r["F"][1:] == r["F"][1]) and r["F"][1] == pytest.approx(1 / 3)
    assert r["tau"] == 1


# ---------------------------------------------------------------------------
# d0 bound
# ---------------------------------------------------------------------------


def _first_near_max(values, tol=1e-12):
    return int(np.flatnonzero(values >= values.max() - tol)[0])


@settings(deadline=None, max_examples=60)
@given(p=rows(10), gamma=gammas)
def test_exact_dice_optimum_within_d0_tiny(p, gamma):
    pi = exact_pi_dp(p, "dice", gamma)
    assert _first_near_max(pi) <= d0_bound(p, gamma)


def test_exact_dice_optimum_within_d0_random(rng):
    for _ in range(12):
        d = int(rng.integers(10, 41))
        p = random_row(rng, d, ties=bool(rng.integers(0, 2)))
        # sharpen some rows so that the optimum is large
        p = p ** float(rng.choice([0.2, 1.0, 3.0]))
        for gamma in GAMMAS:
            pi = exact_pi_dp(p, "dice", gamma)
            assert _first_near_max(pi) <= d0_bound(p, gamma)


def test_d0_bound_hand():
    # sorted (0.9, 0.8, 0.1, 0.0), d = 4, γ = 0:
    # τ=1: S=0.9 >= 5·0.8 = 4.0? no;  τ=2: S=1.7 >= 6·0.1 = 0.6? yes -> 2
    assert d0_bound([0.1, 0.9, 0.0, 0.8], 0.0) == 2
    # γ = 20: τ=2: 1.7 >= 26·0.1 = 2.6? no;  τ=3: S=1.8 >= 27·0.0? yes -> 3
    assert d0_bound([0.1, 0.9, 0.0, 0.8], 20.0) == 3
    # all ones: S_τ = τ >= (τ+d)·1 never for τ < d -> d
    assert d0_bound(np.ones(5), 0.0) == 5
    assert d0_bound([0.0, 0.0], 0.0) == 1


# ---------------------------------------------------------------------------
# increments (SPEC §4)
# ---------------------------------------------------------------------------


@settings(deadline=None, max_examples=80)
@given(data=st.data(), metric=metrics, gamma=gammas)
def test_increment_is_rma_difference(data, metric, gamma):
    p = data.draw(rows(12))
    safe = np.array(data.draw(st.lists(st.booleans(), min_size=p.size, max_size=p.size)))
    mu = math.fsum(p)
    m = math.fsum(p[safe])
    n = int(safe.sum())
    inc = increment(p, m, n, mu, metric, gamma)
    assert inc.shape == p.shape
    base = rma_set_value(m, n, mu, metric, gamma)
    for j in np.flatnonzero(~safe):
        want = rma_set_value(m + p[j], n + 1, mu, metric, gamma) - base
        assert inc[j] == pytest.approx(want, abs=1e-12)
        assert increment(float(p[j]), m, n, mu, metric, gamma) == inc[j]


def test_increment_zero_mass_class():
    # μ = 0 (all pixels 0): IoU γ=0 has b = 0 -> a/b := 0, inc = p/(1-p) = 0 at p = 0
    assert increment(0.0, 0.0, 0, 0.0, "iou", 0.0) == 0.0
    assert increment(0.0, 0.0, 0, 0.0, "dice", 0.0) == 0.0
    assert isinstance(increment(0.25, 0.0, 0, 0.0, "iou", 0.0), float)
    assert increment(0.25, 0.0, 0, 0.0, "iou", 0.0) == pytest.approx(0.25 / 0.75)


# ---------------------------------------------------------------------------
# rma_predict (SPEC §4)
# ---------------------------------------------------------------------------


def test_multilabel_equals_rows(rng):
    probs = rng.random((2, 3, 4, 5)) ** 2
    probs[0, 1, 0, :] = 1.0
    probs[1, 2] = 0.3  # pruned class
    for metric in ("dice", "iou"):
        for gamma in (0.0, 1.0):
            masks, info = rma_predict(probs, metric, gamma, output_mode="multilabel")
            assert masks.shape == probs.shape and masks.dtype == bool
            for b in range(2):
                for c in range(3):
                    r = rma_row(probs[b, c].ravel(), metric, gamma, 0.5)
                    np.testing.assert_array_equal(masks[b, c].ravel(), r["mask"])
                    assert info["tau"][b, c] == r["tau"]
                    assert info["pruned"][b, c] == r["pruned"]
                    assert info["score"][b, c] == r["score"]
                    np.testing.assert_equal(info["threshold"][b, c], r["threshold"])
            assert info["pruned"][1, 2]


@settings(deadline=None, max_examples=30)
@given(
    B=st.integers(1, 2),
    C=st.integers(2, 4),
    S=st.lists(st.integers(1, 4), min_size=1, max_size=3),
    data=st.data(),
    metric=metrics,
    gamma=gammas,
    pruning_prob=st.sampled_from([0.0, 0.5]),
)
def test_multiclass_invariants(B, C, S, data, metric, gamma, pruning_prob):
    shape = (B, C, *S)
    flat = data.draw(st.lists(VALUE, min_size=int(np.prod(shape)), max_size=int(np.prod(shape))))
    probs = np.array(flat).reshape(shape)
    labels, info, incs = rma_predict(probs, metric, gamma, pruning_prob=pruning_prob)
    masks, info2 = rma_predict(probs, metric, gamma, "multilabel", pruning_prob=pruning_prob)
    assert labels.shape == (B, *S) and labels.dtype == np.int64
    assert incs.shape == probs.shape
    assert np.all((labels >= 0) & (labels < C))
    for key in info:
        np.testing.assert_array_equal(info[key], info2[key])
    count = masks.sum(axis=1)
    onehot = np.take_along_axis(masks, labels[:, None], axis=1)[:, 0]
    # a selected pixel always goes to one of its selecting classes
    assert np.all(onehot[count >= 1])
    # a pixel's chosen class has the largest increment among its candidates
    chosen = np.take_along_axis(incs, labels[:, None], axis=1)[:, 0]
    for b in range(B):
        active = ~info["pruned"][b]
        fallback = active if active.any() else np.ones(C, bool)
        for idx in np.ndindex(*S):
            cand = masks[(b, slice(None), *idx)] if count[(b, *idx)] >= 1 else fallback
            best = incs[(b, slice(None), *idx)][cand].max()
            assert chosen[(b, *idx)] == best
    # void policy: void exactly where no class selects the pixel
    vlabels, _, _ = rma_predict(
        probs, metric, gamma, pruning_prob=pruning_prob, unassigned_policy="void", void_index=C + 3
    )
    np.testing.assert_array_equal(vlabels == C + 3, count == 0)
    np.testing.assert_array_equal(vlabels[count > 0], labels[count > 0])


def test_multiclass_hand_example():
    # One sample, C = 2, d = 4, Dice γ = 0, pruning 0.5.
    # class 0: p = (.95, .95, .6, .1), μ0 = 2.6, sorted same.
    #   F(τ) = 2S_τ/(μ+τ+1): F(1) = 1.9/4.6 = .4130, F(2) = 3.8/5.6 = .6786,
    #   F(3) = 5.0/6.6 = .7576, F(4) = 5.2/7.6 = .6842  ->  τ* = 3, mask {0,1,2}, threshold .6
    # class 1: p = (.05, .05, .55, .1), μ1 = .75, sorted .55, .1, .05, .05
    #   F(1) = 1.1/2.75 = .4, F(2) = 1.3/3.75 = .3467, ...  ->  τ* = 1, mask {2}
    # pixel 2 is selected by both; pixel 3 by none.
    # safe_0 = {0,1}: m0 = 1.9, n0 = 2, D0 = 2 + 2.6 + 1 = 5.6
    #   inc0(p) = 2(p − 1.9/5.6)/6.6: inc0(.6) = .07900, inc0(.1) = −.07251
    # safe_1 = {} (pixel 2 is shared): m1 = 0, n1 = 0, D1 = 1.75
    #   inc1(p) = 2p/2.75: inc1(.55) = .4, inc1(.1) = .07273
    # pixel 2 -> class 1 (.4 > .079) although p0 > p1; pixel 3 -> class 1 (.0727 > −.0725)
    # although argmax would pick class 0 (tie .1 = .1 -> lowest index).
    probs = np.array([[[0.95, 0.95, 0.6, 0.1], [0.05, 0.05, 0.55, 0.1]]])
    labels, info, incs = rma_predict(probs, "dice", 0.0)
    np.testing.assert_array_equal(labels, [[0, 0, 1, 1]])
    np.testing.assert_array_equal(info["tau"], [[3, 1]])
    np.testing.assert_allclose(info["threshold"], [[0.6, 0.55]])
    np.testing.assert_allclose(info["score"], [[5.0 / 6.6, 0.4]])
    assert not info["pruned"].any()
    assert incs[0, 0, 2] == pytest.approx(2 * (0.6 - 1.9 / 5.6) / 6.6)
    assert incs[0, 0, 3] == pytest.approx(2 * (0.1 - 1.9 / 5.6) / 6.6)
    assert incs[0, 1, 2] == pytest.approx(0.4)
    assert incs[0, 1, 3] == pytest.approx(0.2 / 2.75)
    vlabels, _, _ = rma_predict(probs, "dice", 0.0, unassigned_policy="void")
    np.testing.assert_array_equal(vlabels, [[0, 0, 1, 255]])


def test_multiclass_hand_example_pruned_classes():
    # class 0 = (.9, .1, .1): μ = 1.1, F(1) = 1.8/3.1 = .581 > F(2) = 2/4.1 = .488 -> {0}
    # class 1 = (.1, .45, .45): max .45 <= .5 -> pruned (inactive).
    # Pixels 1, 2 unassigned; only class 0 is active, so they go to class 0 even though
    # inc1(.45) = 2·.45/3 = .3 (m=0, n=0, D=2) beats inc0(.1) = 2(.1 − .9/3.1)/4.1 < 0.
    probs = np.array([[[0.9, 0.1, 0.1], [0.1, 0.45, 0.45]]])
    labels, info, incs = rma_predict(probs, "dice", 0.0)
    np.testing.assert_array_equal(labels, [[0, 0, 0]])
    np.testing.assert_array_equal(info["pruned"], [[False, True]])
    assert incs[0, 1, 1] == pytest.approx(0.3) and incs[0, 0, 1] < 0
    # Both classes pruned -> every class competes.
    # class 0 = (.4, .2): μ = .6, D = 1.6, inc0(p) = 2p/2.6: .3077, .1538
    # class 1 = (.3, .5): μ = .8, D = 1.8, inc1(p) = 2p/2.8: .2143, .3571  -> labels (0, 1)
    probs = np.array([[[0.4, 0.2], [0.3, 0.5]]])
    labels, info, _ = rma_predict(probs, "dice", 0.0)
    np.testing.assert_array_equal(info["pruned"], [[True, True]])
    np.testing.assert_array_equal(labels, [[0, 1]])


def test_multiclass_tie_goes_to_lowest_class():
    # Two identical classes: both select the same pixels, equal increments -> class 0.
    row = np.array([0.9, 0.7, 0.2])
    probs = np.stack([row, row])[None]
    labels, _, incs = rma_predict(probs, "iou", 0.0)
    assert np.array_equal(incs[0, 0], incs[0, 1])
    np.testing.assert_array_equal(labels, [[0, 0, 0]])


def test_rma_predict_errors():
    probs = np.full((1, 1, 3), 0.7)
    with pytest.raises(ValueError, match="multilabel"):
        rma_predict(probs)
    masks, _ = rma_predict(probs, output_mode="multilabel")
    assert masks.all()
    with pytest.raises(ValueError, match="void_index"):
        rma_predict(np.full((1, 3, 2), 0.3), unassigned_policy="void", void_index=2)
    with pytest.raises(ValueError, match="metric"):
        rma_predict(np.full((1, 3, 2), 0.3), metric="acc")


def test_rma_predict_does_not_modify_input(rng):
    probs = rng.random((1, 3, 6))
    before = probs.copy()
    rma_predict(probs, "iou", 0.5)
    np.testing.assert_array_equal(probs, before)
