"""rankseg.tune: calibration, presence and pruning tuned on validation cases."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from rankseg import RankSEG, TunedRankSEG, tune
from rankseg.tuning import case_scores, fit_presence, mean_score, paired_bootstrap


def _logit(p):
    return np.log(p) - np.log1p(-p)


def binary_cases(n, seed, t_model=0.6, size=40):
    """True foreground probabilities from smooth fields, truth drawn from them, and the
    model's under-confident version ``sigmoid(t_model * logit(p))`` (its calibrating
    temperature is ``t_model``)."""
    rng = np.random.default_rng(seed)
    z = np.stack([gaussian_filter(rng.normal(size=(size, size)), 3) for _ in range(n)])
    z = 4.0 * z / z.std() - 1.0
    p_true = 1 / (1 + np.exp(-z))
    model = 1 / (1 + np.exp(-t_model * z))
    return p_true[:, None], model[:, None].astype(np.float32)


def draw(p_true, rng):
    return (rng.uniform(size=p_true.shape) < p_true).astype(np.uint8)


def test_tune_recovers_the_temperature_and_beats_argmax_in_expectation():
    p_val, m_val = binary_cases(16, seed=0)
    p_test, m_test = binary_cases(16, seed=1)
    rng = np.random.default_rng(2)
    rule = tune(m_val, draw(p_val, rng), output_mode="multilabel", folds=4, n_boot=100)
    t = rule.temperature
    # NLL's temperature (within 5 %), unless another factor is clearly better on validation
    assert t is not None and 0.6 * 0.95 < t < 0.6 * 1.05
    assert rule.report.rows[-1]["rule"] == "RankSEG tuned on the other folds"
    # in expectation over truths drawn from the true probabilities, on new cases
    tuned, argmax, raw = [], [], []
    pred_t = rule.predict(m_test)
    pred_a = m_test > 0.5
    pred_r = RankSEG(output_mode="multilabel").predict(m_test)
    for _ in range(10):
        y = draw(p_test, rng)
        for acc, pred in ((tuned, pred_t), (argmax, pred_a), (raw, pred_r)):
            acc.append(mean_score(case_scores(pred, y, num_classes=1, output_mode="multilabel")))
    assert np.mean(tuned) > np.mean(argmax)
    assert np.mean(tuned) > np.mean(raw)
    # the expected Dice it reports is closer to the realized one after calibration
    _, info = rule.predict(m_test, return_info=True)
    _, info_raw = RankSEG(output_mode="multilabel").predict(m_test, return_info=True)
    gap = abs(info.score.mean() - np.mean(tuned))
    assert gap < abs(info_raw.score.mean() - np.mean(raw)) / 2
    assert gap < 0.03


def multiclass_cases(n, seed, size=32):
    """4 classes: background, a class always present, two present in about half of the
    images.  The model puts diffuse mass on an absent class (its p up to ~0.3)."""
    rng = np.random.default_rng(seed)
    nc = 4
    labels = np.zeros((n, size, size), dtype=np.uint8)
    logits = np.zeros((n, nc, size, size))
    yy, xx = np.mgrid[:size, :size]
    for b in range(n):
        present = [1] + [c for c in (2, 3) if rng.uniform() < 0.5]
        for c in present:
            cy, cx, r = rng.uniform(6, size - 6), rng.uniform(6, size - 6), rng.uniform(3, 7)
            blob = (yy - cy) ** 2 + (xx - cx) ** 2 < r**2
            labels[b][blob] = c
        onehot = np.stack([labels[b] == c for c in range(nc)]).astype(float)
        noise = np.stack([gaussian_filter(rng.normal(size=(size, size)), 2) for _ in range(nc)])
        logits[b] = 2.5 * gaussian_filter(onehot, (0, 1.5, 1.5)) + 1.5 * noise
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32), labels


@pytest.mark.parametrize("empty", ["one", "ignore"])
def test_tune_multiclass_with_absent_classes(empty):
    p_val, y_val = multiclass_cases(18, seed=3)
    p_test, y_test = multiclass_cases(24, seed=4)
    rule = tune(p_val, y_val, empty=empty, folds=3, n_boot=100, include_background=False)
    kw = {"num_classes": 4, "empty": empty, "include_background": False}
    tuned = mean_score(case_scores(rule.predict(p_test), y_test, **kw))
    argmax = mean_score(case_scores(p_test.argmax(1), y_test, **kw))
    assert tuned >= argmax
    names = [r["rule"] for r in rule.report.rows]
    assert names[0] == "argmax" and "per-class bias" in names[1]
    if empty == "one":
        chosen = [n for n in rule.report.notes if n.startswith("chosen per fold")]
        assert chosen  # the per-fold choices are reported
        assert rule.report.chosen["rule"] in rule.report.notes[-1]


def test_presence_model_learns_absence():
    p, y = multiclass_cases(30, seed=5)
    m = fit_presence(p, y)
    from rankseg.tuning import _features, _present

    pres = _present(y, 4, "multiclass")
    prob = m.predict_proba(_features(p, "multiclass"))
    assert ((prob > 0.5) == pres).mean() > 0.9
    y_all = np.where(y == 2, 1, y).astype(np.uint8)
    y_all[:, 0, 0] = 2
    y_all[:, 0, 1] = 3
    y_all[:, 0, 2] = 0
    with pytest.raises(ValueError, match="got 120 present and 0 absent"):
        fit_presence(p, y_all)


def test_no_absent_validation_pairs_fall_back_to_argmax_presence():
    p, y = multiclass_cases(12, seed=6)
    y = y.copy()
    y[:, 0, :4] = [0, 1, 2, 3]  # every class in every case
    rule = tune(p, y, empty="one", folds=3, n_boot=50, calibrate=False)
    assert rule.report.chosen["rule"] == "presence='argmax'"
    assert any("nothing to learn absence from" in n for n in rule.report.notes)


def test_tuned_rule_round_trips(tmp_path):
    p, y = multiclass_cases(12, seed=7)
    rule = tune(p, y, empty="one", folds=3, n_boot=50)
    want = rule.predict(p)
    again = pickle.loads(pickle.dumps(rule))
    np.testing.assert_array_equal(again.predict(p), want)
    path = tmp_path / "tuned.json"
    rule.save(path)
    loaded = TunedRankSEG.load(path)
    np.testing.assert_array_equal(loaded.predict(p), want)
    assert loaded.report.rows == json.loads(json.dumps(rule.report.rows))
    assert "| argmax |" in loaded.report.to_markdown()
    assert [f.name for f in tmp_path.iterdir()] == ["tuned.json"]  # no temp file left
    with pytest.raises(FileNotFoundError):
        rule.save(tmp_path / "missing" / "tuned.json")
    assert [f.name for f in tmp_path.iterdir()] == ["tuned.json"]
    path.write_text('{"format": "other"}')
    with pytest.raises(ValueError, match="not a tuned RankSEG rule"):
        TunedRankSEG.load(path)
    path.write_text("{")
    with pytest.raises(ValueError, match="not a JSON file"):
        TunedRankSEG.load(path)


def test_input_is_not_modified():
    p, y = multiclass_cases(6, seed=8)
    p0, y0 = p.copy(), y.copy()
    rule = tune(p, y, folds=2, n_boot=20)
    rule.predict(p)
    np.testing.assert_array_equal(p, p0)
    np.testing.assert_array_equal(y, y0)


@pytest.mark.parametrize(
    ("mutate", "kw", "err", "match"),
    [
        (
            lambda p, y: (p, np.where(y == 3, 7, y)),
            {},
            ValueError,
            r"case \d+: label 7 outside \[0, 4\)",
        ),
        (lambda p, y: (p, y[:, :-1]), {}, ValueError, "do not match probabilities"),
        (lambda p, y: (p, y.astype(float)), {}, TypeError, "labels must be integers"),
        (
            lambda p, y: (p, np.where(np.arange(len(y))[:, None, None] == 2, 9, y)),
            {"ignore_index": 9},
            ValueError,
            "case 2: every pixel is ignore_index=9",
        ),
        (lambda p, y: (np.where(np.isclose(p, p.max()), np.nan, p), y), {}, ValueError, "NaN"),
        (lambda p, y: (p[:1], y[:1]), {}, ValueError, "at least 2 validation cases"),
        (lambda p, y: (p[:0], y[:0]), {}, ValueError, "at least 2 validation cases"),
        (lambda p, y: (p, y), {"folds": 1}, ValueError, "folds must be an integer >= 2"),
        (lambda p, y: (p, y), {"empty": "nan"}, ValueError, "empty"),
        (lambda p, y: (p, y), {"metric": "acc"}, ValueError, "metric"),
    ],
)
def test_bad_input(mutate, kw, err, match):
    p, y = multiclass_cases(4, seed=9)
    p, y = mutate(p, y)
    with pytest.raises(err, match=match):
        tune(p, y, n_boot=10, **kw)


def test_a_single_map_without_its_background_has_nothing_to_score():
    p, m = binary_cases(4, seed=3, size=16)
    with pytest.raises(ValueError, match="leaves no class to score"):
        tune(m, (p > 0.5).astype(np.uint8), output_mode="multilabel", include_background=False)


def test_void_pixels_are_left_out():
    pred = np.array([[0, 1, 1, 1]])
    truth = np.array([[0, 1, 255, 255]])
    s = case_scores(pred, truth, num_classes=2, ignore_index=255)
    np.testing.assert_allclose(s, [[1.0, 1.0]])
    masks = np.array([[[True, True, False]]])
    mtruth = np.array([[[1, 2, 0]]])
    s = case_scores(masks, mtruth, num_classes=1, output_mode="multilabel", ignore_index=2)
    np.testing.assert_allclose(s, [[1.0]])


def test_scores_and_bootstrap():
    a = np.array([[1.0, np.nan], [0.5, 0.0]])
    assert mean_score(a) == pytest.approx((0.75 + 0.0) / 2)
    assert np.isnan(mean_score(np.full((2, 2), np.nan)))
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(30, 3))
    d, lo, hi = paired_bootstrap(x + 0.05, x, n_boot=200)
    assert d == pytest.approx(0.05) and lo == pytest.approx(0.05) and hi == pytest.approx(0.05)
    d, lo, hi = paired_bootstrap(x, rng.uniform(size=(30, 3)), n_boot=200)
    assert lo < d < hi
    with pytest.raises(ValueError, match="one shape"):
        paired_bootstrap(x, x[:3])


def test_bias_baseline_recovers_known_biases():
    from rankseg.tuning import _bias_baseline

    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(5) * 0.5, size=(12, 16, 16)).transpose(0, 3, 1, 2)
    with np.errstate(divide="ignore"):
        lp = np.log(p.astype(np.float32))
    bias = np.array([0, 1, -1, 0.5, 0], dtype=np.float32).reshape(1, 5, 1, 1)
    y = np.argmax(lp + bias, axis=1)

    def on_train(preds):  # fitted on the first batch of 8 cases, applied to both
        return mean_score(case_scores(preds[0], y[:8], num_classes=5))

    got = _bias_baseline([lp[:8], lp[8:]], on_train)
    # the truth is argmax(log p + bias), on the held-out cases too
    np.testing.assert_array_equal(np.concatenate(got), y)


def test_threshold_baseline_recovers_a_known_threshold():
    from rankseg.tuning import _threshold_baseline

    rng = np.random.default_rng(1)
    p = rng.uniform(size=(10, 2, 12, 12))
    y = (p > np.array([0.3, 0.7]).reshape(1, 2, 1, 1)).astype(np.uint8)

    def on_train(preds):
        return mean_score(case_scores(preds[0], y[:6], num_classes=2, output_mode="multilabel"))

    got = _threshold_baseline([p[:6], p[6:]], on_train)
    np.testing.assert_array_equal(np.concatenate(got), y.astype(bool))


def test_cases_of_different_shapes():
    p1, y1 = multiclass_cases(5, seed=10, size=32)
    p2, y2 = multiclass_cases(4, seed=11, size=24)
    rule = tune([p1, p2], [y1, y2], folds=3, n_boot=20, empty="ignore")
    assert rule.report.n_cases == 9
    assert rule.predict(p2).shape == (4, 24, 24)
    bad = y2.copy()
    bad[2, 0, 0] = 9
    with pytest.raises(ValueError, match=r"case 7: label 9 outside \[0, 4\)"):
        tune([p1, p2], [y1, bad], n_boot=10)
    with pytest.raises(ValueError, match="as many label batches"):
        tune([p1, p2], [y1], n_boot=10)
    with pytest.raises(ValueError, match="same number of classes"):
        tune([p1, p2[:, :3]], [y1, np.minimum(y2, 2)], n_boot=10)
