"""Property tests: the RMA kernels against the sort-based oracles of tests/naive.py.

Floating point: the kernels sum the forced set in flat order and the band in
sorted order, the oracle sums a full sort (and uses math.fsum for μ), so two
volumes whose objectives agree to ~1e-13 may be ranked differently.  Such a
disagreement is accepted only when the oracle's own objective values are equal
within ``TOL`` (a genuine numerical tie); anything else fails.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rankseg
import rankseg.cpu.driver as cpu_driver
from rankseg import predict

import naive

TOL = 1e-12
DTYPES = [np.float16, np.float32, np.float64]
SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def prob_arrays(draw, min_classes=1, max_classes=4):
    nb = draw(st.integers(1, 3))
    nc = draw(st.integers(min_classes, max_classes))
    ndim = draw(st.integers(1, 3))
    spatial = tuple(draw(st.lists(st.integers(1, 5), min_size=ndim, max_size=ndim)))
    dtype = draw(st.sampled_from(DTYPES))
    kind = draw(st.sampled_from(naive.KINDS))
    seed = draw(st.integers(0, 2**32 - 1))
    vals = naive.random_probs(np.random.default_rng(seed), kind, (nb, nc, *spatial))
    return np.ascontiguousarray(vals.astype(dtype))


gammas = st.sampled_from([0.0, 0.5, 1.0, 10.0])
prunings = st.sampled_from([0.0, 0.25, 0.5, 0.9])
metrics = st.sampled_from(["dice", "iou"])


def _check_row(p, mask, tau, thr, score, pruned, metric, gamma, pruning_prob):
    """One (sample, class) row of the kernel against rma_row."""
    ref = naive.rma_row(p, metric, gamma, pruning_prob)
    assert pruned == ref["pruned"]
    assert mask.sum() == tau
    if pruned:
        assert tau == 0 and not mask.any() and np.isnan(thr)
        assert score == pytest.approx(ref["score"], rel=TOL, abs=TOL)
        return
    f = ref["F"]
    scale = max(1.0, abs(f[ref["tau"]]))
    if tau != ref["tau"]:
        # only a numerical tie of the oracle's own objective may differ
        assert abs(f[tau] - f[ref["tau"]]) <= TOL * scale, (tau, ref["tau"], f)
    # the mask is the stable top-tau set whatever tau is
    np.testing.assert_array_equal(mask, naive.topk_mask(p, tau))
    assert score == pytest.approx(f[tau], rel=TOL, abs=TOL)
    if tau == 0:
        assert np.isnan(thr)
    else:
        assert thr == p[mask].min()


def _check_masks(probs, masks, info, metric, gamma, pruning_prob):
    """:func:`_check_row` for every (sample, class) of a multilabel call."""
    p64 = probs.astype(np.float64)
    for b in range(probs.shape[0]):
        for c in range(probs.shape[1]):
            _check_row(
                p64[b, c].ravel(),
                masks[b, c].ravel(),
                info.tau[b, c],
                info.threshold[b, c],
                info.score[b, c],
                info.pruned[b, c],
                metric,
                gamma,
                pruning_prob,
            )


@SETTINGS
@given(probs=prob_arrays(), metric=metrics, gamma=gammas, pruning_prob=prunings)
def test_multilabel_matches_oracle(probs, metric, gamma, pruning_prob):
    before = probs.copy()
    masks, info = predict(
        probs,
        metric=metric,
        smooth=gamma,
        output_mode="multilabel",
        pruning_prob=pruning_prob,
        return_info=True,
    )
    np.testing.assert_array_equal(probs, before)  # input untouched
    assert masks.shape == probs.shape and masks.dtype == bool
    _check_masks(probs, masks, info, metric, gamma, pruning_prob)


# arbitrary (not normalized) class probabilities on purpose: multiclass resolution
# is defined for any input (SPEC §4); the layout warning is tested in test_api.py
@pytest.mark.filterwarnings("ignore::rankseg.ClassSumWarning")
@SETTINGS
@given(
    probs=prob_arrays(min_classes=2),
    metric=metrics,
    gamma=gammas,
    pruning_prob=prunings,
    policy=st.sampled_from(["max_score", "void"]),
)
def test_multiclass_matches_oracle(probs, metric, gamma, pruning_prob, policy):
    kw = dict(metric=metric, smooth=gamma, pruning_prob=pruning_prob)
    extra = {"unassigned_policy": "void", "void_index": 255} if policy == "void" else {}
    labels, info = predict(probs, return_info=True, **kw, **extra)
    masks = predict(probs, output_mode="multilabel", **kw)
    ref_labels, ref_info, incs = naive.rma_predict(
        probs.astype(np.float64),
        metric,
        gamma,
        "multiclass",
        pruning_prob,
        unassigned_policy=policy,
        void_index=255,
    )
    ref_masks, _ = naive.rma_predict(
        probs.astype(np.float64), metric, gamma, "multilabel", pruning_prob
    )
    assert labels.shape == ref_labels.shape and labels.dtype == np.int64
    nc = probs.shape[1]
    valid = (labels >= 0) & (labels < nc)
    if policy == "void":
        valid |= labels == 255
    assert valid.all()
    np.testing.assert_array_equal(info.pruned, ref_info["pruned"])
    for b in range(probs.shape[0]):
        if not np.array_equal(masks[b], ref_masks[b]):
            continue  # a numerical tie in a class volume; covered by the multilabel test
        lab, ref = labels[b].ravel(), ref_labels[b].ravel()
        inc = incs[b].reshape(nc, -1)
        for j in np.flatnonzero(lab != ref):
            # both must be real classes, and the oracle must rate them equal within TOL
            assert ref[j] != 255 and lab[j] != 255
            a, o = inc[lab[j], j], inc[ref[j], j]
            assert abs(a - o) <= TOL * max(1.0, abs(o)), (j, lab[j], ref[j], a, o)


@SETTINGS
@given(probs=prob_arrays(), gamma=gammas)
def test_dice_gamma0_selects_every_half(probs, gamma):
    masks = predict(probs, metric="dice", output_mode="multilabel", pruning_prob=0.0)
    assert masks[probs >= 0.5].all()
    # IoU selects every p > 1/2 for any smoothing
    masks = predict(probs, metric="iou", smooth=gamma, output_mode="multilabel", pruning_prob=0.0)
    assert masks[probs > 0.5].all()


# arbitrary (not normalized) class probabilities on purpose: multiclass resolution
# is defined for any input (SPEC §4); the layout warning is tested in test_api.py
@pytest.mark.filterwarnings("ignore::rankseg.ClassSumWarning")
@SETTINGS
@given(probs=prob_arrays(min_classes=2), metric=metrics, gamma=gammas)
def test_dtype_independence(probs, metric, gamma):
    """The same values in float16/32/64 give identical results (float64 accumulation)."""
    h = probs.astype(np.float16)
    outs = [
        predict(h.astype(dt), metric=metric, smooth=gamma, pruning_prob=0.0, return_info=True)
        for dt in DTYPES
    ]
    for lab, info in outs[1:]:
        np.testing.assert_array_equal(lab, outs[0][0])
        np.testing.assert_array_equal(info.tau, outs[0][1].tau)
        np.testing.assert_array_equal(info.score, outs[0][1].score)


def _big_case(rng):
    """Rows longer than the kernel chunk, with ties across chunk borders."""
    d = 3 * cpu_driver.CHUNK + 17
    probs = np.empty((1, 3, d), dtype=np.float32)
    probs[0, 0] = rng.random(d)
    probs[0, 1] = rng.integers(0, 20, d) / 19  # heavy ties, band overflows slots
    probs[0, 2] = rng.random(d) ** 8
    return probs


@pytest.mark.parametrize(
    "metric, gamma", [("dice", 0.0), ("dice", 1.0), ("iou", 0.0), ("iou", 2.0)]
)
def test_long_rows_match_oracle(rng, metric, gamma):
    probs = _big_case(rng)
    masks, info = predict(
        probs,
        metric=metric,
        smooth=gamma,
        output_mode="multilabel",
        pruning_prob=0.0,
        return_info=True,
    )
    _check_masks(probs, masks, info, metric, gamma, 0.0)


# arbitrary (not normalized) class probabilities on purpose: multiclass resolution
# is defined for any input (SPEC §4); the layout warning is tested in test_api.py
@pytest.mark.filterwarnings("ignore::rankseg.ClassSumWarning")
def test_thread_count_independence(rng):
    probs = np.concatenate([_big_case(rng), _big_case(rng)], axis=0)
    results = []
    for n in (1, 2, 3):  # explicit counts: independent of the machine's load
        with rankseg.num_threads(n):
            results.append(
                [
                    predict(probs, metric=m, smooth=g, pruning_prob=0.0, return_info=True)
                    for m, g in [("dice", 0.0), ("iou", 1.0)]
                ]
                + [predict(probs, output_mode="multilabel", pruning_prob=0.0)]
            )
    first = results[0]
    for other in results[1:]:
        for (la, ia), (lb, ib) in zip(first[:2], other[:2], strict=True):
            np.testing.assert_array_equal(la, lb)
            np.testing.assert_array_equal(ia.score, ib.score)
        np.testing.assert_array_equal(first[2], other[2])


# arbitrary (not normalized) class probabilities on purpose: multiclass resolution
# is defined for any input (SPEC §4); the layout warning is tested in test_api.py
@pytest.mark.filterwarnings("ignore::rankseg.ClassSumWarning")
@settings(max_examples=40, deadline=None)
@given(probs=prob_arrays(min_classes=2), metric=metrics, gamma=gammas, chunk=st.integers(1, 7))
def test_small_chunks_match_oracle(probs, metric, gamma, chunk):
    """Splitting rows into many work items (tiny chunks) keeps the oracle's answer."""
    old = cpu_driver.CHUNK
    cpu_driver.CHUNK = chunk
    try:
        masks, info = predict(
            probs,
            metric=metric,
            smooth=gamma,
            output_mode="multilabel",
            pruning_prob=0.0,
            return_info=True,
        )
        labels = predict(probs, metric=metric, smooth=gamma, pruning_prob=0.0)
    finally:
        cpu_driver.CHUNK = old
    _check_masks(probs, masks, info, metric, gamma, 0.0)
    ref = predict(probs, metric=metric, smooth=gamma, pruning_prob=0.0)
    ref_masks = predict(
        probs, metric=metric, smooth=gamma, pruning_prob=0.0, output_mode="multilabel"
    )
    if np.array_equal(ref_masks, masks):
        # same masks: labels may differ only at increment near-ties
        _, _, incs = naive.rma_predict(probs.astype(np.float64), metric, gamma, "multiclass", 0.0)
        nc = probs.shape[1]
        for b in range(probs.shape[0]):
            inc = incs[b].reshape(nc, -1)
            lab, r = labels[b].ravel(), ref[b].ravel()
            for j in np.flatnonzero(lab != r):
                assert abs(inc[lab[j], j] - inc[r[j], j]) <= TOL * max(1.0, abs(inc[r[j], j]))


@settings(max_examples=60, deadline=None)
@given(
    d=st.integers(30, 3000),
    kind=st.sampled_from(["uniform", "quantized", "skewed", "mixed", "softmax"]),
    seed=st.integers(0, 2**32 - 1),
    metric=metrics,
    gamma=gammas,
)
def test_wide_bands_match_oracle(d, kind, seed, metric, gamma):
    """Rows with a wide undecided band exercise the bucketed band solver."""
    probs = naive.random_probs(np.random.default_rng(seed), kind, (1, 3, d))
    masks, info = predict(
        probs,
        metric=metric,
        smooth=gamma,
        output_mode="multilabel",
        pruning_prob=0.0,
        return_info=True,
    )
    _check_masks(probs, masks, info, metric, gamma, 0.0)


@settings(max_examples=200, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    metric=st.sampled_from(["dice", "iou"]),
    gamma=gammas,
    d=st.integers(2, 60),
)
def test_rise_threshold_is_the_increment_test(seed, metric, gamma, d):
    """Adding the next pixel of the sorted row raises F exactly when it is above
    rma_rise_threshold(F(tau)) (decided where the two sides differ by more than
    rounding), and the threshold only grows with its bound f."""
    from rankseg._policies import DICE, IOU
    from rankseg.kernels.rma import rma_rise_threshold

    p = np.sort(np.random.default_rng(seed).uniform(0.0, 1.0, d))[::-1]
    code = DICE if metric == "dice" else IOU
    mu = float(np.sum(p))
    f = naive.rma_objective(p, metric, gamma)
    for tau in range(d):
        thr = rma_rise_threshold(code, f[tau], tau, mu, gamma)
        if abs(p[tau] - thr) > 1e-9 and abs(f[tau + 1] - f[tau]) > 1e-12:
            assert (p[tau] > thr) == (f[tau + 1] > f[tau]), (tau, p[tau], thr)
        assert rma_rise_threshold(code, f[tau] + 0.1, tau, mu, gamma) >= thr
