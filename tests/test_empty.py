"""The ``empty=`` conventions and presence rules of RankSEG (SPEC §8)."""

from __future__ import annotations

import numpy as np
import pytest

from rankseg import RankSEG, predict
from rankseg._presence import N_FEATURES, PresenceModel, presence_features, topk_count
from rankseg.metrics import dice_score, iou_score, score_from_counts
from rankseg.tuning import _features


def softmax_probs(shape, seed=0, sharp=2.0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=shape) * sharp
    z[:, -1] -= 8.0  # a weak class: its rows are often pruned at 0.5
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(dtype)


@pytest.mark.parametrize("mode", ["multiclass", "multilabel"])
@pytest.mark.parametrize("metric", ["dice", "iou"])
@pytest.mark.parametrize("solver", ["rma", "exact"])
def test_zero_is_todays_default(mode, metric, solver):
    p = softmax_probs((3, 4, 9, 11), seed=1)
    a, ia = RankSEG(metric, output_mode=mode, solver=solver).predict(p, return_info=True)
    b, ib = RankSEG(
        metric, output_mode=mode, solver=solver, pruning_prob=0.5, empty="zero"
    ).predict(p, return_info=True)
    np.testing.assert_array_equal(a, b)
    for f in ("tau", "score", "pruned"):
        np.testing.assert_array_equal(getattr(ia, f), getattr(ib, f))
    assert ia.pruned.any()  # the input exercises pruning at 0.5


@pytest.mark.parametrize("mode", ["multiclass", "multilabel"])
def test_ignore_means_no_pruning(mode):
    p = softmax_probs((3, 5, 8, 8), seed=2)
    a = RankSEG(output_mode=mode, empty="ignore").predict(p)
    b = RankSEG(output_mode=mode, pruning_prob=0.0).predict(p)
    c = RankSEG(output_mode=mode).predict(p)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)  # the default convention prunes here
    assert RankSEG(empty="ignore").pruning_prob == 0.0
    # an explicit pruning_prob still applies
    d = RankSEG(output_mode=mode, empty="ignore", pruning_prob=0.5).predict(p)
    np.testing.assert_array_equal(d, c)


def test_argmax_rule_keeps_every_class_argmax_labels():
    # class 2 never exceeds 0.45 but wins the argmax at pixel 0: pruning at 0.5 drops it
    p = np.array(
        [[[[0.30, 0.60, 0.90, 0.10]], [[0.25, 0.35, 0.05, 0.85]], [[0.45, 0.05, 0.05, 0.05]]]]
    )
    assert np.allclose(p.sum(axis=1), 1)
    lab_default, info_default = predict(p, return_info=True)
    assert info_default.pruned[0, 2] and not (lab_default == 2).any()
    lab, info = predict(p, presence="argmax", return_info=True)
    assert not info.pruned.any()
    assert (lab == 2).any()
    lab_one, info_one = predict(p, empty="one", return_info=True)  # 'argmax' is its default
    np.testing.assert_array_equal(lab_one, lab)


def test_argmax_rule_prunes_classes_that_win_nowhere():
    p = softmax_probs((4, 6, 10, 10), seed=3, sharp=3.0)
    p[:, 5] *= 0.01  # class 5 wins nowhere
    p /= p.sum(axis=1, keepdims=True)
    wins = np.stack([np.bincount(s.reshape(6, -1).argmax(0), minlength=6) for s in p])
    assert (wins[:, 5] == 0).all()
    lab, info = predict(p, presence="argmax", return_info=True)
    np.testing.assert_array_equal(info.pruned, wins == 0)
    assert not (lab == 5).any()


def test_argmax_rule_multilabel_is_pruning_at_half():
    p = softmax_probs((3, 4, 7, 9), seed=4, dtype=np.float32)
    a = predict(p, output_mode="multilabel", presence="argmax")
    b = predict(p, output_mode="multilabel", pruning_prob=0.5)
    np.testing.assert_array_equal(a, b)


def test_argmax_rule_float16_and_negative_zero():
    p = softmax_probs((2, 3, 6, 6), seed=5).astype(np.float16)
    q = p.copy()
    q[0, 1, 0, 0] = -0.0  # a valid zero; its bits are above 0.5's
    a = predict(q, output_mode="multilabel", presence="argmax")
    b = predict(q.astype(np.float64), output_mode="multilabel", presence="argmax")
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(q, q.copy())


def _model(intercept, coef=(0.0,) * N_FEATURES):
    return PresenceModel.from_dict(
        {
            "l2": 0.0,
            "coef": list(coef),
            "intercept": intercept,
            "mean": [0.0] * N_FEATURES,
            "scale": [1.0] * N_FEATURES,
            "n_present": 1,
            "n_absent": 1,
        }
    )


@pytest.mark.parametrize("mode", ["multiclass", "multilabel"])
def test_presence_model_decision(mode):
    p = softmax_probs((4, 5, 12, 12), seed=6, sharp=1.5)
    free, free_info = predict(p, output_mode=mode, pruning_prob=0.0, return_info=True)
    # P(present) ~ 1: nothing is pruned, the masks of no pruning
    sure = predict(p, output_mode=mode, empty="one", presence=_model(40.0))
    np.testing.assert_array_equal(sure, free)
    # P(present) ~ 0: every class gets the empty mask; its score is P(absent)
    none, info = predict(p, output_mode=mode, empty="one", presence=_model(-40.0), return_info=True)
    assert info.pruned.all()
    np.testing.assert_allclose(info.score, 1.0)
    if mode == "multilabel":
        assert not none.any()
    # in between: pruned iff P(absent) >= P(present) * score, from the features
    model = _model(0.5, coef=(1.0, 0.5, 0.2, -0.3))
    lab, info = predict(p, output_mode=mode, empty="one", presence=model, return_info=True)
    pres = model.predict_proba(_features(p, mode)).reshape(4, 5)
    want = (1 - pres) >= pres * free_info.score
    assert want.any() and not want.all()
    np.testing.assert_array_equal(info.pruned, want)
    np.testing.assert_allclose(info.score, np.where(want, 1 - pres, pres * free_info.score))
    assert (info.tau[want] == 0).all()
    if mode == "multilabel":
        assert not lab[want].any()


def test_presence_features_match_api():
    p = softmax_probs((2, 3, 40, 30), seed=7)
    rows = p.reshape(6, -1)
    k = topk_count(rows.shape[1])
    assert k == 2
    f = presence_features(rows, rows.max(1), rows.sum(1), np.array([1, 0, 3, 2, 2, 0]))
    want_top = np.sort(rows, axis=1)[:, -k:].mean(1)
    np.testing.assert_allclose(f[:, 1], np.log(want_top / (1 - want_top)))
    np.testing.assert_allclose(f[:, 2], np.log1p([1, 0, 3, 2, 2, 0]))


def test_presence_model_fit_and_errors():
    rng = np.random.default_rng(0)
    f = rng.normal(size=(300, N_FEATURES))
    y = f @ np.array([2.0, 1.0, 0.0, 0.0]) + 0.5 * rng.normal(size=300) > 0
    m = PresenceModel().fit(f, y)
    acc = ((m.predict_proba(f) > 0.5) == y).mean()
    assert acc > 0.85
    m2 = PresenceModel.from_dict(m.to_dict())
    np.testing.assert_allclose(m2.predict_proba(f), m.predict_proba(f))
    with pytest.raises(ValueError, match="present and rows with it absent; got 300 present"):
        PresenceModel().fit(f, np.ones(300, bool))
    with pytest.raises(ValueError, match="shape"):
        PresenceModel().fit(f[:, :2], y)
    with pytest.raises(ValueError, match="not fitted"):
        PresenceModel().predict_proba(f)
    with pytest.raises(ValueError, match="l2"):
        PresenceModel(l2=-1)


@pytest.mark.parametrize(
    ("kw", "err", "match"),
    [
        ({"empty": "none"}, ValueError, "empty"),
        ({"empty": 1}, TypeError, "empty"),
        ({"empty": "one", "smooth": 1.0}, ValueError, "smooth"),
        (
            {"presence": "argmax", "pruning_prob": 0.3},
            ValueError,
            "either pruning_prob or presence",
        ),
        ({"presence": "max"}, ValueError, "presence"),
        ({"presence": 3}, TypeError, "PresenceModel"),
        ({"metric": "acc", "empty": "one"}, ValueError, "accuracy"),
        ({"presence": _model(0.0)}, ValueError, "empty='one' only"),
        ({"empty": "ignore", "presence": _model(0.0)}, ValueError, "empty='one' only"),
    ],
)
def test_bad_parameters(kw, err, match):
    with pytest.raises(err, match=match):
        RankSEG(**kw)


def test_presence_rules_refuse_other_backends():
    with pytest.raises(ValueError, match="in-memory CPU path only, not on the CUDA backend"):
        RankSEG(empty="one").check_pruning_rule("the CUDA backend")
    RankSEG(empty="one", pruning_prob=0.5).check_pruning_rule("x")  # a threshold runs anywhere
    RankSEG(empty="ignore").check_pruning_rule("x")


def test_repr_names_the_convention():
    assert "empty='ignore'" in repr(RankSEG(empty="ignore"))
    assert "presence='argmax'" in repr(RankSEG(presence="argmax"))
    assert "empty" not in repr(RankSEG())


def test_metrics_ignore_policy():
    pred = np.array([[0, 1, 1, 0], [0, 0, 0, 0]])
    target = np.array([[0, 0, 0, 0], [0, 0, 0, 0]])
    d = dice_score(pred, target, num_classes=3, empty="ignore")
    # class 1: empty truth, non-empty prediction -> left out (NaN), unlike 'nan'
    assert np.isnan(d[0, 1]) and np.isnan(d[0, 2]) and d[0, 0] == pytest.approx(2 * 2 / 6)
    assert dice_score(pred, target, num_classes=3, empty="nan")[0, 1] == 0.0
    assert np.isnan(iou_score(pred, target, num_classes=3, empty="ignore")[1, 1])
    np.testing.assert_array_equal(
        score_from_counts([[2, 0, 0], [0, 0, 0], [1, 1, 1]], empty="ignore"), [np.nan, np.nan, 1.0]
    )


def test_dask_takes_threshold_conventions_and_refuses_presence_rules():
    da = pytest.importorskip("dask.array")
    import rankseg.dask

    p = softmax_probs((2, 4, 8, 8), seed=8)
    x = da.from_array(p, chunks=(1, 4, 4, 8))
    got = rankseg.dask.predict(x, empty="ignore").compute(scheduler="synchronous")
    np.testing.assert_array_equal(got, predict(p, empty="ignore"))
    with pytest.raises(ValueError, match="not on the chunked dask path"):
        rankseg.dask.predict(x, empty="one")


def test_xarray_in_memory_takes_the_argmax_rule():
    xr = pytest.importorskip("xarray")
    import rankseg.xarray

    p = softmax_probs((1, 4, 6, 5), seed=9)[0]  # (class, y, x): one sample
    arr = xr.DataArray(p, dims=("class", "y", "x"))
    got = rankseg.xarray.predict(arr, class_dim="class", empty="one")
    np.testing.assert_array_equal(got.values, predict(p[None], empty="one")[0])
    assert got.attrs["rankseg_empty"] == "one"
