"""rankseg.calibration: temperature/vector scaling and calibration metrics.

The synthetic maps have a known calibration: labels are drawn from true probabilities
``softmax(z)`` (or ``σ(z)``) and the model's output is distorted to ``softmax(z * T)``:
temperature scaling must find ``T`` (``softmax(log p / T) = softmax(z)``).
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from scipy.special import expit, softmax

from rankseg import calibration as cal
from rankseg.calibration import (
    NotFittedError,
    TemperatureScaling,
    VectorScaling,
    brier,
    ece,
    nll,
    reliability_curve,
)


def multiclass_case(rng, t_true, shape=(6, 4, 48, 48), scale=2.5, weights=None):
    """Labels from ``softmax(z)``; the model says ``softmax(z * t_true)`` (or ``* w_c``)."""
    z = scale * rng.standard_normal(shape)
    truth = softmax(z, axis=1)
    u = rng.random((shape[0], 1, *shape[2:]))
    labels = np.minimum((u > truth.cumsum(axis=1)).sum(axis=1), shape[1] - 1)
    w = np.full(shape[1], t_true) if weights is None else np.asarray(weights)
    logits = z * w.reshape(1, -1, *([1] * (len(shape) - 2)))
    return softmax(logits, axis=1), labels, logits


def sigmoid_case(rng, t_true, shape=(4, 1, 64, 64), scale=3.0):
    z = scale * rng.standard_normal(shape)
    labels = (rng.random(shape) < expit(z)).astype(np.uint8)
    return expit(z * t_true), labels, z * t_true


# ------------------------------------------------------------------ fitting recovers T


@pytest.mark.parametrize("t_true", [0.6, 1.7])
def test_temperature_recovered_multiclass(rng, t_true):
    probs, labels, logits = multiclass_case(rng, t_true)
    ts = TemperatureScaling().fit(probs, labels)
    assert ts.temperature_ == pytest.approx(t_true, rel=0.05)
    assert ts.n_classes_ == 4 and ts.mode == "multiclass"
    from_logits = TemperatureScaling(from_logits=True).fit(logits, labels)
    assert from_logits.temperature_ == pytest.approx(ts.temperature_, rel=1e-4)


@pytest.mark.parametrize("t_true", [0.6, 1.7])
def test_temperature_recovered_binary_sigmoid(rng, t_true):
    probs, labels, logits = sigmoid_case(rng, t_true)
    ts = TemperatureScaling("multilabel").fit(probs, labels)
    assert ts.temperature_ == pytest.approx(t_true, rel=0.05)
    assert ts.n_classes_ == 1
    zt = TemperatureScaling("multilabel", from_logits=True).fit(logits, labels)
    assert zt.temperature_ == pytest.approx(ts.temperature_, rel=1e-3)


def test_temperature_recovered_multilabel_with_void(rng):
    probs, labels, _ = sigmoid_case(rng, 0.6, shape=(3, 3, 48, 48))
    labels = labels.astype(np.int16)
    labels[:, 1, :10] = -1  # void rows of class 1
    ts = TemperatureScaling("multilabel", ignore_index=-1).fit(probs, labels)
    assert ts.temperature_ == pytest.approx(0.6, rel=0.05)


def test_vector_scaling_recovers_per_class_scales(rng):
    shape = (8, 3, 48, 48)
    q = softmax(2.0 * rng.standard_normal(shape), axis=1)  # the model's output
    w_true, b_true = np.array([0.5, 1.0, 1.6]), np.array([0.3, -0.5, 0.2])  # zero-sum bias
    truth = softmax(w_true[:, None, None] * np.log(q) + b_true[:, None, None], axis=1)
    u = rng.random((shape[0], 1, *shape[2:]))
    labels = np.minimum((u > truth.cumsum(axis=1)).sum(axis=1), 2)
    vs = VectorScaling().fit(q, labels)
    np.testing.assert_allclose(vs.weights_, w_true, rtol=0.05)
    np.testing.assert_allclose(vs.bias_, b_true, atol=0.06)
    assert abs(vs.bias_.sum()) < 1e-3  # the zero-sum bias among the equivalent ones
    # per-class temperatures of logits (bias=False): softmax(w_c * z_c * w_true_c)
    z = 2.0 * rng.standard_normal(shape)
    labels = np.minimum((u > softmax(z, axis=1).cumsum(axis=1)).sum(axis=1), 2)
    vz = VectorScaling(bias=False, from_logits=True).fit(z * w_true[:, None, None], labels)
    np.testing.assert_allclose(vz.weights_ * w_true, 1.0, rtol=0.05)
    np.testing.assert_array_equal(vz.bias_, 0.0)


def test_vector_scaling_multilabel_scales_and_biases(rng):
    z = 3.0 * rng.standard_normal((4, 2, 64, 64))
    labels = (rng.random(z.shape) < expit(z)).astype(np.uint8)
    w_true, b_true = np.array([2.0, 0.5]), np.array([1.0, -0.5])
    # the model's logit is (z - b) / w: calibration w * logit + b gives back z
    probs = expit((z - b_true[:, None, None]) / w_true[:, None, None])
    vs = VectorScaling("multilabel").fit(probs, labels)
    np.testing.assert_allclose(vs.weights_, w_true, rtol=0.05)
    np.testing.assert_allclose(vs.bias_, b_true, atol=0.08)


# ------------------------------------------------------------------ subsample and cases


def test_generator_equals_arrays_and_seed(rng):
    probs, labels, _ = multiclass_case(rng, 0.6, shape=(6, 3, 40, 40))
    kw = {"max_pixels": 3000, "seed": 7}
    arrays = TemperatureScaling(**kw).fit(probs, labels)
    gen = TemperatureScaling(**kw).fit((probs[i : i + 2], labels[i : i + 2]) for i in (0, 2, 4))
    # the same subsample: bottom-k keys drawn in pixel order, whatever the cases
    assert gen.temperature_ == arrays.temperature_
    assert arrays.n_pixels_ == 3000 and arrays.n_seen_ == 6 * 40 * 40
    again = TemperatureScaling(**kw).fit(probs, labels)
    assert again.temperature_ == arrays.temperature_
    other = TemperatureScaling(max_pixels=3000, seed=8).fit(probs, labels)
    assert other.temperature_ != arrays.temperature_
    assert other.temperature_ == pytest.approx(0.6, rel=0.1)
    everything = TemperatureScaling().fit(probs, labels)
    assert everything.n_pixels_ == everything.n_seen_ == 6 * 40 * 40


def test_subsample_is_uniform_and_chunking_free(rng, monkeypatch):
    """The reservoir keeps the k smallest keys: same sample with any chunk size."""
    x = rng.random((1, 2, 5000))
    x[:, 1] = 1 - x[:, 0]
    labels = rng.integers(0, 2, (1, 5000))

    def sample(chunk):
        monkeypatch.setattr(cal, "_CHUNK_ELEMENTS", chunk)
        feats, y, _, seen = cal._collect(
            x,
            labels,
            mode="multiclass",
            from_logits=False,
            ignore_index=None,
            max_pixels=700,
            seed=3,
        )
        return feats, y, seen

    ref = sample(1 << 18)
    for chunk in (2, 64, 999):
        got = sample(chunk)
        np.testing.assert_array_equal(got[0], ref[0])
        np.testing.assert_array_equal(got[1], ref[1])
    assert ref[2] == 5000 and len(ref[0]) == 700
    # which pixels: the first class's log-probability identifies them; their
    # probabilities should look uniform (a Kolmogorov-Smirnov bound)
    kept = np.sort(np.exp(ref[0][:, 0].astype(np.float64)))
    grid = np.arange(1, 701) / 700
    assert np.abs(kept - grid).max() < 0.08


def test_fit_ignores_void_pixels(rng):
    probs, labels, _ = multiclass_case(rng, 1.7, shape=(4, 3, 40, 40))
    void = labels.copy()
    mask = rng.random(labels.shape) < 0.3
    void[mask] = 255
    a = TemperatureScaling(ignore_index=255).fit(probs, void.astype(np.uint8))
    assert a.n_seen_ == int((~mask).sum())
    # the same as fitting on the counted pixels alone
    kept = probs.transpose(1, 0, 2, 3)[:, ~mask].T[None, :, :, None].transpose(0, 2, 1, 3)
    b = TemperatureScaling().fit(kept, labels[~mask][None, :, None])
    assert a.temperature_ == pytest.approx(b.temperature_, rel=1e-9)


# ------------------------------------------------------------------ transform


@pytest.mark.parametrize("mode", ["multiclass", "multilabel"])
def test_transform_matches_reference_and_chunking(rng, monkeypatch, mode):
    if mode == "multiclass":
        probs, labels, _ = multiclass_case(rng, 0.6, shape=(2, 3, 9, 7))
        ts = TemperatureScaling().fit(probs, labels)
        t = ts.temperature_
        ref = softmax(np.log(probs) / t, axis=1)
    else:
        probs, labels, _ = sigmoid_case(rng, 1.7, shape=(2, 2, 9, 7))
        ts = TemperatureScaling("multilabel").fit(probs, labels)
        t = ts.temperature_
        ref = expit((np.log(probs) - np.log1p(-probs)) / t)
    before = probs.copy()
    full = ts.transform(probs)
    np.testing.assert_allclose(full, ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(probs, before)  # input untouched
    for chunk in (1, 5, 64):  # chunks of one pixel, partial rows, several samples
        monkeypatch.setattr(cal, "_CHUNK_ELEMENTS", chunk)
        np.testing.assert_array_equal(ts.transform(probs), full)
    if mode == "multiclass":
        np.testing.assert_allclose(full.sum(axis=1), 1.0, rtol=1e-12)


def test_transform_out_dtype_and_exact_zeros(rng):
    probs, labels, _ = multiclass_case(rng, 0.6, shape=(2, 3, 16, 16))
    ts = TemperatureScaling().fit(probs, labels)
    p16 = probs.astype(np.float16)
    p16[0, :, 0, 0] = [1.0, 0.0, 0.0]  # exact 0/1 stay 0/1, without warnings
    before = p16.copy()
    got = ts.transform(p16)
    assert got.dtype == np.float16
    np.testing.assert_array_equal(p16, before)
    np.testing.assert_array_equal(got[0, :, 0, 0], [1.0, 0.0, 0.0])
    ref = ts.transform(p16.astype(np.float64))
    np.testing.assert_allclose(got, ref, atol=1e-3)
    out = np.full(p16.shape, -1.0, dtype=np.float32)
    res = ts.transform(p16, out=out)
    assert res is out
    np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-7)
    inplace = probs.copy()
    assert ts.transform(inplace, out=inplace) is inplace
    np.testing.assert_allclose(inplace, ts.transform(probs), rtol=1e-12)
    with pytest.raises(ValueError, match="expected \\(2, 3, 16, 16\\) like probs"):
        ts.transform(probs, out=np.empty((2, 3, 16, 15)))
    with pytest.raises(ValueError, match="overlaps probs partially"):
        buf = np.zeros(2 * 3 * 16 * 16 + 1)
        ts.transform(buf[1:].reshape(2, 3, 16, 16), out=buf[:-1].reshape(2, 3, 16, 16))


def test_binary_exact_zeros_and_ones_stay():
    p = np.array([0.0, 1.0, 0.25, 0.75]).reshape(1, 1, 4)
    ts = TemperatureScaling.from_dict(
        {
            "format": "rankseg-calibration",
            "version": 1,
            "method": "temperature",
            "mode": "multilabel",
            "from_logits": False,
            "n_classes": 1,
            "temperature": 0.5,
        }
    )
    got = ts.transform(p)
    np.testing.assert_allclose(got.ravel(), [0.0, 1.0, 0.1, 0.9])


def test_vector_transform_reference(rng):
    probs, labels, _ = multiclass_case(rng, None, shape=(3, 3, 12, 12), weights=[0.5, 1, 2])
    vs = VectorScaling().fit(probs, labels)
    w, b = vs.weights_, vs.bias_
    ref = softmax(w[:, None, None] * np.log(probs) + b[:, None, None], axis=1)
    np.testing.assert_allclose(vs.transform(probs), ref, rtol=1e-10)
    np.testing.assert_allclose(vs.fit_transform(probs, labels), ref, rtol=1e-8)


# ------------------------------------------------------------------ metrics


@pytest.mark.parametrize("t_true", [0.6, 1.7])
def test_metrics_improve_after_fit(rng, t_true):
    probs, labels, _ = multiclass_case(rng, t_true)
    p_cal = TemperatureScaling().fit_transform(probs, labels)
    assert nll(p_cal, labels) < nll(probs, labels)
    assert brier(p_cal, labels) < brier(probs, labels)
    for kind in ("top-label", "classwise"):
        before, after = ece(probs, labels, kind=kind), ece(p_cal, labels, kind=kind)
        assert after < 0.5 * before, kind
    truth = softmax(np.log(probs) / t_true, axis=1)  # the true probabilities
    assert nll(p_cal, labels) == pytest.approx(nll(truth, labels), abs=2e-3)


def test_metrics_multilabel_improve(rng):
    probs, labels, _ = sigmoid_case(rng, 1.7, shape=(3, 2, 48, 48))
    p_cal = VectorScaling("multilabel").fit_transform(probs, labels)
    assert nll(p_cal, labels, mode="multilabel") < nll(probs, labels, mode="multilabel")
    assert brier(p_cal, labels, mode="multilabel") < brier(probs, labels, mode="multilabel")
    assert ece(p_cal, labels, mode="multilabel") < ece(probs, labels, mode="multilabel")


def naive_metrics(probs, labels, n_bins):
    """Formulas written out per pixel, multiclass, no void."""
    p = np.moveaxis(probs, 1, -1).reshape(-1, probs.shape[1])
    y = labels.ravel()
    nll_ = np.mean(-np.log(np.maximum(p[np.arange(len(y)), y], 1e-12)))
    onehot = np.eye(p.shape[1])[y]
    brier_ = np.mean(((p - onehot) ** 2).sum(axis=1))

    def ece_of(conf, hit):
        total = 0.0
        for k in range(n_bins):
            lo, hi = k / n_bins, (k + 1) / n_bins
            sel = (conf >= lo) & ((conf < hi) if k < n_bins - 1 else (conf <= hi))
            if sel.any():
                total += sel.sum() / len(conf) * abs(hit[sel].mean() - conf[sel].mean())
        return total

    top = ece_of(p.max(axis=1), (p.argmax(axis=1) == y).astype(float))
    classwise = np.mean([ece_of(p[:, c], (y == c).astype(float)) for c in range(p.shape[1])])
    return nll_, brier_, top, classwise


def test_metrics_match_naive_formulas(rng, monkeypatch):
    monkeypatch.setattr(cal, "_CHUNK_ELEMENTS", 37)  # several chunks per sample
    probs, labels, _ = multiclass_case(rng, 1.4, shape=(3, 4, 10, 9))
    want = naive_metrics(probs, labels, 10)
    got = (
        nll(probs, labels),
        brier(probs, labels),
        ece(probs, labels, n_bins=10),
        ece(probs, labels, kind="classwise", n_bins=10),
    )
    np.testing.assert_allclose(got, want, rtol=1e-10)
    # iterable of cases: the same pooled means
    cases = [(probs[:1], labels[:1]), (probs[1:], labels[1:])]
    assert nll(iter(cases)) == pytest.approx(want[0], rel=1e-12)


def test_metrics_leave_void_out(rng):
    probs, labels, _ = multiclass_case(rng, 1.0, shape=(2, 3, 8, 8))
    void = labels.copy()
    void[:, :3] = 99
    keep = void != 99
    sub_p = np.moveaxis(probs, 1, -1)[keep].T[None, :, :, None]
    sub_y = labels[keep][None, :, None]
    for f in (nll, brier, ece):
        assert f(probs, void, ignore_index=99) == pytest.approx(f(sub_p, sub_y), rel=1e-12)


def test_reliability_curve_shapes_and_counts(rng):
    probs, labels, _ = multiclass_case(rng, 1.0, shape=(2, 3, 8, 8))
    conf, freq, count = reliability_curve(probs, labels, n_bins=8)
    assert conf.shape == freq.shape == count.shape == (8,)
    assert count.sum() == 2 * 64
    assert np.isnan(conf[count == 0]).all() and count[:2].sum() == 0  # conf >= 1/3
    ok = count > 0
    edges = np.arange(9) / 8
    assert ((conf[ok] >= edges[:-1][ok]) & (conf[ok] <= edges[1:][ok])).all()
    conf_c, freq_c, count_c = reliability_curve(probs, labels, kind="classwise", n_bins=8)
    assert conf_c.shape == (3, 8)
    assert (count_c.sum(axis=1) == 128).all()
    assert cal.curve_ece((conf_c, freq_c, count_c)) == pytest.approx(
        ece(probs, labels, kind="classwise", n_bins=8)
    )


def test_multilabel_top_label_ece_definition():
    # confidence max(p, 1-p), hit = (p > 0.5) == y
    p = np.array([0.9, 0.2, 0.6, 0.5]).reshape(1, 1, 4)
    y = np.array([1, 1, 0, 0]).reshape(1, 1, 4)
    conf, freq, count = reliability_curve(p, y, mode="multilabel", n_bins=2)
    np.testing.assert_allclose(count, [0, 4])
    np.testing.assert_allclose(conf[1], (0.9 + 0.8 + 0.6 + 0.5) / 4)
    np.testing.assert_allclose(freq[1], 2 / 4)  # 0.9->1 right, 0.2->0 wrong, 0.6->1 wrong
    assert ece(p, y, mode="multilabel", n_bins=2) == pytest.approx(0.7 - 0.5)


# ------------------------------------------------------------------ JSON


@pytest.mark.parametrize("cls", [TemperatureScaling, VectorScaling])
def test_json_round_trip(rng, tmp_path, cls):
    probs, labels, _ = multiclass_case(rng, 0.6, shape=(2, 3, 16, 16))
    fitted = cls(ignore_index=255).fit(probs, labels)
    path = tmp_path / "cal.json"
    fitted.save(path)
    data = json.loads(path.read_text())
    assert data["format"] == "rankseg-calibration" and data["version"] == 1
    assert data["method"] == cls.method and data["n_classes"] == 3
    assert data["mode"] == "multiclass" and data["from_logits"] is False
    for back in (cls.load(path), cal.load(path), cls.from_dict(fitted.to_dict())):
        assert type(back) is cls
        np.testing.assert_array_equal(back.transform(probs), fitted.transform(probs))
        assert back.ignore_index == 255
    assert [p.name for p in tmp_path.iterdir()] == ["cal.json"]  # no temporary left


def test_save_is_atomic(rng, tmp_path, monkeypatch):
    probs, labels, _ = multiclass_case(rng, 0.6, shape=(2, 3, 8, 8))
    ts = TemperatureScaling().fit(probs, labels)
    path = tmp_path / "cal.json"
    path.write_text("previous")

    def broken_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        ts.save(path)
    assert path.read_text() == "previous"  # old content kept, no temporary left
    assert [p.name for p in tmp_path.iterdir()] == ["cal.json"]
    monkeypatch.undo()
    new = tmp_path / "new.json"
    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(OSError("no rename")))
    with pytest.raises(OSError, match="no rename"):
        ts.save(new)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cal.json"]
    with pytest.raises(NotFittedError):
        TemperatureScaling().save(tmp_path / "unfitted.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cal.json"]


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"format": "other"}, "not a rankseg calibration"),
        ({"version": 2}, "unsupported rankseg calibration version 2"),
        ({"method": "platt"}, "unknown calibration method 'platt'"),
        ({"mode": "binary"}, "unknown mode 'binary'"),
        ({"temperature": -1.0}, "temperature must be in"),
        ({"n_classes": None}, "n_classes must be an integer"),
    ],
)
def test_bad_json(tmp_path, change, match):
    d = {
        "format": "rankseg-calibration",
        "version": 1,
        "method": "temperature",
        "mode": "multiclass",
        "from_logits": False,
        "n_classes": 3,
        "temperature": 1.5,
    }
    TemperatureScaling.from_dict(d)  # the base is valid
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({**d, **change}))
    with pytest.raises((ValueError, TypeError), match=match):
        cal.load(path)
    with pytest.raises((ValueError, TypeError), match=match):
        TemperatureScaling.load(path)


def test_bad_json_other_cases(tmp_path):
    path = tmp_path / "x.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="invalid JSON"):
        cal.load(path)
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="not a rankseg calibration"):
        cal.load(path)
    with pytest.raises(FileNotFoundError, match="no calibration file"):
        cal.load(tmp_path / "missing.json")
    d = {
        "format": "rankseg-calibration",
        "version": 1,
        "method": "vector",
        "mode": "multiclass",
        "from_logits": False,
        "n_classes": 2,
        "weights": [1.0],
        "biases": [0.0, 0.0],
    }
    with pytest.raises(ValueError, match="TemperatureScaling reads 'temperature'"):
        TemperatureScaling.from_dict(d)
    with pytest.raises(ValueError, match="n_classes=2 numbers each"):
        VectorScaling.from_dict(d)
    with pytest.raises(ValueError, match="lacks the field 'weights'"):
        VectorScaling.from_dict({k: val for k, val in d.items() if k != "weights"})


# ------------------------------------------------------------------ bad input


@pytest.fixture
def good(rng):
    probs, labels, _ = multiclass_case(rng, 1.0, shape=(2, 3, 6, 6))
    return probs, labels


def fit_raises(exc, match, *args, **kw):
    with pytest.raises(exc, match=match):
        TemperatureScaling(**kw).fit(*args)


def test_bad_labels(good):
    probs, labels = good
    bad = labels.copy()
    bad[1, 2, 3] = 3
    saved = bad.copy()
    fit_raises(
        ValueError,
        "case 0: labels hold 3 \\(sample 1\\); expected integers in \\[0, 3\\)",
        probs,
        bad,
    )
    np.testing.assert_array_equal(bad, saved)  # input unchanged
    bad[1, 2, 3] = -1
    fit_raises(ValueError, "labels hold -1", probs, bad)
    fit_raises(ValueError, "or ignore_index=255", probs, bad, ignore_index=255)
    cases = [(probs, labels), (probs, np.where(labels == 0, 7, labels))]
    fit_raises(ValueError, "case 1: labels hold 7", iter(cases))
    fit_raises(TypeError, "labels must have an integer dtype; got float64", probs, labels * 1.0)
    ml = (labels[:, None] == np.arange(3)[:, None, None]).astype(np.uint8)
    ml[0, 0, 0, 0] = 2
    fit_raises(
        ValueError, "labels hold 2 \\(sample 0\\); expected 0 or 1", probs, ml, mode="multilabel"
    )


def test_bad_shapes(good):
    probs, labels = good
    fit_raises(
        ValueError, "case 0: labels have shape \\(2, 6, 5\\); expected", probs, labels[..., :5]
    )
    fit_raises(ValueError, "same spatial shape", probs, labels[:1])
    fit_raises(ValueError, "expected \\(B, C, \\*spatial\\)", probs, labels, mode="multilabel")
    cases = [(probs, labels), (probs[:, :2], labels)]
    fit_raises(ValueError, "case 1: probs has C=2 classes; expected C=3", iter(cases))
    fit_raises(ValueError, "needs C >= 2 classes", probs[:, :1], labels)
    fit_raises(ValueError, "case 0: probs must have shape", probs[0, 0], labels[0])
    fit_raises(TypeError, "case 0: probs must have dtype float16", probs.astype(np.int64), labels)
    fit_raises(TypeError, "labels is missing", probs)
    fit_raises(TypeError, "case 0: expected a \\(probs, labels\\) pair", [probs])


def test_bad_values(good):
    probs, labels = good
    for value, match in [
        (np.nan, "case 0, sample 1: probs contain NaN"),
        (np.inf, "probs contain inf"),
        (1.5, "outside \\[0, 1\\]"),
        (-0.1, "outside \\[0, 1\\]"),
    ]:
        bad = probs.copy()
        bad[1, 0, 2, 2] = value
        fit_raises(ValueError, match, bad, labels)
    z = np.log(probs)
    zbad = z.copy()
    zbad[0, 1, 0, 0] = np.nan
    fit_raises(ValueError, "logits contain NaN", zbad, labels, from_logits=True)
    zbad[0, 1, 0, 0] = -np.inf
    fit_raises(ValueError, "logits contain inf", zbad, labels, from_logits=True)
    TemperatureScaling(from_logits=True).fit(z * 20 - 5, labels)  # any finite logits


def test_void_and_empty(good):
    probs, labels = good
    void = np.full_like(labels, 255)
    cases = [(probs, labels), (probs, void)]
    fit_raises(
        ValueError,
        "case 1 has no counted pixel: every label equals ignore_index=255",
        iter(cases),
        ignore_index=255,
    )
    fit_raises(ValueError, "empty validation set: no cases", iter([]))
    fit_raises(ValueError, "empty validation set: the cases hold no pixels", probs[:0], labels[:0])
    with pytest.raises(ValueError, match="no counted pixel"):
        nll(probs, void, ignore_index=255)


def test_transform_errors(good):
    probs, labels = good
    with pytest.raises(NotFittedError, match="not fitted yet"):
        TemperatureScaling().transform(probs)
    with pytest.raises(ValueError, match="not fitted yet"):  # a ValueError too
        VectorScaling().to_dict()
    ts = TemperatureScaling().fit(probs, labels)
    with pytest.raises(ValueError, match="fitted for C=3 mode 'multiclass'; got probs with C=2"):
        ts.transform(probs[:, :2])
    with pytest.raises(ValueError, match="fitted for C=3 mode 'multiclass'; got mode 'multilabel'"):
        ts.transform(probs, mode="multilabel")
    bad = probs.copy()
    bad[1, 1, 1, 1] = np.nan
    out = np.zeros_like(probs)
    with pytest.raises(ValueError, match="sample 1: probs contain NaN"):
        ts.transform(bad, out=out)
    assert not out.any()  # checked before anything is written
    with pytest.raises(TypeError, match="fit_transform needs arrays"):
        ts.fit_transform(iter([(probs, labels)]))


def test_constructor_errors():
    with pytest.raises(ValueError, match="unknown mode 'binary'"):
        TemperatureScaling("binary")
    with pytest.raises(ValueError, match="max_pixels must be >= 1"):
        TemperatureScaling(max_pixels=0)
    with pytest.raises(TypeError, match="ignore_index must be an integer"):
        TemperatureScaling(ignore_index=2.5)
    with pytest.raises(TypeError, match="bias must be a bool"):
        VectorScaling(bias="yes")
    with pytest.raises(ValueError, match="unknown kind 'max'"):
        ece(np.ones((1, 2, 2)) / 2, np.zeros((1, 2), int), kind="max")


# ------------------------------------------------------------------ import


def test_import_does_not_import_numba():
    code = "import sys, rankseg.calibration; print('numba' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout.strip()
    assert out == "False"


# ------------------------------------------------------------------ reliability diagram


@pytest.fixture
def mpl():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    return matplotlib


def test_plot_reliability_overlay(rng, mpl, tmp_path):
    from rankseg.plot import plot_reliability

    probs, labels, _ = multiclass_case(rng, 0.6, shape=(3, 3, 32, 32))
    p_cal = TemperatureScaling().fit_transform(probs, labels)
    ax = plot_reliability(probs, labels, label="model", n_bins=10)
    assert plot_reliability(p_cal, labels, ax=ax, label="calibrated", n_bins=10) is ax
    fig = ax.figure
    assert len(fig.axes) == 2  # one twin Axes for the counts, made once
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    e0, e1 = ece(probs, labels, n_bins=10), ece(p_cal, labels, n_bins=10)
    assert texts == ["perfect calibration", f"model (ECE {e0:.3f})", f"calibrated (ECE {e1:.3f})"]
    diag, before, after = ax.lines
    np.testing.assert_array_equal(diag.get_xydata(), [[0, 0], [1, 1]])
    conf, freq, count = reliability_curve(probs, labels, n_bins=10)
    np.testing.assert_allclose(before.get_xydata(), np.c_[conf, freq][count > 0])
    assert before.get_color() != after.get_color()
    counts_ax = fig.axes[1]
    stairs = counts_ax.patches
    assert len(stairs) == 4  # a filled and an outlined histogram per model
    np.testing.assert_allclose(stairs[0].get_data().values, count / count.sum())
    lo, hi = counts_ax.get_ylim()
    assert lo > 0 and hi > 1.0 > lo  # log axis; the tallest bar in its lower part
    fig.savefig(tmp_path / "reliability.png")
    img = mpl.image.imread(tmp_path / "reliability.png")
    assert img.shape[0] > 200 and img[..., :3].std() > 0.01


def test_plot_reliability_curve_and_classwise(rng, mpl):
    from rankseg.plot import plot_reliability

    probs, labels, _ = multiclass_case(rng, 1.7, shape=(2, 3, 24, 24))
    curve = reliability_curve(probs, labels, kind="classwise", n_bins=8)
    ax = plot_reliability(curve=curve)
    same = plot_reliability(probs, labels, kind="classwise", n_bins=8)
    np.testing.assert_array_equal(ax.lines[1].get_xydata(), same.lines[1].get_xydata())
    assert ax.get_xlabel() == "predicted probability"
    # the line pools the classes by pixel count: p_c against 1[y = c] over all c
    p = np.moveaxis(probs, 1, -1).reshape(-1, 3)
    onehot = np.eye(3)[labels.ravel()]
    bins = np.minimum((p * 8).astype(int), 7).ravel()
    n = np.bincount(bins, minlength=8)
    want_x = np.bincount(bins, p.ravel(), 8)[n > 0] / n[n > 0]
    want_y = np.bincount(bins, onehot.ravel(), 8)[n > 0] / n[n > 0]
    np.testing.assert_allclose(ax.lines[1].get_xydata(), np.c_[want_x, want_y], rtol=1e-12)
    e = ece(probs, labels, kind="classwise", n_bins=8)
    assert ax.get_legend().get_texts()[1].get_text() == f"ECE {e:.3f}"


def test_plot_reliability_errors(rng, mpl):
    from rankseg.plot import plot_reliability

    probs, labels, _ = multiclass_case(rng, 1.0, shape=(1, 2, 4, 4))
    with pytest.raises(TypeError, match="needs probs and labels, or curve="):
        plot_reliability()
    curve = reliability_curve(probs, labels)
    with pytest.raises(TypeError, match="not both"):
        plot_reliability(probs, labels, curve=curve)
    with pytest.raises(ValueError, match="three arrays of one shape"):
        plot_reliability(curve=(curve[0], curve[1][:3], curve[2]))
    with pytest.raises(ValueError, match="counts must be finite and >= 0"):
        plot_reliability(curve=(curve[0], curve[1], -curve[2]))
    with pytest.raises(ValueError, match="holds no pixel"):
        plot_reliability(curve=(curve[0], curve[1], 0 * curve[2]))
    with pytest.raises(TypeError, match="ax must be a matplotlib Axes"):
        plot_reliability(probs, labels, ax="left")


# ------------------------------------------------------------------ memory and layout


def test_float16_is_never_upcast_whole(rng, monkeypatch):
    """Peak extra memory of fit and transform: the output plus a chunk, not a copy."""
    import tracemalloc

    monkeypatch.setattr(cal, "_CHUNK_ELEMENTS", 1 << 12)
    probs, labels, _ = multiclass_case(rng, 0.6, shape=(2, 4, 256, 256))
    p16 = probs.astype(np.float16)  # 1 MiB; a float64 copy would be 4 MiB
    labels = labels.astype(np.uint8)
    ts = TemperatureScaling(max_pixels=2000)
    tracemalloc.start()
    try:
        ts.fit(p16, labels)
        _, fit_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        out = ts.transform(p16)
        _, transform_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert fit_peak < p16.nbytes  # a float32 copy: 2 p16.nbytes, float64: 4
    assert transform_peak < out.nbytes + p16.nbytes // 2
    assert ts.temperature_ == pytest.approx(
        TemperatureScaling().fit(probs, labels).temperature_, rel=0.1
    )


def test_non_contiguous_input(rng):
    probs, labels, _ = multiclass_case(rng, 1.7, shape=(2, 3, 10, 12))
    view = np.asfortranarray(probs)  # not C-contiguous: copied by the reshape
    ts = TemperatureScaling().fit(view, labels)
    ref = TemperatureScaling().fit(probs, labels)
    assert ts.temperature_ == ref.temperature_
    np.testing.assert_array_equal(ts.transform(view), ref.transform(probs))
    sliced = probs[:, :, ::2]
    np.testing.assert_array_equal(ts.transform(sliced), ref.transform(sliced.copy()))


@pytest.mark.parametrize("mode", ["multiclass", "multilabel"])
def test_vector_from_logits_transform(rng, mode):
    if mode == "multiclass":
        _, labels, logits = multiclass_case(rng, 1.7, shape=(2, 3, 16, 16))
        vs = VectorScaling(mode, from_logits=True).fit(logits, labels)
        w, b = vs.weights_[:, None, None], vs.bias_[:, None, None]
        ref = softmax(w * logits + b, axis=1)
    else:
        _, labels, logits = sigmoid_case(rng, 1.7, shape=(2, 2, 16, 16))
        vs = VectorScaling(mode, from_logits=True).fit(logits, labels)
        w, b = vs.weights_[:, None, None], vs.bias_[:, None, None]
        ref = expit(w * logits + b)
    np.testing.assert_allclose(vs.transform(logits), ref, rtol=1e-10)


@pytest.mark.parametrize(("n", "k"), [(5000, 700), (300_000, 70_000)])
def test_subsample_is_the_bottom_k_of_seeded_keys(rng, monkeypatch, n, k):
    """Exactly the k pixels with the smallest keys of default_rng(seed), in pixel order."""
    p = rng.random((2, n // 2)).astype(np.float32)
    probs = np.stack([p, 1 - p], axis=1)
    labels = rng.integers(0, 2, (2, n // 2))
    labels[0, :10] = 9  # void: no key drawn
    counted = (labels != 9).ravel()
    keys = np.random.default_rng(5).random(int(counted.sum()))
    chosen = np.flatnonzero(counted)[np.sort(np.argsort(keys)[:k])]
    want = np.log(probs[:, 0].ravel()[chosen].astype(np.float64)).astype(np.float32)
    for chunk in (1 << 18, 1 << 11):  # with growth and several compactions
        monkeypatch.setattr(cal, "_CHUNK_ELEMENTS", chunk)
        feats, y, _, seen = cal._collect(
            probs,
            labels,
            mode="multiclass",
            from_logits=False,
            ignore_index=9,
            max_pixels=k,
            seed=5,
        )
        assert seen == counted.sum()
        np.testing.assert_array_equal(feats[:, 0], want)
        np.testing.assert_array_equal(y, labels.ravel()[chosen])


@pytest.mark.parametrize("mode", ["multiclass", "multilabel"])
def test_vector_gradient_matches_finite_differences(rng, mode):
    from scipy.optimize import approx_fprime

    nc = 3
    x = rng.standard_normal((400, nc)).astype(np.float32)
    if mode == "multiclass":
        y = rng.integers(0, nc, 400)
    else:
        y = rng.integers(-1, 2, (400, nc)).astype(np.int8)  # -1: void entries
    vs = VectorScaling(mode)

    def loss(theta, grad=False):
        value, gw, gb = vs._loss(x, y, np.exp(theta[:nc]), theta[nc:], grad)
        return (value, np.concatenate([gw * np.exp(theta[:nc]), gb])) if grad else value

    theta = 0.3 * rng.standard_normal(2 * nc)
    numeric = approx_fprime(theta, loss, 1e-6)
    np.testing.assert_allclose(loss(theta, True)[1], numeric, rtol=1e-4, atol=1e-4)


def _fixed(method, mode, n_classes, from_logits=False, **params):
    d = {
        "format": "rankseg-calibration",
        "version": 1,
        "method": method,
        "mode": mode,
        "from_logits": from_logits,
        "n_classes": n_classes,
        **params,
    }
    return cal.METHODS[method].from_dict(d)


@pytest.mark.parametrize("mode", ["multiclass", "multilabel"])
def test_identity_and_logits_formulas(rng, mode):
    z = 2.0 * rng.standard_normal((2, 3, 5, 7))
    p = softmax(z, axis=1) if mode == "multiclass" else expit(z)
    one = _fixed("temperature", mode, 3, temperature=1.0)
    np.testing.assert_allclose(one.transform(p), p, rtol=1e-12)
    ident = _fixed("vector", mode, 3, weights=[1.0] * 3, biases=[0.0] * 3)
    np.testing.assert_allclose(ident.transform(p), p, rtol=1e-12)
    t = _fixed("temperature", mode, 3, from_logits=True, temperature=0.7)
    want = softmax(z / 0.7, axis=1) if mode == "multiclass" else expit(z / 0.7)
    np.testing.assert_allclose(t.transform(z), want, rtol=1e-12)
